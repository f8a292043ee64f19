"""Fixtures for every test: a snapshot of the money and domain tables, to prove nothing changed."""

from collections.abc import Callable, Iterator

import pytest
from django.db import connection
from pytest_django import DjangoDbBlocker

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


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """The test database (one per xdist worker) commits without waiting for its WAL to reach the disk.

    A commit is still atomic and at once visible to every other session (the crash tests kill
    Celery workers, never the server); only a crash of PostgreSQL itself could lose the last
    commits, and a test database is thrown away anyway. Set on the database, so the workers and
    servers the tests start as subprocesses get it too. It saves a disk flush per commit, which is
    what the transactional tests (races, crash tests, live servers) spend much of their time on.
    """
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        name = connection.ops.quote_name(connection.settings_dict["NAME"])
        cursor.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
        cursor.execute("SET synchronous_commit = off")
    yield
