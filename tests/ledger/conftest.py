"""Shared set-up for ledger tests: accounts, funding, and a snapshot that proves nothing changed."""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.db import connection

from ledger.models import Account
from ledger.services import TransferRequest, account_create, transfer_create


@dataclass(frozen=True)
class LedgerSnapshot:
    transfers: list[tuple]
    accounts: list[tuple]


def take_snapshot() -> LedgerSnapshot:
    """Every transfer and every account row, as the database holds them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM ledger_transfer ORDER BY id")
        transfers = cursor.fetchall()
        cursor.execute("SELECT * FROM ledger_account ORDER BY id")
        accounts = cursor.fetchall()
    return LedgerSnapshot(transfers, accounts)


@pytest.fixture
def snapshot() -> Callable[[], LedgerSnapshot]:
    return take_snapshot


def fund(account: Account, amount_fen: int, *, source: Account, key: str) -> None:
    """Credit `account` with `amount_fen` posted from the unlimited `source`."""
    transfer_create(
        transfer=TransferRequest.posted(
            key=key, debit_account_id=source.pk, credit_account_id=account.pk, amount_fen=amount_fen, reason="fund"
        )
    )


@pytest.fixture
def source(db: None) -> Account:
    """An unlimited account that money comes from (like an appropriation)."""
    return account_create(code="source")


@pytest.fixture
def limited(db: None, source: Account) -> Account:
    """A debits-must-not-exceed-credits account funded with 1,000 fen."""
    account = account_create(code="limited", debits_must_not_exceed_credits=True)
    fund(account, 1_000, source=source, key="fund-limited")
    account.refresh_from_db()
    return account


@pytest.fixture
def sink(db: None) -> Account:
    return account_create(code="sink")
