"""The one-statement batch (`_apply_set`) records exactly what one transfer at a time records."""

import pytest
from django.db import transaction

from ledger import services
from ledger.errors import ExceedsCredits, ExceedsDebits
from ledger.models import Account, Transfer
from ledger.services import TransferRequest, account_create, transfer_create, transfers_create
from tests.ledger.conftest import fund

pytestmark = pytest.mark.django_db

TOTALS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
AFTER = [f"{side}_account_{total}" for side in ("debit", "credit") for total in TOTALS]
# (debit index, credit index, fen, kind): debits and credits repeat, interleaved, posted and pending mixed.
PLAN = [(0, 2, 100, "posted"), (1, 0, 50, "pending"), (0, 0, 70, "pending"), (2, 1, 30, "posted"),
        (1, 2, 20, "posted"), (0, 1, 10, "pending"), (2, 2, 5, "posted"), (1, 3, 200, "posted"),
        (0, 3, 100, "pending"), (2, 1, 1, "posted"), (0, 0, 720, "posted")]  # fmt: skip


def _set_of_accounts(prefix: str) -> tuple[list[Account], list[Account]]:
    source = account_create(code=f"{prefix}-source")
    debits = [account_create(code=f"{prefix}-d{i}", debits_must_not_exceed_credits=True) for i in range(3)]
    for i, account in enumerate(debits):
        fund(account, 1_000, source=source, key=f"{prefix}-fund{i}")
    credits = [account_create(code=f"{prefix}-c{i}") for i in range(3)]
    limited_credit = account_create(code=f"{prefix}-lc", credits_must_not_exceed_debits=True)
    transfer_create(transfer=TransferRequest.posted(
        key=f"{prefix}-fundlc", debit_account_id=limited_credit.pk, credit_account_id=source.pk,
        amount_fen=300, reason="fund"))  # fmt: skip
    return debits, [*credits, limited_credit]


def _requests(prefix, debits, credits, plan):
    build = {"posted": TransferRequest.posted, "pending": TransferRequest.pending}
    return [
        build[kind](key=f"{prefix}-{n}", debit_account_id=debits[d].pk, credit_account_id=credits[c].pk,
                    amount_fen=fen, reason="test", metadata={"n": n})
        for n, (d, c, fen, kind) in enumerate(plan)
    ]  # fmt: skip


def _recorded(accounts, transfers):
    rows = [tuple(getattr(Account.objects.get(pk=a.pk), t) for t in TOTALS) for a in accounts]
    return rows, [(*tuple(getattr(t, f) for f in AFTER), t.kind, t.amount_fen) for t in transfers]


def test_one_statement_batch_records_what_one_by_one_records(monkeypatch):
    applied = []
    monkeypatch.setattr(services, "_apply_set", lambda *a, _f=services._apply_set: applied.append(1) or _f(*a))
    debits_a, credits_a = _set_of_accounts("a")
    debits_b, credits_b = _set_of_accounts("b")
    batch = transfers_create(transfers=_requests("a", debits_a, credits_a, PLAN))
    assert applied == [1], "the batch went through the one-statement path"
    with transaction.atomic():
        singles = [transfer_create(transfer=r) for r in _requests("b", debits_b, credits_b, PLAN)]
    a = [Transfer.objects.get(pk=o.transfer.pk) for o in batch]
    b = [Transfer.objects.get(pk=o.transfer.pk) for o in singles]
    assert _recorded(debits_a + credits_a, a) == _recorded(debits_b + credits_b, b)
    assert [o.transfer.key for o in batch] == [f"a-{n}" for n in range(len(PLAN))]
    # Ids and times in batch order: the balance-at and the archive take an account's last transfer
    # by (created_at, id).
    assert [t.pk for t in a] == sorted(t.pk for t in a)
    assert [t.created_at for t in a] == sorted(t.created_at for t in a)
    # What the service returned is what was stored.
    assert [tuple(getattr(o.transfer, f) for f in AFTER) for o in batch] == [
        tuple(getattr(t, f) for f in AFTER) for t in a
    ]


@pytest.mark.parametrize(
    ("last", "error"),
    [((0, 0, 721, "posted"), ExceedsCredits), ((1, 3, 82, "pending"), ExceedsDebits), ((1, 3, 81, "pending"), None)],
)
def test_a_limit_passed_by_the_batch_is_refused_as_one_by_one_refuses_it(last, error, snapshot):
    debits, credits = _set_of_accounts("a")
    plan = [*PLAN[:-1], last] if error is ExceedsCredits else [*PLAN[:7], (1, 3, 219, "posted"), last]
    before = snapshot()
    if error is None:  # exactly at the limited credit account's limit (300): not refused
        transfers_create(transfers=_requests("a", debits, credits, plan))
        credits[3].refresh_from_db()
        assert (credits[3].credits_pending + credits[3].credits_posted, credits[3].debits_posted) == (300, 300)
        return
    with pytest.raises(error):
        transfers_create(transfers=_requests("a", debits, credits, plan))
    assert snapshot() == before
