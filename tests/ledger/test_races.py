"""Races on real PostgreSQL connections: the guarantees are raced, not argued.

Each test starts `THREADS` threads (each with its own database connection) behind a barrier so
they hit the ledger at the same moment, then checks the history that resulted: the transfers
that exist and the account totals, not only what each call returned.
"""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection

from ledger.errors import ExceedsCredits, PendingTransferAlreadyResolved, TransferExistsWithDifferentFields
from ledger.models import Account, Transfer, TransferKind
from ledger.services import (
    TransferRequest,
    account_create,
    pending_transfers_expire,
    transfer_create,
    transfers_create,
)
from tests.concurrency import THREADS, race

pytestmark = pytest.mark.django_db(transaction=True)


def posted(key: str, debit: Account, credit: Account, amount_fen: int) -> TransferRequest:
    return TransferRequest.posted(
        key=key, debit_account_id=debit.pk, credit_account_id=credit.pk, amount_fen=amount_fen, reason="race"
    )


def totals(account: Account) -> tuple[int, int, int, int]:
    account.refresh_from_db()
    return (account.debits_pending, account.debits_posted, account.credits_pending, account.credits_posted)


def assert_books_balance() -> None:
    """Every account's totals equal the sums of its transfers, and debits equal credits overall."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.code, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,
                   COALESCE((SELECT sum(amount_fen) FROM ledger_transfer t
                              WHERE t.debit_account_id = a.id AND t.kind IN ('posted', 'post_pending')), 0),
                   COALESCE((SELECT sum(amount_fen) FROM ledger_transfer t
                              WHERE t.credit_account_id = a.id AND t.kind IN ('posted', 'post_pending')), 0),
                   COALESCE((SELECT sum(p.amount_fen) FROM ledger_transfer p
                              WHERE p.debit_account_id = a.id AND p.kind = 'pending'
                                AND NOT EXISTS (SELECT 1 FROM ledger_transfer r WHERE r.pending_id = p.id)), 0)
              FROM ledger_account a
            """
        )
        for code, debits, credits, debits_pending, credits_pending, debit_sum, credit_sum, open_holds in cursor:
            assert (debits, credits) == (debit_sum, credit_sum), code
            assert debits_pending == open_holds, code
        cursor.execute(
            "SELECT sum(debits_posted) - sum(credits_posted), sum(debits_pending) - sum(credits_pending) "
            "FROM ledger_account"
        )
        assert cursor.fetchone() == (0, 0)


def test_debits_racing_on_a_limited_account_never_pass_its_credits():
    # given: 1,000 fen of credit and 48 debits of 70 fen racing for it
    source = account_create(code="source")
    limited = account_create(code="limited", debits_must_not_exceed_credits=True)
    sink = account_create(code="sink")
    transfer_create(transfer=posted("fund", source, limited, 1_000))
    attempts = THREADS + 16

    # when
    results = race(
        [lambda i=i: transfer_create(transfer=posted(f"debit-{i}", limited, sink, 70)) for i in range(attempts)]
    )

    # then: exactly floor(1000 / 70) = 14 won, every loser was refused by the limit
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1_000 // 70
    assert all(isinstance(r, ExceedsCredits) and r.account_code == "limited" for r in losers), losers
    assert totals(limited) == (0, 14 * 70, 0, 1_000)
    assert Transfer.objects.filter(debit_account=limited).count() == 14
    assert_books_balance()


def test_one_key_submitted_concurrently_makes_one_transfer():
    source = account_create(code="source")
    sink = account_create(code="sink")

    results = race([lambda: transfer_create(transfer=posted("the-key", source, sink, 25)) for _ in range(THREADS)])

    assert not [r for r in results if isinstance(r, Exception)]
    assert Counter(r.created for r in results) == {True: 1, False: THREADS - 1}
    assert len({r.transfer.pk for r in results}) == 1
    assert Transfer.objects.count() == 1
    assert totals(sink) == (0, 0, 0, 25)
    assert_books_balance()


