"""Every result and error of `transfers_create`; each failure also proves nothing was written."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ledger.errors import (
    AccountClosed,
    AccountNotFound,
    ExceedsCredits,
    ExceedsDebits,
    ExceedsPendingTransferAmount,
    InvalidTransfer,
    Overflow,
    PendingTransferAlreadyResolved,
    PendingTransferExpired,
    PendingTransferNotFound,
    TransferExistsWithDifferentFields,
)
from ledger.models import Account, Transfer, TransferKind
from ledger.services import (
    AMOUNT_FEN_MAX,
    TRANSFERS_PER_BATCH_MAX,
    TransferRequest,
    account_create,
    account_set_closed,
    pending_transfers_expire,
    transfer_create,
    transfers_create,
)
from tests.ledger.conftest import fund

pytestmark = pytest.mark.django_db


def totals(account: Account) -> tuple[int, int, int, int]:
    account.refresh_from_db()
    return (account.debits_pending, account.debits_posted, account.credits_pending, account.credits_posted)


def posted(key: str, debit: Account, credit: Account, amount_fen: int, **extra) -> TransferRequest:
    return TransferRequest.posted(
        key=key, debit_account_id=debit.pk, credit_account_id=credit.pk, amount_fen=amount_fen, reason="test", **extra
    )


def hold(key: str, debit: Account, credit: Account, amount_fen: int, timeout_s: int | None = 60) -> TransferRequest:
    return TransferRequest.pending(
        key=key,
        debit_account_id=debit.pk,
        credit_account_id=credit.pk,
        amount_fen=amount_fen,
        reason="hold",
        timeout_s=timeout_s,
    )


# --- posted ----------------------------------------------------------------------------------


def test_posted_transfer_moves_totals_and_records_them(limited, sink):
    # given
    assert totals(limited) == (0, 0, 0, 1_000)
    # when
    outcome = transfer_create(transfer=posted("t1", limited, sink, 300, metadata={"bill": "B-1"}))
    # then
    assert outcome.created
    transfer = outcome.transfer
    assert (transfer.amount_fen, transfer.kind, transfer.metadata) == (300, TransferKind.POSTED, {"bill": "B-1"})
    assert totals(limited) == (0, 300, 0, 1_000)
    assert totals(sink) == (0, 0, 0, 300)
    stored = Transfer.objects.get(pk=transfer.pk)
    assert (stored.debit_account_debits_posted, stored.debit_account_credits_posted) == (300, 1_000)
    assert (stored.credit_account_debits_posted, stored.credit_account_credits_posted) == (0, 300)
    assert stored.created_at == transfer.created_at and stored.created_at is not None


def test_debit_may_take_a_limited_account_exactly_to_zero(limited, sink):
    transfer_create(transfer=posted("all", limited, sink, 1_000))
    assert totals(limited) == (0, 1_000, 0, 1_000)


def test_debit_past_credits_is_refused_naming_the_account(limited, sink, snapshot):
    before = snapshot()
    with pytest.raises(ExceedsCredits) as caught:
        transfer_create(transfer=posted("too-much", limited, sink, 1_001))
    assert (caught.value.account_code, caught.value.available_fen, caught.value.amount_fen) == ("limited", 1_000, 1_001)
    assert caught.value.code == "exceeds_credits" and caught.value.http_status == 409
    assert snapshot() == before


def test_pending_debits_count_against_the_limit(limited, sink, snapshot):
    transfer_create(transfer=hold("h", limited, sink, 600))
    before = snapshot()
    with pytest.raises(ExceedsCredits) as caught:
        transfer_create(transfer=posted("t", limited, sink, 401))
    assert caught.value.available_fen == 400
    assert snapshot() == before


def test_credit_past_debits_is_refused(source, sink, snapshot):
    capped = account_create(code="capped", credits_must_not_exceed_debits=True)
    transfer_create(transfer=posted("d", capped, sink, 50))
    before = snapshot()
    with pytest.raises(ExceedsDebits) as caught:
        transfer_create(transfer=posted("c", source, capped, 51))
    assert (caught.value.account_code, caught.value.available_fen) == ("capped", 50)
    assert snapshot() == before


def test_unlimited_account_may_go_below_zero(source, sink):
    transfer_create(transfer=posted("t", source, sink, 5))
    assert totals(source) == (0, 5, 0, 0)


# --- batches -----------------------------------------------------------------------------------


def test_batch_applies_in_order_and_records_intermediate_totals(limited, sink):
    outcomes = transfers_create(transfers=[posted("a", limited, sink, 100), posted("b", limited, sink, 200)])
    assert [o.created for o in outcomes] == [True, True]
    assert [o.transfer.debit_account_debits_posted for o in outcomes] == [100, 300]
    assert totals(limited) == (0, 300, 0, 1_000)


def test_batch_is_all_or_nothing(limited, sink, snapshot):
    before = snapshot()
    with pytest.raises(ExceedsCredits):
        transfers_create(transfers=[posted("a", limited, sink, 600), posted("b", limited, sink, 600)])
    assert snapshot() == before


def test_a_refused_transfer_deep_in_a_batch_is_named_exactly(limited, sink, snapshot):
    """A batch of new transfers goes to the database in one pipeline; when the database refuses one,
    the batch is applied again one by one, so the error names the account and what it had left then."""
    before = snapshot()
    with pytest.raises(ExceedsCredits) as caught:
        transfers_create(
            transfers=[*(posted(f"k{i}", limited, sink, 100) for i in range(9)), posted("z", limited, sink, 101)]
        )
    assert (caught.value.account_code, caught.value.available_fen, caught.value.amount_fen) == ("limited", 100, 101)
    assert snapshot() == before


def test_a_refused_batch_leaves_the_outer_transaction_usable(limited, sink, source, snapshot):
    from django.db import transaction

    with transaction.atomic():
        transfer_create(transfer=posted("kept", limited, sink, 10))
        before = snapshot()
        with pytest.raises(Overflow):
            transfers_create(transfers=[posted("a", source, sink, 1), posted("b", source, sink, AMOUNT_FEN_MAX)])
        assert snapshot() == before
        outcomes = transfers_create(transfers=[posted("c", limited, sink, 5), posted("d", source, sink, 7)])
        assert [o.transfer.credit_account_credits_posted for o in outcomes] == [15, 22]
    assert sorted(Transfer.objects.exclude(key="fund-limited").values_list("key", flat=True)) == ["c", "d", "kept"]


def test_batch_may_not_repeat_a_key(limited, sink, snapshot):
    before = snapshot()
    with pytest.raises(InvalidTransfer) as caught:
        transfers_create(transfers=[posted("a", limited, sink, 1), posted("a", limited, sink, 1)])
    assert caught.value.field == "key"
    assert snapshot() == before


@pytest.mark.parametrize("size", [0, TRANSFERS_PER_BATCH_MAX + 1])
def test_batch_size_is_limited(size, limited, sink, snapshot):
    before = snapshot()
    with pytest.raises(InvalidTransfer) as caught:
        transfers_create(transfers=[posted(f"k{i}", limited, sink, 1) for i in range(size)])
    assert caught.value.field == "transfers"
    assert snapshot() == before


def test_a_batch_inside_an_outer_transaction_is_a_savepoint(limited, sink, snapshot):
    from django.db import transaction

    with transaction.atomic():
        transfer_create(transfer=posted("kept", limited, sink, 10))
        before = snapshot()
        with pytest.raises(ExceedsCredits):
            transfer_create(transfer=posted("refused", limited, sink, 10_000))
        assert snapshot() == before
    assert Transfer.objects.filter(key="kept").exists()


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount_fen": 0}, "amount_fen"),
        ({"amount_fen": -5}, "amount_fen"),
        ({"amount_fen": 1.5}, "amount_fen"),
        ({"amount_fen": "100"}, "amount_fen"),
        ({"amount_fen": True}, "amount_fen"),
        ({"amount_fen": AMOUNT_FEN_MAX + 1}, "amount_fen"),
        ({"amount_fen": None}, "amount_fen"),
        ({"key": ""}, "key"),
        ({"key": "x" * 201}, "key"),
        ({"key": "a\nb"}, "key"),
        ({"reason": ""}, "reason"),
        ({"reason": "Not A Word"}, "reason"),
        ({"debit_account_id": None}, "debit_account_id"),
        ({"credit_account_id": "1"}, "credit_account_id"),
        ({"timeout_s": 10}, "timeout_s"),
        ({"pending_id": 1}, "pending_id"),
        ({"metadata": {"x": float("nan")}}, "metadata"),
        ({"metadata": {"x": object()}}, "metadata"),
        ({"metadata": {"x": "y" * 5_000}}, "metadata"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"kind": "refund"}, "kind"),
    ],
)
def test_malformed_requests_are_refused_before_the_database(changes, field, limited, sink, snapshot):
    from dataclasses import replace

    request = replace(posted("k", limited, sink, 10), **changes)
    before = snapshot()
    with pytest.raises(InvalidTransfer) as caught:
        transfer_create(transfer=request)
    assert caught.value.field == field
    assert caught.value.code == "validation_error" and caught.value.http_status == 400
    assert snapshot() == before


def test_same_debit_and_credit_account_is_refused(limited, snapshot):
    before = snapshot()
    with pytest.raises(InvalidTransfer) as caught:
        transfer_create(transfer=posted("self", limited, limited, 1))
    assert caught.value.field == "credit_account_id"
    assert snapshot() == before


def test_unknown_account_is_refused(limited, snapshot):
    before = snapshot()
    with pytest.raises(AccountNotFound) as caught:
        transfer_create(
            transfer=TransferRequest.posted(
                key="k", debit_account_id=limited.pk, credit_account_id=987_654, amount_fen=1, reason="test"
            )
        )
    assert caught.value.extra["account_ids"] == [987_654]
    assert snapshot() == before


def test_total_past_64_bits_is_an_overflow_error_not_a_crash(source, sink, snapshot):
    transfer_create(transfer=posted("big", source, sink, AMOUNT_FEN_MAX))
    before = snapshot()
    with pytest.raises(Overflow):
        transfer_create(transfer=posted("bigger", source, sink, 1))
    assert snapshot() == before


# --- idempotency -----------------------------------------------------------------------------


def test_replayed_key_with_same_content_returns_the_first_transfer(limited, sink):
    first = transfer_create(transfer=posted("once", limited, sink, 100, metadata={"a": [1, 2]}))
    again = transfer_create(transfer=posted("once", limited, sink, 100, metadata={"a": [1, 2]}))
    assert first.created and not again.created
    assert again.transfer.pk == first.transfer.pk
    assert totals(limited) == (0, 100, 0, 1_000)
    assert Transfer.objects.filter(key="once").count() == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount_fen": 101}, "amount_fen"),
        ({"reason": "other"}, "reason"),
        ({"metadata": {"a": 2}}, "metadata"),
        ({"kind": TransferKind.PENDING}, "kind"),
    ],
)
def test_replayed_key_with_other_content_is_refused_naming_the_field(changes, field, limited, sink, snapshot):
    from dataclasses import replace

    transfer_create(transfer=posted("once", limited, sink, 100, metadata={"a": 1}))
    before = snapshot()
    with pytest.raises(TransferExistsWithDifferentFields) as caught:
        transfer_create(transfer=replace(posted("once", limited, sink, 100, metadata={"a": 1}), **changes))
    assert (caught.value.key, caught.value.field) == ("once", field)
    assert snapshot() == before


def test_replayed_key_with_other_accounts_is_refused(limited, sink, source, snapshot):
    transfer_create(transfer=posted("once", limited, sink, 100))
    before = snapshot()
    with pytest.raises(TransferExistsWithDifferentFields) as caught:
        transfer_create(transfer=posted("once", limited, source, 100))
    assert caught.value.field == "credit_account_id"
    assert snapshot() == before


def test_replayed_batch_returns_every_first_transfer(limited, sink):
    batch = [posted("a", limited, sink, 10), posted("b", limited, sink, 20)]
    first = transfers_create(transfers=batch)
    again = transfers_create(transfers=batch)
    assert [o.transfer.pk for o in again] == [o.transfer.pk for o in first]
    assert [o.created for o in again] == [False, False]
    assert totals(limited) == (0, 30, 0, 1_000)


def test_replay_succeeds_even_when_the_limit_is_now_reached(limited, sink):
    first = transfer_create(transfer=posted("a", limited, sink, 600))
    transfer_create(transfer=posted("b", limited, sink, 400))
    again = transfer_create(transfer=posted("a", limited, sink, 600))
    assert again.transfer.pk == first.transfer.pk and not again.created


# --- pending: post, void, expire ---------------------------------------------------------------


def test_pending_holds_funds(limited, sink):
    now = timezone.now()
    outcome = transfer_create(transfer=hold("h", limited, sink, 400, timeout_s=30), now=now)
    transfer = outcome.transfer
    assert transfer.kind == TransferKind.PENDING
    assert transfer.expires_at == now + timedelta(seconds=30)  # The timeout runs from `now`.
    assert totals(limited) == (400, 0, 0, 1_000)
    assert totals(sink) == (0, 0, 400, 0)


def test_post_whole_pending_amount(limited, sink):
    pending = transfer_create(transfer=hold("h", limited, sink, 400)).transfer
    post = transfer_create(transfer=TransferRequest.post_pending(key="p", pending_id=pending.pk, reason="capture"))
    assert (post.transfer.kind, post.transfer.amount_fen, post.transfer.pending_id) == (
        TransferKind.POST_PENDING,
        400,
        pending.pk,
    )
    assert (post.transfer.debit_account_id, post.transfer.credit_account_id) == (limited.pk, sink.pk)
    assert totals(limited) == (0, 400, 0, 1_000)
    assert totals(sink) == (0, 0, 0, 400)


def test_post_part_of_a_pending_amount_releases_the_rest(limited, sink):
    pending = transfer_create(transfer=hold("h", limited, sink, 400)).transfer
    transfer_create(
        transfer=TransferRequest.post_pending(key="p", pending_id=pending.pk, amount_fen=150, reason="capture")
    )
    assert totals(limited) == (0, 150, 0, 1_000)
    assert totals(sink) == (0, 0, 0, 150)


def test_post_more_than_held_is_refused(limited, sink, snapshot):
    pending = transfer_create(transfer=hold("h", limited, sink, 400)).transfer
    before = snapshot()
    with pytest.raises(ExceedsPendingTransferAmount):
        transfer_create(
            transfer=TransferRequest.post_pending(key="p", pending_id=pending.pk, amount_fen=401, reason="c")
        )
    assert snapshot() == before


def test_void_releases_the_hold(limited, sink):
    pending = transfer_create(transfer=hold("h", limited, sink, 400)).transfer
    void = transfer_create(transfer=TransferRequest.void_pending(key="v", pending_id=pending.pk, reason="cancel"))
    assert (void.transfer.kind, void.transfer.amount_fen) == (TransferKind.VOID_PENDING, 400)
    assert totals(limited) == (0, 0, 0, 1_000)
    assert totals(sink) == (0, 0, 0, 0)


@pytest.mark.parametrize("second", ["post", "void"])
@pytest.mark.parametrize("first", ["post", "void"])
def test_a_pending_transfer_is_resolved_once(first, second, limited, sink, snapshot):
    pending = transfer_create(transfer=hold("h", limited, sink, 400)).transfer
    make = {
        "post": lambda key: TransferRequest.post_pending(key=key, pending_id=pending.pk, reason="c"),
        "void": lambda key: TransferRequest.void_pending(key=key, pending_id=pending.pk, reason="c"),
    }
    transfer_create(transfer=make[first]("first"))
    before = snapshot()
    with pytest.raises(PendingTransferAlreadyResolved) as caught:
        transfer_create(transfer=make[second]("second"))
    assert caught.value.resolved_by == {"post": "posted", "void": "voided"}[first]
    assert snapshot() == before


def test_resolving_twice_in_one_batch_is_refused(limited, sink, snapshot):
    pending = transfer_create(transfer=hold("h", limited, sink, 400)).transfer
    before = snapshot()
    with pytest.raises(PendingTransferAlreadyResolved):
        transfers_create(
            transfers=[
                TransferRequest.post_pending(key="p", pending_id=pending.pk, reason="c"),
                TransferRequest.void_pending(key="v", pending_id=pending.pk, reason="c"),
            ]
        )
    assert snapshot() == before


def test_post_after_timeout_is_refused(limited, sink, snapshot):
    pending = transfer_create(transfer=hold("h", limited, sink, 400, timeout_s=10)).transfer
    before = snapshot()
    with pytest.raises(PendingTransferExpired):
        transfer_create(
            transfer=TransferRequest.post_pending(key="p", pending_id=pending.pk, reason="c"),
            now=pending.expires_at,
        )
    assert snapshot() == before


def test_expiry_voids_only_holds_past_their_timeout(limited, sink):
    short = transfer_create(transfer=hold("short", limited, sink, 100, timeout_s=10)).transfer
    transfer_create(transfer=hold("long", limited, sink, 200, timeout_s=3_600))
    transfer_create(transfer=hold("forever", limited, sink, 300, timeout_s=None))
    later = short.expires_at + timedelta(seconds=1)

    assert pending_transfers_expire(now=later) == 1
    void = Transfer.objects.get(pending=short)
    assert (void.kind, void.reason, void.key) == (TransferKind.VOID_PENDING, "expired", f"expire:{short.pk}")
    assert totals(limited) == (500, 0, 0, 1_000)
    # A second run finds nothing more to do.
    assert pending_transfers_expire(now=later) == 0
    assert Transfer.objects.count() == 5


def test_expired_hold_reports_expired_when_posted_later(limited, sink):
    pending = transfer_create(transfer=hold("h", limited, sink, 100, timeout_s=10)).transfer
    pending_transfers_expire(now=pending.expires_at)
    with pytest.raises(PendingTransferAlreadyResolved) as caught:
        transfer_create(transfer=TransferRequest.post_pending(key="p", pending_id=pending.pk, reason="c"))
    assert caught.value.resolved_by == "expired"


def test_resolving_a_transfer_that_is_not_pending_is_refused(limited, sink, snapshot):
    plain = transfer_create(transfer=posted("t", limited, sink, 100)).transfer
    before = snapshot()
    for pending_id in (plain.pk, 10**9):
        with pytest.raises(PendingTransferNotFound):
            transfer_create(transfer=TransferRequest.void_pending(key="v", pending_id=pending_id, reason="c"))
    assert snapshot() == before


def test_resolving_with_other_accounts_is_refused(limited, sink, source, snapshot):
    pending = transfer_create(transfer=hold("h", limited, sink, 100)).transfer
    before = snapshot()
    with pytest.raises(InvalidTransfer) as caught:
        transfer_create(
            transfer=TransferRequest(
                key="p", kind=TransferKind.POST_PENDING, pending_id=pending.pk, credit_account_id=source.pk, reason="c"
            )
        )
    assert caught.value.field == "credit_account_id"
    assert snapshot() == before


def test_void_takes_no_amount(limited, sink):
    pending = transfer_create(transfer=hold("h", limited, sink, 100)).transfer
    with pytest.raises(InvalidTransfer) as caught:
        transfer_create(
            transfer=TransferRequest(
                key="v", kind=TransferKind.VOID_PENDING, pending_id=pending.pk, amount_fen=50, reason="c"
            )
        )
    assert caught.value.field == "amount_fen"


def test_replayed_post_returns_the_first_post(limited, sink):
    pending = transfer_create(transfer=hold("h", limited, sink, 400)).transfer
    request = TransferRequest.post_pending(key="p", pending_id=pending.pk, amount_fen=100, reason="c")
    first = transfer_create(transfer=request)
    again = transfer_create(transfer=request)
    assert again.transfer.pk == first.transfer.pk and not again.created
    assert totals(limited) == (0, 100, 0, 1_000)


# --- closed accounts -------------------------------------------------------------------------


def test_closed_account_refuses_new_transfers_but_releases_holds(limited, sink, snapshot):
    pending = transfer_create(transfer=hold("h", limited, sink, 100)).transfer
    account_set_closed(account_id=limited.pk, closed=True)
    before = snapshot()
    with pytest.raises(AccountClosed):
        transfer_create(transfer=posted("t", limited, sink, 1))
    with pytest.raises(AccountClosed):
        transfer_create(transfer=TransferRequest.post_pending(key="p", pending_id=pending.pk, reason="c"))
    assert snapshot() == before
    transfer_create(transfer=TransferRequest.void_pending(key="v", pending_id=pending.pk, reason="close"))
    assert totals(limited) == (0, 0, 0, 1_000)
    account_set_closed(account_id=limited.pk, closed=False)
    transfer_create(transfer=posted("t", limited, sink, 1))


def test_now_defaults_to_the_current_time(limited, sink):
    pending = transfer_create(transfer=hold("h", limited, sink, 100, timeout_s=3_600)).transfer
    assert pending.expires_at > timezone.now()


def test_funding_helper_credits_the_account(source):
    account = account_create(code="fresh", debits_must_not_exceed_credits=True)
    fund(account, 5, source=source, key="f")
    assert totals(account) == (0, 0, 0, 5)
