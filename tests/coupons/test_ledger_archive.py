"""A program year's ledger chain, archived (docs/ledger-history.md): the year gets its partitions when
it is created; `manage.py ledger_archive` refuses while the year is open or not audited since it
closed; once archived, the whole audit (the ledger's checks and the coupon program's) still passes,
and reports the chain as archived."""

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from coupons.models import AuditRun, ProgramYear
from coupons.services.archive import chain_archive_refusal
from coupons.services.audit import audit_execute, audit_run_create
from coupons.services.reset import annual_reset
from coupons.services.years import year_end
from ledger.models import ChainArchive
from ledger.partitions import chain_partition_of, partition_name
from tests.coupons.conftest import YEAR
from tests.coupons.test_audit import program  # noqa: F401 (a fixture)

AFTER = year_end(YEAR) + timedelta(seconds=1)

CHAIN = f"hangzhou-compute:{YEAR}"
NEXT = f"hangzhou-compute:{YEAR + 1}"


def audit_at(now: datetime) -> AuditRun:
    return audit_execute(run_id=audit_run_create().pk, now=now)


def drop_partitions(chains: tuple[str, ...] | list[str] = (CHAIN, NEXT)) -> None:
    """Partitions and archive constraints are DDL, which a transactional test's flush does not undo."""
    with connection.cursor() as cursor:
        for table in ("ledger_transferseal", "ledger_transfer"):
            for chain in chains:
                cursor.execute(f'DROP TABLE IF EXISTS "{partition_name(table, chain)}"')
        cursor.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint "
            "WHERE conname LIKE 'ledger_transfer%%_default_not_%%'"
        )
        for table, name in cursor.fetchall():
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')


@pytest.fixture
def committed(transactional_db: None) -> Iterator[None]:
    """Transactions that commit (so the year's partitions are made), and the DDL undone after."""
    drop_partitions()
    yield
    connection.close()
    drop_partitions()


def test_a_closed_audited_year_is_archived_and_the_audit_still_passes(committed, program, tmp_path):  # noqa: F811
    year = ProgramYear.objects.get(year=YEAR)
    assert year.chain == CHAIN
    # The year got its own partitions when it was created, before its first transfer.
    assert chain_partition_of("ledger_transfer", CHAIN) == partition_name("ledger_transfer", CHAIN)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ledger_transfer_default WHERE chain = %s", [CHAIN])
        assert cursor.fetchone() == (0,)

    # Open: refused.
    assert "not closed" in (chain_archive_refusal(CHAIN) or "")
    with pytest.raises(CommandError, match="not closed"):
        call_command("ledger_archive", "--chain", CHAIN, "--to", str(tmp_path))
    # Closed by the annual reset (holds released, grants expired, the next year opened), but no
    # audit since: refused.
    annual_reset(year=YEAR, now=AFTER)
    assert ProgramYear.objects.get(year=YEAR + 1).status == "open"
    assert "No audit has finished" in (chain_archive_refusal(CHAIN) or "")
    # Audited since, but failed: refused.
    AuditRun.objects.create(status=AuditRun.Status.FAILED, finished_at=AFTER + timedelta(minutes=30))
    assert "failed" in (chain_archive_refusal(CHAIN) or "")
    # Audited since, and passed: archived.
    assert audit_at(AFTER + timedelta(hours=1)).status == "passed"
    assert chain_archive_refusal(CHAIN) is None

    call_command("ledger_archive", "--chain", CHAIN, "--to", str(tmp_path), "--drop")
    archive = ChainArchive.objects.get(chain=CHAIN)
    assert archive.dropped and archive.transfers > 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ledger_transfer WHERE chain = %s", [CHAIN])
        assert cursor.fetchone() == (0,)

    # The whole audit passes: the open year's chain verified, the archived one reported.
    run = audit_at(AFTER + timedelta(hours=2))
    assert run.status == "passed", [c for c in run.checks if not c["ok"]]
    (chain_check,) = [c for c in run.checks if c["name"] == "hash_chain_intact"]
    assert [(a["chain"], a["manifest_sha256"]) for a in chain_check["details"]["archived_chains"]] == [
        (CHAIN, archive.manifest_sha256)
    ]
