"""Balances now and at past moments, and paginated history."""

from datetime import timedelta

import pytest

from ledger.errors import AccountNotFound
from ledger.models import Account, Transfer
from ledger.selectors import (
    account_balance,
    account_balance_at,
    account_get,
    account_history,
    available_fen_expression,
    balance_of,
)
from ledger.services import TransferRequest, transfer_create

pytestmark = pytest.mark.django_db


def pay(key: str, debit, credit, amount_fen: int) -> Transfer:
    return transfer_create(
        transfer=TransferRequest.posted(
            key=key, debit_account_id=debit.pk, credit_account_id=credit.pk, amount_fen=amount_fen, reason="test"
        )
    ).transfer


def test_balance_now(limited, sink):
    pay("a", limited, sink, 300)
    transfer_create(
        transfer=TransferRequest.pending(
            key="h", debit_account_id=limited.pk, credit_account_id=sink.pk, amount_fen=200, reason="hold"
        )
    )
    balance = account_balance(account_id=limited.pk)
    assert (balance.debits_pending, balance.debits_posted, balance.credits_pending, balance.credits_posted) == (
        200,
        300,
        0,
        1_000,
    )
    assert (balance.available_fen, balance.credit_balance_fen, balance.debit_balance_fen) == (500, 700, -700)
    assert account_balance(account_id=sink.pk).credits_pending == 200


def test_the_available_annotation_is_the_balance_available(limited, sink, source):
    """credits posted − debits posted − debits pending, written once: as a queryset annotation (on
    the account, or through a relation with a prefix) it equals `Balance.available_fen`."""
    pay("a", limited, sink, 300)
    transfer_create(
        transfer=TransferRequest.pending(
            key="h", debit_account_id=limited.pk, credit_account_id=sink.pk, amount_fen=200, reason="hold"
        )
    )
    annotated = dict(Account.objects.annotate(available=available_fen_expression()).values_list("pk", "available"))
    for account in (limited, sink, source):
        assert annotated[account.pk] == account_balance(account_id=account.pk).available_fen
    assert annotated[limited.pk] == 500
    through_debit = Transfer.objects.filter(key="h").annotate(available=available_fen_expression("debit_account__"))
    assert through_debit.get().available == 500
    limited.refresh_from_db()
    assert balance_of(limited) == account_balance(account_id=limited.pk)


def test_balance_at_each_past_moment(limited, sink, django_assert_num_queries):
    transfers = [pay(f"t{i}", limited, sink, 10 * (i + 1)) for i in range(5)]
    for i, transfer in enumerate(transfers):
        with django_assert_num_queries(2):  # The account, then one query for the newest transfer.
            at = account_balance_at(account_id=limited.pk, at=transfer.created_at)
        assert at.debits_posted == sum(10 * (j + 1) for j in range(i + 1))
        assert at.credits_posted == 1_000
        assert account_balance_at(account_id=sink.pk, at=transfer.created_at).credits_posted == at.debits_posted


def test_balance_before_any_transfer_is_zero(limited):
    first = Transfer.objects.order_by("id").first()
    balance = account_balance_at(account_id=limited.pk, at=first.created_at - timedelta(microseconds=1))
    assert (balance.debits_posted, balance.credits_posted) == (0, 0)


def test_balance_at_now_equals_balance(limited, sink):
    last = pay("a", limited, sink, 5)
    assert account_balance_at(account_id=limited.pk, at=last.created_at + timedelta(days=1)) == account_balance(
        account_id=limited.pk
    )


def test_history_pages_through_both_sides(limited, sink, source):
    for i in range(7):
        pay(f"out{i}", limited, sink, 1)
    seen = []
    after_id = None
    while True:
        page = account_history(account_id=limited.pk, after_id=after_id, limit=3)
        seen.extend(page.entries)
        after_id = page.next_after_id
        if after_id is None:
            break
    # The funding credit first, then seven debits, each with the totals right after it.
    assert [e.side for e in seen] == ["credit"] + ["debit"] * 7
    assert [e.balance.debits_posted for e in seen] == list(range(8))
    assert all(e.balance.credits_posted == 1_000 for e in seen)
    assert [e.transfer.pk for e in seen] == sorted(e.transfer.pk for e in seen)


def test_history_page_has_a_bounded_query_count(limited, sink, django_assert_num_queries):
    for i in range(30):
        pay(f"out{i}", limited, sink, 1)
    first = account_history(account_id=limited.pk, limit=10)
    with django_assert_num_queries(4):  # account, cursor, debit side, credit side
        page = account_history(account_id=limited.pk, after_id=first.next_after_id, limit=10)
    assert len(page.entries) == 10


@pytest.mark.parametrize("limit", [0, 501])
def test_history_limit_is_bounded(limit, limited):
    with pytest.raises(ValueError):
        account_history(account_id=limited.pk, limit=limit)


def test_unknown_account():
    with pytest.raises(AccountNotFound):
        account_balance(account_id=999)
    with pytest.raises(AccountNotFound):
        account_get(code="nope")


def test_get_by_code(limited):
    assert account_get(code="limited").pk == limited.pk
