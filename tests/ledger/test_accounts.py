"""Opening and closing accounts."""

import pytest

from ledger.errors import AccountExistsWithDifferentFlags, AccountNotFound, InvalidTransfer
from ledger.models import Account
from ledger.services import account_create, account_set_closed

pytestmark = pytest.mark.django_db


def test_create_opens_an_empty_account():
    account = account_create(code="pool:2026", debits_must_not_exceed_credits=True)
    account.refresh_from_db()
    assert (account.debits_pending, account.debits_posted, account.credits_pending, account.credits_posted) == (
        0,
        0,
        0,
        0,
    )
    assert account.debits_must_not_exceed_credits and not account.credits_must_not_exceed_debits
    assert not account.closed


def test_create_is_idempotent_for_the_same_flags():
    first = account_create(code="cap:1:2026", debits_must_not_exceed_credits=True)
    again = account_create(code="cap:1:2026", debits_must_not_exceed_credits=True)
    assert again.pk == first.pk
    assert Account.objects.count() == 1


def test_create_with_other_flags_is_refused():
    account_create(code="pool:2026", debits_must_not_exceed_credits=True)
    with pytest.raises(AccountExistsWithDifferentFlags):
        account_create(code="pool:2026")
    assert Account.objects.get().debits_must_not_exceed_credits


@pytest.mark.parametrize("code", ["", "has space", "x" * 101, "泉"])
def test_create_refuses_a_bad_code(code):
    with pytest.raises(InvalidTransfer) as caught:
        account_create(code=code)
    assert caught.value.field == "code"
    assert not Account.objects.exists()


def test_create_refuses_both_limits():
    with pytest.raises(InvalidTransfer) as caught:
        account_create(code="both", debits_must_not_exceed_credits=True, credits_must_not_exceed_debits=True)
    assert caught.value.field == "flags"
    assert not Account.objects.exists()


def test_close_and_reopen():
    account = account_create(code="a")
    assert account_set_closed(account_id=account.pk, closed=True).closed
    account.refresh_from_db()
    assert account.closed
    assert not account_set_closed(account_id=account.pk, closed=False).closed


def test_close_unknown_account():
    with pytest.raises(AccountNotFound):
        account_set_closed(account_id=123_456, closed=True)
