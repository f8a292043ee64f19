"""Fixtures for every test: a snapshot of the money and domain tables, to prove nothing changed."""

from collections.abc import Callable

import pytest
from django.db import connection

SNAPSHOT_TABLES = (
    "ledger_account",
    "ledger_transfer",
    "coupons_programyear",
    "coupons_capoverride",
    "coupons_application",
    "coupons_applicationevent",
    "coupons_grant",
    "coupons_redemption",
    "coupons_settlement",
    "coupons_invoice",
    "evidence_citation",
    "accounts_enterprise",
    "accounts_provider",
    "accounts_facility",
    "accounts_providerchange",
    "accounts_relatedparty",
    "accounts_user",
    "accounts_enterpriseflagsevent",
    "accounts_modelfiling",
    "accounts_sanction",
    "approvals_approvalrequest",
)


def take_full_snapshot() -> dict[str, list[tuple]]:
    """Every row of every money and domain table, as the database holds them."""
    rows = {}
    with connection.cursor() as cursor:
        for table in SNAPSHOT_TABLES:
            cursor.execute(f"SELECT * FROM {table} ORDER BY 1")
            rows[table] = cursor.fetchall()
    return rows


@pytest.fixture
def db_snapshot() -> Callable[[], dict[str, list[tuple]]]:
    return take_full_snapshot
