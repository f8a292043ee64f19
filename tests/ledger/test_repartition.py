"""`manage.py ledger_repartition --chain C` (ledger/repartition.py): a chain whose rows are in the DEFAULT
partitions gets partitions of its own, its rows moved in one transaction, every row identical, its keys
untouched, the chain still verifying, the new partitions as insert-only as any, and a writer of another
chain running at the same time losing nothing."""

import threading
from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import ProgrammingError, connection, connections, transaction

from ledger.chain import chain_findings, ledger_seal
from ledger.models import Transfer
from ledger.partitions import PARTITIONED_TABLES, chain_partition_of, chain_partitions_create, partition_name
from ledger.services import TransferRequest, account_create, transfer_create
from tests.ledger.test_chain import intact, later

CHAIN, OTHER, FRESH = "reparttest:2041", "reparttest:2042", "reparttest:2043"


def drop_test_partitions() -> None:
    with connection.cursor() as cursor:
        for chain in (CHAIN, OTHER, FRESH):
            for table in ("ledger_transferseal", "ledger_transfer"):
                cursor.execute(f'DROP TABLE IF EXISTS "{partition_name(table, chain)}"')


@pytest.fixture
def clean_partitions(transactional_db: None) -> Iterator[None]:
    drop_test_partitions()
    yield
    connection.close()
    drop_test_partitions()


def write(chain: str, count: int, prefix: str) -> list[Transfer]:
    """`count` transfers of `chain`: posted ones, and a hold posted by a second transfer."""
    source, sink = account_create(code="repart:source"), account_create(code="repart:sink")
    made = []
    for i in range(count):
        made.append(
            transfer_create(
                transfer=TransferRequest.posted(
                    key=f"{prefix}-{i}",
                    debit_account_id=source.pk,
                    credit_account_id=sink.pk,
                    amount_fen=100 + i,
                    reason="test",
                    chain=chain,
                    metadata={"n": i},
                )
            ).transfer
        )
    hold = transfer_create(
        transfer=TransferRequest.pending(
            key=f"{prefix}-hold",
            debit_account_id=source.pk,
            credit_account_id=sink.pk,
            amount_fen=7,
            reason="hold",
            chain=chain,
        )
    ).transfer
    made.append(hold)
    made.append(
        transfer_create(
            transfer=TransferRequest.post_pending(key=f"{prefix}-post", pending_id=hold.pk, reason="post")
        ).transfer
    )
    return made


