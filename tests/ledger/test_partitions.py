"""The history partitioned by chain (migration 0004, ledger/partitions.py): each chain's transfers and
seals in its own partition or the DEFAULT one, keys unique across all of them, the foreign keys kept
by triggers, and every partition insert-only."""

import threading
from collections.abc import Iterator

import pytest
from django.db import IntegrityError, ProgrammingError, connection, connections, transaction

from ledger.chain import ledger_seal
from ledger.errors import TransferExistsWithDifferentFields
from ledger.models import Transfer, TransferKey
from ledger.partitions import chain_partition_of, chain_partitions_create, partition_name
from ledger.services import TransferOutcome, TransferRequest, account_create, transfer_create

NEW_CHAINS = ("parttest:2031", "parttest:2032", "parttest:2033")


def drop_test_partitions() -> None:
    """Partitions and archive constraints are DDL, which a test's flush does not undo: drop them."""
    with connection.cursor() as cursor:
        for chain in NEW_CHAINS:
            for table in ("ledger_transferseal", "ledger_transfer"):
                cursor.execute(f'DROP TABLE IF EXISTS "{partition_name(table, chain)}"')
        cursor.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint "
            "WHERE conname LIKE 'ledger_transfer%%_default_not_%%'"
        )
        for table, name in cursor.fetchall():
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')


@pytest.fixture
def clean_partitions(transactional_db: None) -> Iterator[None]:
    drop_test_partitions()
    yield
    connection.close()  # A failed test may leave the connection in a broken transaction.
    drop_test_partitions()


