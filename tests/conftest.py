"""Fixtures for every test: a snapshot of the money and domain tables, to prove nothing changed; and
the order in which parallel test processes (pytest-xdist) take the modules."""

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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a parallel run, the modules holding a test marked `slow` come first.

    `--dist loadscope` hands each process whole modules, in collection order (pyproject.toml turns
    off xdist's own reordering by test count, which put the longest modules, the crash tests and
    the state machine with one or two tests each, last, so one process finished them alone). Slow
    first, the short modules fill in at the end. The order inside each module, and pytest-django's
    (transactional tests after the others), is kept. A run in one process keeps pytest-django's
    order as it is.
    """
    if not hasattr(config, "workerinput"):  # Only an xdist worker's collection sets the order.
        return
    slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)


@pytest.fixture(autouse=True)
def default_program(request: pytest.FixtureRequest) -> None:
    """The default program, `hangzhou-compute`, as migration 0014 made it: a transactional test's
    flush empties every table, so a test that uses the database finds it again here."""
    if request.node.get_closest_marker("django_db") is None and not {"db", "transactional_db"} & set(
        request.fixturenames
    ):
        return
    request.getfixturevalue("transactional_db" if "transactional_db" in request.fixturenames else "db")
    from coupons.services.years import program_default_ensure

    program_default_ensure()
