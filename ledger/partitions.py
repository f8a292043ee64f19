"""The partitions of the ledger's history: `ledger_transfer` and `ledger_transferseal` are
partitioned by LIST (chain), one partition per chain (the coupon program keeps a chain per program
year), and a DEFAULT partition each, so that no insert ever fails for want of a partition.

A chain's partitions are made before its first transfer (`chain_partitions_create`, which the coupon
program calls when it creates a program year); a chain whose first transfers came before that keeps
them in the DEFAULT partition (nothing moves rows between partitions: the rows are insert-only),
and such a chain cannot be archived on its own. See docs/ledger-history.md.
"""

import hashlib
import re
from typing import Final

from django.db import connection, transaction

PARTITIONED_TABLES: Final = ("ledger_transfer", "ledger_transferseal")
# Creating a partition takes an ACCESS EXCLUSIVE lock on the parent table for a moment: behind a
# long transaction it gives up rather than hold every writer of the ledger in its queue.
PARTITION_LOCK_TIMEOUT: Final = "2s"


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


def chain_partitions_create(*, chain: str) -> bool:
    """Give `chain` its own partition of each partitioned table; return whether it has them now.

    Idempotent. Outside any transaction (it commits its DDL at once, so the parent's lock is held
    for milliseconds). Returns False, creating nothing, when the chain's first rows are already in
    the DEFAULT partition: they stay there, readable and sealed as any others.
    """
    if connection.in_atomic_block:
        raise RuntimeError("chain_partitions_create runs outside a transaction (it takes the parent's lock).")
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
            for table in PARTITIONED_TABLES:
                if chain_partition_of(table, chain) is None:
                    name = partition_name(table, chain)
                    cursor.execute(f'CREATE TABLE "{name}" PARTITION OF {table} FOR VALUES IN (%s)', [chain])
                    # Its indexes named after the parent's, as a constraint's error must read.
                    cursor.execute(
                        "SELECT ledger_partition_indexes_name(%s::regclass, %s)", [name, chain_suffix(chain)]
                    )
        return True
