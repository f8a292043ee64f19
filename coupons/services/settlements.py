"""Settlements: finance pays a provider for its captured redemptions that the enterprises stand
behind (`coupons/services/acknowledgements.py`), netting what it owes back.

Two finance users at least: one creates a settlement, and its payment is asked for by a finance user
(the same or another) and confirmed by a third, who is neither (`approvals`)."""

import datetime as dt
from collections import defaultdict

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Provider, Role, User
from accounts.roles import require_role
from approvals.models import ApprovalRequest
from approvals.services import approval_request_create
from config.errors import InvalidState, ValidationFailed
from coupons import books
from coupons.errors import FourEyes
from coupons.locks import provider_lock, redemptions_lock, settlement_lock
from coupons.models import DEFAULT_PROGRAM, ProgramYear, Redemption, Settlement
from coupons.services.acknowledgements import is_settleable, settleable
from coupons.services.claims import claims_mark_paid, enterprise_settlement_transfers
from coupons.services.reach import reach_program
from ledger.services import TransferRequest, transfers_create

BANK_REFERENCE_LENGTH_MAX = 100
SETTLEMENT_LINES_MAX = 10_000
ACTION_PAY = "settlement_pay"


def settlement_create(
    *, provider: Provider, actor: User, now: dt.datetime | None = None, program: str = DEFAULT_PROGRAM
) -> Settlement:
    """Batch the provider's captured, unsettled redemptions that the enterprise acknowledged (or left
    unanswered past the window, or whose dispute was dismissed), less clawbacks owed, into a settlement.
    Only redemptions on grants of `program` (the default program unless named): each fund pays its own.

    A redemption is settled at most once: the provider's row lock orders settlements of one
    provider, and each redemption row carries the one settlement that took it. Lines are chosen, then
    locked, then chosen again: a dispute or a reversal that landed in between leaves its redemption
    out. A bill whose window has passed is deemed confirmed here, so payment never waits for the job.
    """
    require_role(actor, Role.FINANCE)
    reach_program(actor, program, f"program {program}")
    now = now or timezone.now()
    with transaction.atomic():
        provider_lock(provider.pk)
        of_program = Q(grant__year__program_id=program)
        candidate_ids = list(
            Redemption.objects.filter(settleable(now=now), of_program, provider=provider)
            .order_by("pk")
            .values_list("pk", flat=True)[:SETTLEMENT_LINES_MAX]  # The rest goes into the next settlement.
        )
        clawback_ids = list(
            Redemption.objects.filter(
                of_program,
                provider=provider,
                status=Redemption.Status.REVERSED,
                settlement__status=Settlement.Status.PAID,
                clawback_settlement__isnull=True,
            )
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        lines = [r for r in redemptions_lock(candidate_ids) if is_settleable(r, now=now)]
        clawbacks = redemptions_lock(clawback_ids)
        if not lines and not clawbacks:
            raise InvalidState(f"{provider.name} has nothing to settle in {program}.")
        total_fen = sum(r.coupon_fen for r in lines) - sum(r.coupon_fen for r in clawbacks)
        if total_fen < 0:
            raise InvalidState(
                f"{provider.name} owes {-total_fen} fen more in clawbacks than it is due; settle when new "
                f"redemptions cover it."
            )
        settlement = Settlement.objects.create(
            program_id=program, provider=provider, total_fen=total_fen, redemptions_count=len(lines), created_by=actor
        )
        line_ids = [r.pk for r in lines]
        deemed_ids = [r.pk for r in lines if r.acknowledgement == Redemption.Acknowledgement.AWAITING]
        Redemption.objects.filter(pk__in=deemed_ids).update(acknowledgement=Redemption.Acknowledgement.DEEMED_CONFIRMED)
        Redemption.objects.filter(pk__in=line_ids, settlement__isnull=True).update(settlement=settlement)
        Redemption.objects.filter(pk__in=clawback_ids, clawback_settlement__isnull=True).update(
            clawback_settlement=settlement
        )
        return settlement


def _bank_reference(bank_reference: str) -> str:
    bank_reference = (bank_reference or "").strip()
    if not 0 < len(bank_reference) <= BANK_REFERENCE_LENGTH_MAX or not bank_reference.isprintable():
        raise ValidationFailed(
            f"bank_reference has 1 to {BANK_REFERENCE_LENGTH_MAX} printable characters.", field="bank_reference"
        )
    return bank_reference


def settlement_payer_conflict(*, settlement: Settlement, payer: User, requested_by_id: int) -> str | None:
    """Why `payer` may not confirm this payment, or None: never the settlement's creator, never the
    person who asked for the payment."""
    if payer.pk == settlement.created_by_id:
        return "The finance user who created a settlement may not confirm its payment."
    if payer.pk == requested_by_id:
        return "The finance user who asked for a payment may not confirm it."
    return None


def settlement_pay_request(
    *, settlement: Settlement, requester: User, bank_reference: str, reason: str = ""
) -> ApprovalRequest:
    """A finance user asks for an open settlement to be marked paid with the bank's reference; a
    different finance user, who did not create the settlement, confirms it."""
    require_role(requester, Role.FINANCE)
    reach_program(requester, settlement.program_id, f"settlement {settlement.pk}")
    bank_reference = _bank_reference(bank_reference)
    if settlement.status != Settlement.Status.OPEN:
        raise InvalidState(f"Settlement {settlement.pk} is already {settlement.status}.")
    return approval_request_create(
        action=ACTION_PAY,
        target=f"settlement:{settlement.pk}",
        payload={
            "program": settlement.program_id,
            "settlement": settlement.pk,
            "bank_reference": bank_reference,
            "total_fen": settlement.total_fen,
        },
        reason=(reason or "").strip() or f"Paid by bank transfer {bank_reference}.",
        requester=requester,
    )


def _provider_settlement_transfers(*, settlement: Settlement, bank_reference: str) -> list[TransferRequest]:
    """What paying a provider settlement moves, per program year. The caller holds the settlement's lock."""
    assert settlement.provider_id is not None
    paid_fen: dict[int, int] = defaultdict(int)
    for redemption in Redemption.objects.filter(settlement=settlement).select_related("grant"):
        paid_fen[redemption.grant.year_id] += redemption.coupon_fen
    clawed_fen: dict[int, int] = defaultdict(int)
    for redemption in Redemption.objects.filter(clawback_settlement=settlement).select_related("grant"):
        clawed_fen[redemption.grant.year_id] += redemption.coupon_fen
    years = ProgramYear.objects.in_bulk([*paid_fen, *clawed_fen])
    provider_id = books.provider_account_ensure(settlement.provider_id).pk
    requests = []
    # Keys name the program year by its id (for the years from before programs, the id is the year).
    for year_id, amount_fen in sorted(paid_fen.items()):
        year = years[year_id]
        requests.append(
            TransferRequest.posted(
                key=f"settlement:{settlement.pk}:pay:{year_id}",
                debit_account_id=provider_id,
                credit_account_id=books.account_id(books.disbursed_code(year)),
                amount_fen=amount_fen,
                reason="settlement_pay",
                chain=books.chain(year),
                metadata={"bank_reference": bank_reference},
            )
        )
    for year_id, amount_fen in sorted(clawed_fen.items()):
        year = years[year_id]
        requests.append(
            TransferRequest.posted(
                key=f"settlement:{settlement.pk}:clawback:{year_id}",
                debit_account_id=books.account_id(books.disbursed_code(year)),
                credit_account_id=provider_id,
                amount_fen=amount_fen,
                reason="settlement_clawback",
                chain=books.chain(year),
                metadata={"bank_reference": bank_reference},
            )
        )
    return requests


def settlement_pay(*, settlement: Settlement, actor: User, requested_by: User, bank_reference: str) -> Settlement:
    """Mark a settlement paid with the bank's reference, moving the money out of the payee's account.

    Per program year: `provider:V → disbursed:P:Y` for the coupons paid, and `disbursed:P:Y →
    provider:V` for clawbacks netted, so each year's settled figure stays exact; for an enterprise
    settlement, `enterprise:E → disbursed:P:Y` for its claims, which are then paid. Called by the
    approval of a `settlement_pay` request (`coupons/approval_actions.py`).
    """
    require_role(actor, Role.FINANCE)
    reach_program(actor, settlement.program_id, f"settlement {settlement.pk}")
    bank_reference = _bank_reference(bank_reference)
    with transaction.atomic():
        locked = settlement_lock(settlement.pk)
        if locked.status != Settlement.Status.OPEN:
            raise InvalidState(f"Settlement {locked.pk} is already {locked.status}.")
        conflict = settlement_payer_conflict(settlement=locked, payer=actor, requested_by_id=requested_by.pk)
        if conflict:
            raise FourEyes(conflict)
        # One payment, two payees: a computing center (provider deduction) or an enterprise (reimbursement).
        if locked.enterprise_id is not None:
            requests = enterprise_settlement_transfers(settlement=locked, bank_reference=bank_reference)
        else:
            requests = _provider_settlement_transfers(settlement=locked, bank_reference=bank_reference)
        if requests:
            transfers_create(transfers=requests)
        locked.status = Settlement.Status.PAID
        locked.bank_reference = bank_reference
        locked.payment_requested_by = requested_by
        locked.paid_by = actor
        locked.paid_at = timezone.now()
        locked.save(update_fields=["status", "bank_reference", "payment_requested_by", "paid_by", "paid_at"])
        if locked.enterprise_id is not None:
            claims_mark_paid(settlement=locked)
        return locked
