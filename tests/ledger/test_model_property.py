"""Property test: random sequences of ledger operations against a simple in-memory model.

After every step the database's totals must equal the model's, and every refusal must be the one
the model predicts. The model knows only the rules (limits, one resolution per hold); the
ledger's limit enforcement under test is PostgreSQL's CHECK constraints.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from ledger.errors import (
    ExceedsCredits,
    ExceedsDebits,
    ExceedsPendingTransferAmount,
    LedgerError,
    PendingTransferAlreadyResolved,
)
from ledger.models import Account
from ledger.services import TransferRequest, account_create, pending_transfers_expire, transfer_create

# Account 0 and 3 are unlimited, 1 may not be debited past its credits, 2 not credited past its debits.
LIMITS = [None, "debits", "credits", None]
DP, DPOSTED, CP, CPOSTED = range(4)

accounts_pair = st.lists(st.integers(0, 3), min_size=2, max_size=2, unique=True)
amounts = st.integers(1, 500)
operations = st.one_of(
    st.tuples(st.just("posted"), accounts_pair, amounts),
    st.tuples(st.just("pending"), accounts_pair, amounts, st.sampled_from([60, None])),
    st.tuples(st.just("post"), st.integers(0, 20), st.one_of(st.none(), amounts)),
    st.tuples(st.just("void"), st.integers(0, 20)),
    st.tuples(st.just("expire")),
    st.tuples(st.just("replay"), st.integers(0, 30)),
)


@dataclass
class Hold:
    transfer_id: int
    debit: int
    credit: int
    amount_fen: int
    has_timeout: bool
    resolved: bool = False


@dataclass
class Model:
    totals: list[list[int]] = field(default_factory=lambda: [[0, 0, 0, 0] for _ in LIMITS])
    holds: list[Hold] = field(default_factory=list)

    def refusal(self, debit: int, credit: int, changes: list[tuple[int, int, int]]) -> type[LedgerError] | None:
        """Apply changes (account, total, delta) if no limit breaks; else return the expected error."""
        trial = [row[:] for row in self.totals]
        for account, total, delta in changes:
            trial[account][total] += delta
        d = trial[debit]
        if LIMITS[debit] == "debits" and d[DP] + d[DPOSTED] > d[CPOSTED]:
            return ExceedsCredits
        c = trial[credit]
        if LIMITS[credit] == "credits" and c[CP] + c[CPOSTED] > c[DPOSTED]:
            return ExceedsDebits
        self.totals = trial
        return None


class LedgerMatchesModel(TestCase):
    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(operations, max_size=30))
    def test_random_operations(self, ops: list[tuple]) -> None:
        accounts = [
            account_create(
                code=f"model:{i}",
                debits_must_not_exceed_credits=limit == "debits",
                credits_must_not_exceed_debits=limit == "credits",
            )
            for i, limit in enumerate(LIMITS)
        ]
        model = Model()
        done: list[TransferRequest] = []
        for step, op in enumerate(ops):
            self.apply(step, op, accounts, model, done)
            actual = [
                [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]
                for a in Account.objects.filter(code__startswith="model:").order_by("code")
            ]
            assert actual == model.totals, (step, op)

    def apply(self, step: int, op: tuple, accounts: list[Account], model: Model, done: list[TransferRequest]) -> None:
        kind = op[0]
        expected: type[LedgerError] | None
        request: TransferRequest
        if kind == "expire":
            later = timezone.now() + timedelta(days=1)
            open_with_timeout = [h for h in model.holds if h.has_timeout and not h.resolved]
            for hold in open_with_timeout:
                hold.resolved = True
                model.refusal(
                    hold.debit, hold.credit, [(hold.debit, DP, -hold.amount_fen), (hold.credit, CP, -hold.amount_fen)]
                )
            assert pending_transfers_expire(now=later) == len(open_with_timeout)
            return
        if kind == "replay":
            if not done:
                return
            request = done[op[1] % len(done)]
            outcome = transfer_create(transfer=request)
            assert not outcome.created
            return
        if kind in ("posted", "pending"):
            (debit, credit), amount = op[1], op[2]
            build = TransferRequest.posted if kind == "posted" else TransferRequest.pending
            extra = {"timeout_s": op[3]} if kind == "pending" else {}
            request = build(
                key=f"k{step}",
                debit_account_id=accounts[debit].pk,
                credit_account_id=accounts[credit].pk,
                amount_fen=amount,
                reason=kind,
                **extra,
            )
            debit_total, credit_total = (DP, CP) if kind == "pending" else (DPOSTED, CPOSTED)
            expected = model.refusal(debit, credit, [(debit, debit_total, amount), (credit, credit_total, amount)])
        else:
            if not model.holds:
                return
            hold = model.holds[op[1] % len(model.holds)]
            if kind == "post":
                amount = op[2]
                request = TransferRequest.post_pending(
                    key=f"k{step}", pending_id=hold.transfer_id, amount_fen=amount, reason="post"
                )
                posted_fen = hold.amount_fen if amount is None else amount
                if hold.resolved:
                    expected = PendingTransferAlreadyResolved
                elif posted_fen > hold.amount_fen:
                    expected = ExceedsPendingTransferAmount
                else:
                    expected = model.refusal(
                        hold.debit,
                        hold.credit,
                        [
                            (hold.debit, DP, -hold.amount_fen),
                            (hold.debit, DPOSTED, posted_fen),
                            (hold.credit, CP, -hold.amount_fen),
                            (hold.credit, CPOSTED, posted_fen),
                        ],
                    )
            else:
                request = TransferRequest.void_pending(key=f"k{step}", pending_id=hold.transfer_id, reason="void")
                if hold.resolved:
                    expected = PendingTransferAlreadyResolved
                else:
                    expected = model.refusal(
                        hold.debit,
                        hold.credit,
                        [(hold.debit, DP, -hold.amount_fen), (hold.credit, CP, -hold.amount_fen)],
                    )
            if expected is None:
                hold.resolved = True

        if expected is not None:
            with self.assertRaises(expected):
                transfer_create(transfer=request)
            return
        outcome = transfer_create(transfer=request)
        assert outcome.created
        done.append(request)
        if kind == "pending":
            model.holds.append(Hold(outcome.transfer.pk, op[1][0], op[1][1], op[2], op[3] is not None))
