"""The partitions of the ledger's history: `ledger_transfer` and `ledger_transferseal` are
partitioned by LIST (chain), one partition per chain (the coupon program keeps a chain per program
year), and a DEFAULT partition each, so that no insert ever fails for want of a partition.

A chain's partitions are made before its first transfer (`chain_partitions_create`, which the coupon
program calls when it creates a program year, and again before it opens one); a chain whose first
transfers came before that keeps them in the DEFAULT partition (the rows are insert-only), and such
a chain cannot be archived on its own until `manage.py ledger_repartition` (ledger/repartition.py)
moves them into partitions of its own. See docs/ledger-history.md.
"""

import hashlib
import re
import time
from collections.abc import Callable
from typing import Final, TypeVar

import psycopg
from django.db import OperationalError, connection, transaction
from django.db.backends.utils import CursorWrapper

PARTITIONED_TABLES: Final = ("ledger_transfer", "ledger_transferseal")
# Creating a partition takes an ACCESS EXCLUSIVE lock on the parent table for a moment: behind a
# long transaction it gives up rather than hold every writer of the ledger in its queue.
PARTITION_LOCK_TIMEOUT: Final = "2s"
# A lock not had (`ddl_locks_take`): tried this many times, DDL_PAUSE_S, twice that, ... apart.
DDL_ATTEMPTS: Final = 5
DDL_PAUSE_S: Final = 0.2
T = TypeVar("T")


def partition_name(table: str, chain: str) -> str:
    """The name of `table`'s partition for `chain`: readable, and unique by a hash of the chain
    (two chains that read the same once their punctuation is folded still get two names)."""
    readable = re.sub(r"[^a-z0-9]+", "_", chain.lower()).strip("_")[:24]
    return f"{table}_{readable}_{chain_suffix(chain)}"


def chain_suffix(chain: str) -> str:
    """What names a chain in its partitions' names and their indexes'."""
    return hashlib.sha256(chain.encode()).hexdigest()[:8]


def chain_partition_of(table: str, chain: str) -> str | None:
    """The partition of `table` that holds exactly `chain`, if there is one (not the DEFAULT)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = %s::regclass
               AND pg_get_expr(c.relpartbound, c.oid) = 'FOR VALUES IN (' || quote_literal(%s) || ')'
            """,
            [table, chain],
        )
        row = cursor.fetchone()
        return row[0] if row else None


def _in_default(table: str, chain: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table}_default WHERE chain = %s)", [chain])
        row = cursor.fetchone()
        return bool(row and row[0])


def ddl_locks_take(cursor: CursorWrapper) -> None:
    """Inside the caller's transaction: the locks a partition's DDL takes, in an order no writer can
    deadlock with. Creating or attaching a partition locks the two tables (ACCESS EXCLUSIVE) and, for
    the foreign keys it clones, the tables they reference (SHARE ROW EXCLUSIVE on `ledger_account`),
    in that order; a writer updates an account and then inserts its transfer, the other way round,
    so taking both as the DDL does would deadlock with it (and PostgreSQL could cancel the writer).
    So: wait for the two tables (up to the lock timeout) holding nothing a writer waits for, then
    take the referenced tables without waiting. A writer holding one of those is waiting for us:
    `LockNotAvailable` is raised at once, the caller rolls back (the writer goes on) and tries again."""
    cursor.execute(f"LOCK TABLE {', '.join(PARTITIONED_TABLES)} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(
        "SELECT DISTINCT confrelid::regclass::text FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])",
        [list(PARTITIONED_TABLES)],
    )
    referenced = sorted(row[0] for row in cursor.fetchall())
    if referenced:
        cursor.execute(f"LOCK TABLE {', '.join(referenced)} IN SHARE ROW EXCLUSIVE MODE NOWAIT")


def ddl_retry(attempt: Callable[[], T], *, attempts: int = DDL_ATTEMPTS) -> T:
    """Run `attempt` (a transaction that takes `ddl_locks_take`) again while a lock was not had, a
    short and growing pause between; the last failure is raised."""
    for n in range(1, attempts + 1):
        try:
            return attempt()
        except OperationalError as error:
            if not isinstance(error.__cause__, psycopg.errors.LockNotAvailable) or n == attempts:
                raise
            time.sleep(DDL_PAUSE_S * n)
    raise AssertionError("unreachable")


def chain_partitions_create(*, chain: str) -> bool:
    """Give `chain` its own partition of each partitioned table; return whether it has them now.

    Idempotent. Outside any transaction (it commits its DDL at once, so the parent's lock is held
    for milliseconds; taken as `ddl_locks_take` says, tried again a few times). Returns False,
    creating nothing, when the chain's first rows are already in the DEFAULT partition: they stay
    there, readable and sealed as any others, until `manage.py ledger_repartition` moves them.
    """
    if connection.in_atomic_block:
        raise RuntimeError("chain_partitions_create runs outside a transaction (it takes the parent's lock).")
    return ddl_retry(lambda: _chain_partitions_create(chain))


def _chain_partitions_create(chain: str) -> bool:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{PARTITION_LOCK_TIMEOUT}'")
            # One creator at a time per chain; a second waits, then finds the partitions made.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('ledger_partition:' || %s))", [chain])
        if all(chain_partition_of(table, chain) for table in PARTITIONED_TABLES):
            return True
        if any(_in_default(table, chain) for table in PARTITIONED_TABLES):
            return False
        with connection.cursor() as cursor:
            ddl_locks_take(cursor)
            for table in PARTITIONED_TABLES:
                if chain_partition_of(table, chain) is None:
                    name = partition_name(table, chain)
                    cursor.execute(f'CREATE TABLE "{name}" PARTITION OF {table} FOR VALUES IN (%s)', [chain])
                    # Its indexes named after the parent's, as a constraint's error must read.
                    cursor.execute(
                        "SELECT ledger_partition_indexes_name(%s::regclass, %s)", [name, chain_suffix(chain)]
                    )
        return True
