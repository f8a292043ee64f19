"""The database itself refuses what no code path may do: raw SQL that must fail.

These tests bypass the services on purpose. Each proves a guarantee that holds even for code
that does not exist yet, or for a person with a SQL prompt and the application's role.
"""

import pytest
from django.db import IntegrityError, ProgrammingError, connection, transaction

from ledger.models import Account, Transfer
from ledger.services import TransferRequest, account_create, transfer_create

pytestmark = pytest.mark.django_db


def execute(sql: str, params: list | None = None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params or [])


@pytest.fixture
def transfer(limited, sink) -> Transfer:
    return transfer_create(
        transfer=TransferRequest.posted(
            key="t", debit_account_id=limited.pk, credit_account_id=sink.pk, amount_fen=100, reason="test"
        )
    ).transfer


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_transfer SET amount_fen = 1 WHERE id = %s",
        "UPDATE ledger_transfer SET metadata = '{}'::jsonb WHERE id = %s",
        "DELETE FROM ledger_transfer WHERE id = %s",
    ],
)
def test_transfers_are_insert_only(sql, transfer):
    with pytest.raises(ProgrammingError, match="Cannot update or delete rows"):
        execute(sql, [transfer.pk])
    stored = Transfer.objects.get(pk=transfer.pk)
    assert (stored.amount_fen, stored.key) == (100, "t")


def test_orm_delete_of_a_transfer_is_refused_too(transfer):
    with pytest.raises(ProgrammingError), transaction.atomic():
        Transfer.objects.filter(pk=transfer.pk).delete()
    assert Transfer.objects.filter(pk=transfer.pk).exists()


def test_raw_overdraw_of_a_limited_account_fails(limited):
    with pytest.raises(IntegrityError, match="ledger_account_debits_must_not_exceed_credits"):
        execute("UPDATE ledger_account SET debits_posted = credits_posted + 1 WHERE id = %s", [limited.pk])
    with pytest.raises(IntegrityError, match="ledger_account_debits_must_not_exceed_credits"):
        execute("UPDATE ledger_account SET debits_pending = credits_posted + 1 WHERE id = %s", [limited.pk])
    limited.refresh_from_db()
    assert (limited.debits_pending, limited.debits_posted) == (0, 0)


def test_raw_over_credit_of_a_credit_limited_account_fails():
    account = account_create(code="capped", credits_must_not_exceed_debits=True)
    with pytest.raises(IntegrityError, match="ledger_account_credits_must_not_exceed_debits"):
        execute("UPDATE ledger_account SET credits_posted = 1 WHERE id = %s", [account.pk])


def test_raw_negative_total_fails(limited):
    with pytest.raises(IntegrityError, match="ledger_account_totals_not_negative"):
        execute("UPDATE ledger_account SET credits_pending = -1 WHERE id = %s", [limited.pk])


def test_raw_setting_both_limits_fails():
    account = account_create(code="empty", debits_must_not_exceed_credits=True)
    with pytest.raises(IntegrityError, match="ledger_account_one_limit_at_most"):
        execute("UPDATE ledger_account SET credits_must_not_exceed_debits = true WHERE id = %s", [account.pk])


INSERT = """
INSERT INTO ledger_transfer (key, debit_account_id, credit_account_id, amount_fen, kind, pending_id,
    reason, metadata, created_at,
    debit_account_debits_pending, debit_account_debits_posted, debit_account_credits_pending,
    debit_account_credits_posted, credit_account_debits_pending, credit_account_debits_posted,
    credit_account_credits_pending, credit_account_credits_posted)
VALUES (%s, %s, %s, %s, %s, %s, 'raw', '{}', now(), 0, 0, 0, 0, 0, 0, 0, 0)
"""


@pytest.mark.parametrize(
    ("amount_fen", "kind", "same_accounts", "constraint"),
    [
        (0, "posted", False, "ledger_transfer_amount_positive"),
        (-1, "posted", False, "ledger_transfer_amount_positive"),
        (1, "posted", True, "ledger_transfer_accounts_distinct"),
        (1, "refund", False, "ledger_transfer_kind_valid"),
        (1, "post_pending", False, "ledger_transfer_pending_iff_resolving"),
    ],
)
def test_raw_malformed_transfer_insert_fails(amount_fen, kind, same_accounts, constraint, limited, sink):
    credit = limited if same_accounts else sink
    with pytest.raises(IntegrityError, match=constraint):
        execute(INSERT, ["raw", limited.pk, credit.pk, amount_fen, kind, None])
    assert not Transfer.objects.filter(key="raw").exists()


def test_raw_duplicate_key_fails(transfer, limited, sink):
    with pytest.raises(IntegrityError, match="ledger_transfer_key_unique"):
        execute(INSERT, [transfer.key, limited.pk, sink.pk, 1, "posted", None])


def test_raw_second_resolution_of_a_pending_transfer_fails(limited, sink):
    pending = transfer_create(
        transfer=TransferRequest.pending(
            key="h", debit_account_id=limited.pk, credit_account_id=sink.pk, amount_fen=100, reason="hold"
        )
    ).transfer
    transfer_create(transfer=TransferRequest.void_pending(key="v", pending_id=pending.pk, reason="cancel"))
    with pytest.raises(IntegrityError, match="ledger_transfer_pending_resolved_once"):
        execute(INSERT, ["raw", limited.pk, sink.pk, 100, "post_pending", pending.pk])


def test_account_with_transfers_cannot_be_deleted(transfer, limited):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        Account.objects.filter(pk=limited.pk).delete()
    with pytest.raises(IntegrityError, match="foreign key"), transaction.atomic(), connection.cursor() as cursor:
        # Django declares foreign keys deferrable; checked at once here, as at any commit.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("DELETE FROM ledger_account WHERE id = %s", [limited.pk])
    assert Account.objects.filter(pk=limited.pk).exists()
