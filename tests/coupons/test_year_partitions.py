"""Every program year's ledger chain gets partitions of its own before its first transfer
(docs/ledger-history.md), whichever path creates the year: a superuser's `program_year_create`, the
annual reset preparing Y+1, and `seed_demo`'s years. A chain whose first transfers land in the DEFAULT
partition keeps them there, and cannot be archived, until `manage.py ledger_repartition` moves them."""

from collections.abc import Iterator
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from coupons.models import ProgramYear
from coupons.services.audit import audit_execute, audit_run_create
from coupons.services.reset import annual_reset
from coupons.services.years import program_year_of, year_end
from ledger.models import ChainArchive
from ledger.partitions import PARTITIONED_TABLES, chain_partition_of, partition_name
from tests.coupons.conftest import YEAR
from tests.coupons.test_audit import program  # noqa: F401 (a fixture)
from tests.coupons.test_ledger_archive import drop_partitions

AFTER = year_end(YEAR) + timedelta(seconds=1)
CHAIN = f"hangzhou-compute:{YEAR}"
NEXT = f"hangzhou-compute:{YEAR + 1}"


def demo_chains() -> list[str]:
    """The chains `seed_demo` writes: the city's Y and Y-1, the district's Y (Y: this year)."""
    this_year = program_year_of(timezone.now())
    return [f"hangzhou-compute:{this_year}", f"hangzhou-compute:{this_year - 1}", f"binjiang-compute:{this_year}"]


def in_default() -> dict[str, list[tuple[str, int]]]:
    """Per partitioned table: the chains with rows in its DEFAULT partition, and how many."""
    found = {}
    with connection.cursor() as cursor:
        for table in PARTITIONED_TABLES:
            cursor.execute(f"SELECT chain, count(*) FROM {table}_default GROUP BY chain ORDER BY chain")
            found[table] = cursor.fetchall()
    return found


def partitions_of(chain: str) -> list[str | None]:
    return [chain_partition_of(table, chain) for table in PARTITIONED_TABLES]


@pytest.fixture
def committed(transactional_db: None) -> Iterator[None]:
    """Transactions that commit (so on-commit hooks run), and the partitions dropped after."""
    chains = [CHAIN, NEXT, *demo_chains()]
    drop_partitions(chains)
    yield
    connection.close()
    drop_partitions(chains)


def test_the_year_the_annual_reset_prepares_has_its_own_partitions_before_its_first_transfer(committed, year):
    assert partitions_of(CHAIN) == [partition_name(table, CHAIN) for table in PARTITIONED_TABLES]
    assert not ProgramYear.objects.filter(year=YEAR + 1).exists()

    report = annual_reset(year=YEAR, now=AFTER)

    assert report.next_year_opened
    next_year = ProgramYear.objects.get(year=YEAR + 1)
    assert next_year.chain == NEXT
    assert partitions_of(NEXT) == [partition_name(table, NEXT) for table in PARTITIONED_TABLES]
    # Its first transfer (the pool credited when it opened) and every one after are in its partition.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text, count(*) FROM ledger_transfer WHERE chain = %s GROUP BY 1", [NEXT]
        )
        assert cursor.fetchall() == [(partition_name("ledger_transfer", NEXT), 1)]
    assert in_default() == {table: [] for table in PARTITIONED_TABLES}


def test_after_seed_demo_no_chain_has_rows_in_the_default_partition(committed):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert "Demo data loaded" in out.getvalue()
    chains = sorted(ProgramYear.objects.values_list("chain", flat=True))
    assert chains == sorted(demo_chains())
    for chain in chains:
        assert partitions_of(chain) == [partition_name(table, chain) for table in PARTITIONED_TABLES], chain
    assert in_default() == {table: [] for table in PARTITIONED_TABLES}


@pytest.fixture
def no_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Years get no partitions (as the reset's Y+1 got none before the fix): their rows go to DEFAULT."""
    monkeypatch.setattr("coupons.services.years.chain_partitions_create", lambda *, chain: False)


def test_a_year_whose_ledger_is_in_the_default_partition_is_repartitioned_then_archived(
    committed,
    no_partitions,
    program,  # noqa: F811
    tmp_path,
):
    assert partitions_of(CHAIN) == [None, None]
    assert dict(in_default()["ledger_transfer"])[CHAIN] > 0
    annual_reset(year=YEAR, now=AFTER)
    moved = dict(in_default()["ledger_transfer"])[CHAIN]
    assert audit_execute(run_id=audit_run_create().pk, now=AFTER + timedelta(hours=1)).status == "passed"
    with pytest.raises(CommandError, match="no partitions of its own"):
        call_command("ledger_archive", "--chain", CHAIN, "--to", str(tmp_path))

    out = StringIO()
    call_command("ledger_repartition", "--chain", CHAIN, stdout=out)
    assert f"{moved} rows of ledger_transfer_default" in out.getvalue()
    assert partitions_of(CHAIN) == [partition_name(table, CHAIN) for table in PARTITIONED_TABLES]
    assert CHAIN not in dict(in_default()["ledger_transfer"])
    # The audit still passes (the chain verifies where it now is), and the year can be archived.
    assert audit_execute(run_id=audit_run_create().pk, now=AFTER + timedelta(hours=2)).status == "passed"
    call_command("ledger_archive", "--chain", CHAIN, "--to", str(tmp_path), "--drop")
    assert ChainArchive.objects.get(chain=CHAIN).transfers == moved
    run = audit_execute(run_id=audit_run_create().pk, now=AFTER + timedelta(hours=3))
    assert run.status == "passed", [c for c in run.checks if not c["ok"]]