def where(transfer_id: int) -> str:
    """The partition that holds the transfer."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM ledger_transfer WHERE id = %s", [transfer_id])
        row = cursor.fetchone()
        assert row is not None
        return row[0].strip('"')


def move(key: str, chain: str, amount_fen: int = 100) -> TransferOutcome:
    source, sink = account_create(code="part:source"), account_create(code="part:sink")
    return transfer_create(
        transfer=TransferRequest.posted(
            key=key,
            debit_account_id=source.pk,
            credit_account_id=sink.pk,
            amount_fen=amount_fen,
            reason="test",
            chain=chain,
        )
    )


def test_a_new_chain_gets_its_own_partitions_before_its_first_transfer(clean_partitions):
    chain = NEW_CHAINS[0]
    assert chain_partition_of("ledger_transfer", chain) is None
    assert chain_partitions_create(chain=chain) is True
    assert chain_partitions_create(chain=chain) is True  # Idempotent.
    assert chain_partition_of("ledger_transfer", chain) == partition_name("ledger_transfer", chain)
    transfer = move("part-new", chain).transfer
    assert where(transfer.pk) == partition_name("ledger_transfer", chain)
    assert ledger_seal() >= 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM ledger_transferseal WHERE transfer_id = %s", [transfer.pk])
        assert cursor.fetchone() == (partition_name("ledger_transferseal", chain),)


def test_a_chain_without_a_partition_lands_in_the_default_one_and_stays_there(clean_partitions):
    chain = NEW_CHAINS[1]
    transfer = move("part-default", chain).transfer
    assert where(transfer.pk) == "ledger_transfer_default"
    # Its rows cannot move (insert-only), so it gets no partition of its own; nothing fails.
    assert chain_partitions_create(chain=chain) is False
    assert chain_partition_of("ledger_transfer", chain) is None
    assert move("part-default-2", chain).created


def test_partitions_are_created_outside_transactions_only(db):
    with pytest.raises(RuntimeError, match="outside a transaction"):
        chain_partitions_create(chain=NEW_CHAINS[0])


@pytest.mark.parametrize("table", ["ledger_transfer_default", "partition"])
def test_every_partition_is_insert_only(clean_partitions, table):
    chain = NEW_CHAINS[0]
    if table == "partition":
        chain_partitions_create(chain=chain)
        table = partition_name("ledger_transfer", chain)
    else:
        chain = NEW_CHAINS[1]
    transfer = move("part-protected", chain).transfer
    assert where(transfer.pk) == table
    for sql in (f'UPDATE "{table}" SET amount_fen = 1 WHERE id = %s', f'DELETE FROM "{table}" WHERE id = %s'):
        with (
            pytest.raises(ProgrammingError, match="Cannot update or delete rows"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [transfer.pk])
    assert Transfer.objects.get(pk=transfer.pk).amount_fen == 100


def test_a_raw_duplicate_key_in_another_chain_fails(clean_partitions):
    """Per partition the key index is not unique; the key table makes it unique across them all."""
    chain_partitions_create(chain=NEW_CHAINS[0])
    first = move("part-dup", NEW_CHAINS[0]).transfer
    with (
        pytest.raises(IntegrityError, match="ledger_transfer_key_unique"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            """
                INSERT INTO ledger_transfer (key, debit_account_id, credit_account_id, amount_fen, kind, reason,
                    metadata, chain, created_at, debit_account_debits_pending, debit_account_debits_posted,
                    debit_account_credits_pending, debit_account_credits_posted, credit_account_debits_pending,
                    credit_account_debits_posted, credit_account_credits_pending, credit_account_credits_posted)
                VALUES ('part-dup', %s, %s, 1, 'posted', 'raw', '{}', %s, now(), 0, 0, 0, 0, 0, 0, 0, 0)
                """,
            [first.debit_account_id, first.credit_account_id, NEW_CHAINS[1]],
        )
    assert Transfer.objects.filter(key="part-dup").count() == 1


def race(requests: list[tuple[str, str]]) -> list[object]:
    """Run `move(key, chain)` for each request in its own thread, all released at once."""
    barrier = threading.Barrier(len(requests))
    results: list[object] = [None] * len(requests)

    def run(i: int, key: str, chain: str) -> None:
        try:
            barrier.wait()
            results[i] = move(key, chain)
        except Exception as error:  # The outcome under test.
            results[i] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, *r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("rounds", [8])
def test_one_key_raced_in_one_chain_and_in_two_chains_makes_one_transfer(clean_partitions, rounds):
    chain_partitions_create(chain=NEW_CHAINS[0])
    account_create(code="part:source"), account_create(code="part:sink")
    for n in range(rounds):
        # Same key, same chain: one is created, the others get it back.
        same = race([(f"race-same-{n}", NEW_CHAINS[0])] * 4)
        assert all(isinstance(r, TransferOutcome) for r in same), same
        assert sorted(r.created for r in same) == [False, False, False, True]  # type: ignore[union-attr]
        # Same key, two chains (one partitioned, one in DEFAULT): one transfer, the other refused.
        crossed = race([(f"race-cross-{n}", NEW_CHAINS[0]), (f"race-cross-{n}", NEW_CHAINS[1])])
        created = [r for r in crossed if isinstance(r, TransferOutcome)]
        refused = [r for r in crossed if isinstance(r, TransferExistsWithDifferentFields)]
        assert len(created) == 1 and created[0].created and len(refused) == 1, crossed
        assert refused[0].field == "chain"
        assert Transfer.objects.filter(key=f"race-cross-{n}").count() == 1
    assert TransferKey.objects.count() == Transfer.objects.count()


def test_a_resolution_must_name_a_pending_transfer_of_its_chain(clean_partitions):
    source, sink = account_create(code="part:source"), account_create(code="part:sink")
    hold = transfer_create(
        transfer=TransferRequest.pending(
            key="part-hold", debit_account_id=source.pk, credit_account_id=sink.pk, amount_fen=5, reason="hold"
        )
    ).transfer
    insert = """
        INSERT INTO ledger_transfer (key, debit_account_id, credit_account_id, amount_fen, kind, pending_id, reason,
            metadata, chain, created_at, debit_account_debits_pending, debit_account_debits_posted,
            debit_account_credits_pending, debit_account_credits_posted, credit_account_debits_pending,
            credit_account_debits_posted, credit_account_credits_pending, credit_account_credits_posted)
        VALUES ('part-void', %s, %s, 5, 'void_pending', %s, 'raw', '{}', %s, now(), 0, 0, 0, 0, 0, 0, 0, 0)
    """
    for pending_id, chain in ((hold.pk + 1000, hold.chain), (hold.pk, NEW_CHAINS[1])):
        with (
            pytest.raises(IntegrityError, match="ledger_transfer_pending_exists"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(insert, [source.pk, sink.pk, pending_id, chain])


def test_a_seal_must_name_a_transfer_of_its_chain_and_a_key_comes_only_with_its_transfer(clean_partitions):
    transfer = move("part-sealed", "ledger").transfer
    for transfer_id, chain in ((transfer.pk + 1000, "ledger"), (transfer.pk, NEW_CHAINS[1])):
        with (
            pytest.raises(IntegrityError, match="ledger_transferseal_transfer_exists"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(
                "INSERT INTO ledger_transferseal (transfer_id, chain, sequence, link, sealed_at) "
                "VALUES (%s, %s, 99, 'x', now())",
                [transfer_id, chain],
            )
    with (
        pytest.raises(IntegrityError, match="ledger_transferkey_with_its_transfer"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("INSERT INTO ledger_transferkey (key, transfer_id, chain) VALUES ('orphan', 424242, 'ledger')")


def test_other_apps_rows_reference_transfers_through_the_key_table(db):
    """What referenced ledger_transfer(id) before 0004 references ledger_transferkey(transfer_id)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' "
            "AND confrelid = 'ledger_transferkey'::regclass ORDER BY 1"
        )
        assert [t for (t,) in cursor.fetchall()] == ["coupons_claim", "coupons_redemption"]
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confrelid = 'ledger_transfer'::regclass"
        )
        assert cursor.fetchone() == (0,)