def test_one_key_with_conflicting_contents_makes_one_transfer():
    # Two contents on disjoint accounts, so no account lock orders them: the unique key must.
    a, b, c, d = (account_create(code=code) for code in "abcd")
    requests = [posted("shared", a, b, 10), posted("shared", c, d, 10)]

    results = race([lambda i=i: transfer_create(transfer=requests[i % 2]) for i in range(THREADS)])

    assert Transfer.objects.count() == 1
    winner = Transfer.objects.get()
    created = [r for r in results if not isinstance(r, Exception) and r.created]
    assert len(created) == 1 and created[0].transfer.pk == winner.pk
    for request, result in zip([requests[i % 2] for i in range(THREADS)], results, strict=True):
        if request.debit_account_id == winner.debit_account_id:
            assert not isinstance(result, Exception) and result.transfer.pk == winner.pk
        else:
            assert isinstance(result, TransferExistsWithDifferentFields), result
    assert_books_balance()


def test_post_void_and_expire_racing_on_one_hold_resolve_it_once():
    source = account_create(code="source")
    limited = account_create(code="limited", debits_must_not_exceed_credits=True)
    sink = account_create(code="sink")
    transfer_create(transfer=posted("fund", source, limited, 1_000))
    pending = transfer_create(
        transfer=TransferRequest.pending(
            key="hold",
            debit_account_id=limited.pk,
            credit_account_id=sink.pk,
            amount_fen=600,
            reason="hold",
            timeout_s=3_600,
        )
    ).transfer
    after_timeout = pending.expires_at + timedelta(seconds=1)

    def post(i: int) -> object:
        return transfer_create(
            transfer=TransferRequest.post_pending(
                key=f"post-{i}", pending_id=pending.pk, amount_fen=100 + i, reason="c"
            )
        )

    def void(i: int) -> object:
        return transfer_create(
            transfer=TransferRequest.void_pending(key=f"void-{i}", pending_id=pending.pk, reason="v")
        )

    def expire(i: int) -> object:
        return pending_transfers_expire(now=after_timeout)

    racers = [post, void, expire]
    results = race([lambda i=i: racers[i % 3](i) for i in range(THREADS)])

    resolutions = list(Transfer.objects.filter(pending=pending))
    assert len(resolutions) == 1
    resolution = resolutions[0]
    expiries = [r for r in results if isinstance(r, int)]
    outcomes = [r for r in results if not isinstance(r, (int, Exception))]
    assert sum(expiries) + sum(o.created for o in outcomes) == 1, results
    assert all(isinstance(r, PendingTransferAlreadyResolved) for r in results if isinstance(r, Exception)), results
    posted_fen = resolution.amount_fen if resolution.kind == TransferKind.POST_PENDING else 0
    assert totals(limited) == (0, posted_fen, 0, 1_000)
    assert totals(sink) == (0, 0, 0, posted_fen)
    assert_books_balance()


def test_crossing_batches_do_not_deadlock():
    # Each batch touches four accounts; half list them in one order, half in the reverse.
    a, b, c, d = (account_create(code=code) for code in "abcd")
    forward = [(a, b), (c, d)]
    backward = [(d, c), (b, a)]

    def batch(i: int) -> object:
        pairs = forward if i % 2 == 0 else backward
        return transfers_create(
            transfers=[posted(f"batch-{i}-{j}", debit, credit, i + 1) for j, (debit, credit) in enumerate(pairs)]
        )

    results = race([lambda i=i: batch(i) for i in range(THREADS)])

    assert not [r for r in results if isinstance(r, Exception)], results
    assert Transfer.objects.count() == 2 * THREADS
    forward_fen = sum(i + 1 for i in range(0, THREADS, 2))
    backward_fen = sum(i + 1 for i in range(1, THREADS, 2))
    assert totals(a) == (0, forward_fen, 0, backward_fen)
    assert totals(b) == (0, backward_fen, 0, forward_fen)
    assert_books_balance()
