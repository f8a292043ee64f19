"""Moving a chain's rows out of the DEFAULT partitions into partitions of its own
(`manage.py ledger_repartition`): the repair for a chain whose first transfers were written before it
had partitions (a year created by a path that forgot them, or whose partitions could not be made in
time). Such a chain cannot be archived; once moved, it is a chain like any other.

`chain_repartition` does it for both partitioned tables in one transaction, under the locks that
DDL on them takes (`ledger.partitions.ddl_locks_take`: every writer and reader of the ledger's
transfers waits until it commits), per table:

1. `CREATE TABLE <partition> (LIKE <parent> INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`, a plain
   table with the parent's columns in its order and its CHECK constraints by name;
2. copy the chain's rows from the DEFAULT partition into it, every column as it is (ids, hashes,
   seals). No trigger fires: the table is not a partition yet, so the keys' guard inserts no key
   (`ledger_transferkey` is not touched) and the foreign-key guards check nothing again;
3. delete them from the DEFAULT partition. Its insert-only trigger refuses that to everyone; this
   statement alone, in this session, runs with it ignored (`pgtrigger.ignore`, a setting local to
   the transaction); the trigger itself stays on, enabled, for every other statement;
4. `ATTACH PARTITION` it for the chain: PostgreSQL checks that every row belongs to the chain and
   that the DEFAULT partition holds none of them any more, validates the foreign keys to accounts,
   builds the parent's indexes on it and clones the parent's triggers onto it (the insert-only one
   and the guards), as for a partition made by `chain_partitions_create`; its indexes are then
   named after the parent's (`ledger_partition_indexes_name`).

Before and after, it takes a fingerprint of the chain's rows read through the parent (how many, and
the md5 of every row's text in id order) and refuses to commit unless both are identical and the
DEFAULT partitions hold none of the chain's rows. A failure anywhere rolls it all back: DDL is
transactional in PostgreSQL. A reader whose snapshot predates the commit still sees the rows where
they were (in the DEFAULT partition), one after it sees them in the new one: never both, never none.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import pgtrigger
from django.db import connection, transaction

from ledger.errors import RepartitionRefused
from ledger.models import ChainArchive
from ledger.partitions import (
    PARTITIONED_TABLES,
    chain_partition_of,
    chain_suffix,
    ddl_locks_take,
    ddl_retry,
    partition_name,
)

# The move holds the ledger's locks for as long as copying the chain's rows takes: it waits this
# long for them (and tries again, `ddl_retry`) rather than queue every writer behind a long reader.
REPARTITION_LOCK_TIMEOUT: Final = "10s"
INSERT_ONLY_TRIGGERS: Final = ("ledger.Transfer:transfer_insert_only", "ledger.TransferSeal:seal_insert_only")
_ORDER: Final = {"ledger_transfer": "id", "ledger_transferseal": "transfer_id"}


@dataclass
class RepartitionPlan:
    """What a move does: per partitioned table, the chain's rows in its DEFAULT partition and the
    partition they go to (tables where the chain has its partition already are left out)."""

    chain: str
    rows: dict[str, int] = field(default_factory=dict)
    partitions: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return "; ".join(
            f"{rows} rows of {table}_default into {self.partitions[table]}" for table, rows in self.rows.items()
        )


def _plan(chain: str) -> RepartitionPlan:
    """What moving `chain` takes, or `RepartitionRefused` saying why it cannot."""
    if ChainArchive.objects.filter(chain=chain).exists():
        raise RepartitionRefused(f"Chain {chain} is archived: its rows left the database.")
    plan = RepartitionPlan(chain=chain)
    existing = []
    with connection.cursor() as cursor:
        for table in PARTITIONED_TABLES:
            own = chain_partition_of(table, chain)
            if own is not None:
                existing.append(own)
                continue
            cursor.execute(f"SELECT count(*) FROM {table}_default WHERE chain = %s", [chain])
            row = cursor.fetchone()
            assert row is not None
            plan.rows[table] = int(row[0])
            plan.partitions[table] = partition_name(table, chain)
    if not plan.rows:
        raise RepartitionRefused(
            f"Chain {chain} has partitions of its own already ({', '.join(existing)}): nothing to move."
        )
    if not any(plan.rows.values()):
        raise RepartitionRefused(
            f"No transfer or seal of chain {chain} is in the DEFAULT partition: an unknown chain, or one "
            "with no transfer yet (`chain_partitions_create` gives it partitions)."
        )
    return plan


def chain_repartition_plan(*, chain: str) -> RepartitionPlan:
    """What `chain_repartition` would move now (a dry run: nothing is locked or changed)."""
    return _plan(chain)


def _fingerprint(chain: str) -> dict[str, tuple[int, str]]:
    """Per table, the chain's rows read through the parent: how many, and the md5 of their text in
    order (the parent's row type, whichever partition holds them)."""
    found = {}
    with connection.cursor() as cursor:
        for table in PARTITIONED_TABLES:
            cursor.execute(
                f"SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t.{_ORDER[table]})), '') "
                f"FROM {table} t WHERE t.chain = %s",
                [chain],
            )
            row = cursor.fetchone()
            assert row is not None
            found[table] = (int(row[0]), str(row[1]))
    return found


def _columns(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [table],
        )
        row = cursor.fetchone()
        assert row is not None
        return str(row[0])


def _move(plan: RepartitionPlan, progress: Callable[[str], None]) -> RepartitionPlan:
    chain = plan.chain
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{REPARTITION_LOCK_TIMEOUT}'")
            # As `chain_partitions_create` does: one maker of this chain's partitions at a time.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('ledger_partition:' || %s))", [chain])
            ddl_locks_take(cursor)
        progress("locked the ledger's transfers and seals")
        plan = _plan(chain)  # Again, under the locks: nothing can change it from here.
        before = _fingerprint(chain)
        for table, rows in plan.rows.items():
            name, columns = plan.partitions[table], _columns(table)
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE TABLE "{name}" (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
                cursor.execute(
                    f'INSERT INTO "{name}" ({columns}) SELECT {columns} FROM {table}_default '
                    f"WHERE chain = %s ORDER BY {_ORDER[table]}",
                    [chain],
                )
                if cursor.rowcount != rows:
                    raise RepartitionRefused(f"{table}: copied {cursor.rowcount} rows of {rows}; nothing was moved.")
                progress(f"{table}: copied {rows} rows into {name}")
                with pgtrigger.ignore(*INSERT_ONLY_TRIGGERS):
                    cursor.execute(f"DELETE FROM {table}_default WHERE chain = %s", [chain])
                    deleted = cursor.rowcount
                if deleted != rows:
                    raise RepartitionRefused(f"{table}: deleted {deleted} rows of {rows}; nothing was moved.")
                progress(f"{table}: removed them from {table}_default")
                cursor.execute(f'ALTER TABLE {table} ATTACH PARTITION "{name}" FOR VALUES IN (%s)', [chain])
                cursor.execute("SELECT ledger_partition_indexes_name(%s::regclass, %s)", [name, chain_suffix(chain)])
                progress(f"{table}: attached {name} for chain {chain}")
        after = _fingerprint(chain)
        in_place = all(chain_partition_of(table, chain) == name for table, name in plan.partitions.items())
        if after != before or not in_place:
            raise RepartitionRefused(f"Chain {chain}'s rows differ after the move ({before} != {after}); rolled back.")
        with connection.cursor() as cursor:
            for table in PARTITIONED_TABLES:
                cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table}_default WHERE chain = %s)", [chain])
                row = cursor.fetchone()
                if row is None or row[0]:
                    raise RepartitionRefused(f"{table}_default still holds rows of chain {chain}; rolled back.")
        progress("verified: the same rows, none left in the DEFAULT partitions; committing")
    return plan


def chain_repartition(*, chain: str, progress: Callable[[str], None] = lambda _: None) -> RepartitionPlan:
    """Move `chain`'s rows from the DEFAULT partitions into partitions of its own (the module's
    docstring says how); return what was moved. Outside a transaction; `RepartitionRefused` for an
    archived chain, a chain with partitions already, or one with no rows in the DEFAULT partitions."""
    if connection.in_atomic_block:
        raise RuntimeError("chain_repartition runs outside a transaction (it commits its DDL).")
    _plan(chain)  # Refused before any lock is taken.
    return ddl_retry(lambda: _move(_plan(chain), progress))