def rows(sql: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def everything() -> dict[str, list[tuple]]:
    """Every ledger row the move must leave as it was (read through the parents)."""
    return {
        "transfers": rows("SELECT * FROM ledger_transfer ORDER BY id"),
        "seals": rows("SELECT * FROM ledger_transferseal ORDER BY transfer_id"),
        "keys": rows("SELECT * FROM ledger_transferkey ORDER BY key"),
        "heads": rows("SELECT * FROM ledger_chainhead ORDER BY chain"),
        "accounts": rows("SELECT * FROM ledger_account ORDER BY id"),
    }


def holder(table: str, chain: str) -> set[str]:
    return {r[0] for r in rows(f"SELECT tableoid::regclass::text FROM {table} WHERE chain = %s", [chain])}


def shape(table: str) -> dict[str, list[str]]:
    """A partition's constraints, indexes and triggers, with its own name and chain's suffix taken out."""
    suffix = table.rsplit("_", 1)[1]

    def plain(text: str) -> str:
        return text.replace(table, "<partition>").replace(suffix, "<suffix>")

    return {
        "constraints": sorted(
            plain(f"{n} {d}")
            for n, d in rows(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass", [table]
            )
        ),
        "indexes": sorted(
            plain(d)
            for (d,) in rows("SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass", [table])
        ),
        "triggers": sorted(
            n
            for (n,) in rows(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal AND tgenabled = 'O'",
                [table],
            )
        ),
        "columns": [
            plain(f"{n} {t} {nn} {d}")
            for n, t, nn, d in rows(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
                "coalesce(pg_get_expr(d.adbin, d.adrelid), '') FROM pg_attribute a "
                "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                [table],
            )
        ],
    }


def repartition(*args: str) -> str:
    out = StringIO()
    call_command("ledger_repartition", *args, stdout=out)
    return out.getvalue()


def test_a_chain_in_the_default_partition_moves_to_its_own_with_every_row_identical(clean_partitions):
    moved = write(CHAIN, 5, "rp")
    write(OTHER, 2, "rp-other")  # Stays in the DEFAULT partition.
    assert ledger_seal() == 11
    assert holder("ledger_transfer", CHAIN) == {"ledger_transfer_default"}
    assert chain_partitions_create(chain=CHAIN) is False  # What the on-commit hook could not do.
    before = everything()

    out = repartition("--chain", CHAIN)

    assert "copied 7 rows" in out and "attached" in out and "moved" in out
    for table in PARTITIONED_TABLES:
        assert chain_partition_of(table, CHAIN) == partition_name(table, CHAIN)
        assert holder(table, CHAIN) == {partition_name(table, CHAIN)}
        assert holder(table, OTHER) == {f"{table}_default"}
    assert everything() == before  # Ids, amounts, totals after, seals' links, keys, heads: all as they were.
    findings = chain_findings(now=later(), chain=CHAIN)
    assert intact(findings) and findings["seals_examined"] == 7, findings
    assert intact(chain_findings(now=later()))

    # Shaped as a partition `chain_partitions_create` makes: same columns, constraints, indexes, triggers.
    assert chain_partitions_create(chain=FRESH) is True
    for table in PARTITIONED_TABLES:
        assert shape(partition_name(table, CHAIN)) == shape(partition_name(table, FRESH))
        assert "pgtrigger_" in " ".join(shape(partition_name(table, CHAIN))["triggers"])

    # Insert-only, through the new partitions' own names as through the parent.
    for sql in (
        f'UPDATE "{partition_name("ledger_transfer", CHAIN)}" SET amount_fen = 1 WHERE id = %s',
        f'DELETE FROM "{partition_name("ledger_transfer", CHAIN)}" WHERE id = %s',
        f'DELETE FROM "{partition_name("ledger_transferseal", CHAIN)}" WHERE transfer_id = %s',
        "DELETE FROM ledger_transfer WHERE id = %s",
    ):
        with (
            pytest.raises(ProgrammingError, match="Cannot update or delete rows"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [moved[0].pk])
    # The DEFAULT partition too: the move ignored its trigger for its own statement only.
    with (
        pytest.raises(ProgrammingError, match="Cannot update or delete rows"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM ledger_transfer_default WHERE chain = %s", [OTHER])

    # The chain goes on: a new transfer lands in its partition, a key of the moved rows is still taken.
    after = write(CHAIN, 1, "rp-next")
    assert holder("ledger_transfer", CHAIN) == {partition_name("ledger_transfer", CHAIN)}
    assert not transfer_create(
        transfer=TransferRequest.posted(
            key="rp-0",
            debit_account_id=moved[0].debit_account_id,
            credit_account_id=moved[0].credit_account_id,
            amount_fen=100,
            reason="test",
            chain=CHAIN,
            metadata={"n": 0},
        )
    ).created
    assert ledger_seal() == len(after)
    assert intact(chain_findings(now=later(), chain=CHAIN))


def test_a_dry_run_says_what_would_move_and_changes_nothing(clean_partitions):
    write(CHAIN, 3, "rp-dry")
    ledger_seal()
    before = everything()
    out = repartition("--chain", CHAIN, "--dry-run")
    assert "Dry run" in out
    assert f"5 rows of ledger_transfer_default into {partition_name('ledger_transfer', CHAIN)}" in out
    assert f"5 rows of ledger_transferseal_default into {partition_name('ledger_transferseal', CHAIN)}" in out
    assert everything() == before
    assert chain_partition_of("ledger_transfer", CHAIN) is None


def test_an_unknown_chain_and_a_chain_with_partitions_are_refused(clean_partitions):
    with pytest.raises(CommandError, match="No transfer or seal of chain reparttest:2041"):
        repartition("--chain", CHAIN)
    with pytest.raises(CommandError, match="No transfer or seal"):
        repartition("--chain", CHAIN, "--dry-run")
    chain_partitions_create(chain=FRESH)
    write(FRESH, 1, "rp-fresh")
    with pytest.raises(CommandError, match="has partitions of its own already"):
        repartition("--chain", FRESH)
    assert chain_partition_of("ledger_transfer", CHAIN) is None


def test_a_writer_of_another_chain_during_the_move_loses_nothing(clean_partitions):
    write(CHAIN, 1000, "rp-big")
    ledger_seal()
    write(OTHER, 1, "rp-first")
    before = {k: v for k, v in everything().items() if k != "accounts"}
    source, sink = account_create(code="repart:source"), account_create(code="repart:sink")
    stop, written, errors = threading.Event(), [], []

    def writer() -> None:
        try:
            n = 0
            while not stop.is_set() or n < 20:
                outcome = transfer_create(
                    transfer=TransferRequest.posted(
                        key=f"rp-w-{n}",
                        debit_account_id=source.pk,
                        credit_account_id=sink.pk,
                        amount_fen=1,
                        reason="test",
                        chain=OTHER,
                    )
                )
                written.append(outcome.transfer.pk)
                n += 1
        except Exception as error:  # The outcome under test.
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 5 and thread.is_alive():
            pass
        at_start = len(written)
        repartition("--chain", CHAIN)
        at_end = len(written)
    finally:
        stop.set()
        thread.join()

    assert not errors, errors
    assert len(written) >= 20
    assert at_end > at_start  # The writer wrote while the move ran (waiting for its locks, or after).
    assert Transfer.objects.filter(chain=OTHER, key__startswith="rp-w-").count() == len(written)
    assert holder("ledger_transfer", CHAIN) == {partition_name("ledger_transfer", CHAIN)}
    now = everything()
    # What was there before the move is there, unchanged; the writer's rows were added beside it.
    for name in ("transfers", "seals", "keys"):
        assert set(before[name]) <= set(now[name]), name
    assert len(now["transfers"]) == len(before["transfers"]) + len(written)
    ledger_seal()
    assert intact(chain_findings(now=later()))
