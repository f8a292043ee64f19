"""The downtime of ledger migration 0004 (the history partitioned by chain) on a ledger of a given
size. Run as `python -m bench.migration_bench [--transfers N] [--chains C]` (`make
bench-migration`). Not part of the test suite.

Migration 0004 (ledger/migrations/0004_partition_by_chain.py) takes an ACCESS EXCLUSIVE lock on
`ledger_transfer` and `ledger_transferseal`, copies every row into the partitioned tables, fills
`ledger_transferkey`, rebuilds the indexes, constraints and triggers, all in the migration's one
transaction: every writer of the ledger (every redemption) waits until it commits. This bench
measures how long that is.

It creates its own database (`ledger_migration_bench`, on the server DATABASE_URL names or the
embedded one) and migrates every app to its latest migration except the ledger, which stops at
0003, the state just before 0004 (no migration of any app depends on ledger 0004: the bench checks
that the plan does not contain it). Into the 0003-shaped tables, with their indexes and foreign
keys, it writes N posted transfers spread over C chains (one a program year) by one set-based
INSERT per chain, every total consistent (the rows partition_bench writes: per chain 1,000 debit
accounts, and 100 provider accounts credited by every chain), then seals them with the ledger's
canonical text and SHA-256 chaining: every closed chain in full, the open chain's first half (the
sealer lags behind the open year). During the load the tables' triggers fire on no row: the
insert triggers (any trigger firing on INSERT, at 0003 the insert-only ones fire on UPDATE and
DELETE only) are disabled and re-enabled after, and the session runs as a replica
(`session_replication_role`), which skips the foreign keys' row-by-row checks: the rows are
consistent by construction, and 0004 validates the foreign keys to accounts over every row when it
re-adds them. Then VACUUM ANALYZE and a CHECKPOINT, so the migration does not pay for the load.

Then it runs `migrate ledger 0004` (call_command) and times it: that whole call is the downtime an
operator plans for. Separately, a second connection watches `pg_locks` for the migration's ACCESS
EXCLUSIVE lock on `ledger_transfer`; as soon as it sees it, it asks for the lock an INSERT takes
(ROW EXCLUSIVE) and records how long it waited: what a redemption arriving just then waits. Every
statement the migration sends is timed too, and the slowest are printed (where the time goes).

Checked after: the transfers and seals are the same rows (count and an order-independent checksum
of every row's text, before and after), `ledger_transferkey` has one key per transfer, each naming
its transfer and chain, the accounts are unchanged, and the balances of a provider (in every chain)
and of a debit account of the open chain at moments across the years are identical before and
after (computed the same way both times, then compared with `account_balance_at` after). Then it
prints the figures and drops the database.

Measured on the shared 2-core machine, PostgreSQL 15: see docs/ledger-history.md ("Migration 0004").
"""

import argparse
import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.ledger_bench import Target, progress, recreate_database, resolve_target, setup_django
from bench.partition_bench import DEBIT_ACCOUNTS, INSERT_CHAIN, PROVIDERS, START

DATABASE = "ledger_migration_bench"
DEFAULT_TRANSFERS = 1_000_000
DEFAULT_CHAINS = 5
LEDGER_BEFORE = "0003_chainhead_chain_transfer_chain_transferseal_chain_and_more"
LEDGER_MIGRATION = "0004_partition_by_chain"
POLL_S = 0.005  # How often the watcher looks for the migration's lock.
TOP_STATEMENTS = 10  # The migration's slowest statements, printed.

# Every row's text, summed as 64-bit hashes: the same rows (whatever their order or table) give the
# same sum. The columns are the same and in the same order before and after 0004.
CHECKSUM = "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0) FROM {table} t"
# An account's totals at a moment: those recorded on its newest transfer until then (the shape of
# ledger.selectors.account_balance_at, which reads tables 0004 makes, so it runs after only).
BALANCE_AT = """
SELECT totals FROM (
    (SELECT created_at, id, ARRAY[debit_account_debits_pending, debit_account_debits_posted,
            debit_account_credits_pending, debit_account_credits_posted] AS totals
       FROM ledger_transfer WHERE debit_account_id = %(a)s AND created_at <= %(at)s
      ORDER BY created_at DESC, id DESC LIMIT 1)
    UNION ALL
    (SELECT created_at, id, ARRAY[credit_account_debits_pending, credit_account_debits_posted,
            credit_account_credits_pending, credit_account_credits_posted]
       FROM ledger_transfer WHERE credit_account_id = %(a)s AND created_at <= %(at)s
      ORDER BY created_at DESC, id DESC LIMIT 1)
) newest ORDER BY created_at DESC, id DESC LIMIT 1
"""
ACCOUNTS = "SELECT count(*), sum(hashtextextended(a::text, 0)::numeric) FROM ledger_account a"


class LockWatcher(threading.Thread):
    """On a connection of its own: waits for another session to hold ACCESS EXCLUSIVE on the
    relation `oid`, then asks for ROW EXCLUSIVE on `ledger_transfer` (what an INSERT takes) and
    records how long it waited, and when it saw the lock."""

    def __init__(self, target: Target, database: str, oid: int) -> None:
        super().__init__(daemon=True)
        self.params = {**target.admin_params, "dbname": database}
        self.oid = oid
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.seen_at: float | None = None
        self.granted_at: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(**self.params, autocommit=True) as conn:
                conn.execute("SET application_name = 'migration_bench watcher'")
                self.ready.set()
                while not self.stop.is_set():
                    row = conn.execute(
                        "SELECT 1 FROM pg_locks WHERE locktype = 'relation' AND relation = %s "
                        "AND mode = 'AccessExclusiveLock' AND granted AND pid <> pg_backend_pid()",
                        [self.oid],
                    ).fetchone()
                    if row:
                        self.seen_at = time.perf_counter()
                        with conn.transaction(force_rollback=True):
                            conn.execute("LOCK TABLE ledger_transfer IN ROW EXCLUSIVE MODE")
                            self.granted_at = time.perf_counter()
                        return
                    time.sleep(POLL_S)
        except BaseException as error:  # Reported by the main thread.
            self.error = error
            self.ready.set()

    @property
    def waited(self) -> float | None:
        if self.seen_at is None or self.granted_at is None:
            return None
        return self.granted_at - self.seen_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transfers", type=int, default=DEFAULT_TRANSFERS, help="ledger size (default 1,000,000)")
    parser.add_argument("--chains", type=int, default=DEFAULT_CHAINS, help="chains, one per year (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    # Per chain, a whole number of rounds over the debit accounts (and so over the providers).
    n = args.transfers // args.chains // DEBIT_ACCOUNTS * DEBIT_ACCOUNTS
    if n == 0:
        parser.error(f"--transfers must be at least {DEBIT_ACCOUNTS:,} per chain")
    total = n * args.chains
    chains = [f"bench:{2020 + c}" for c in range(args.chains)]
    target = resolve_target(DATABASE, command="python -m bench.migration_bench")
    recreate_database(target, database=DATABASE)
    try:
        setup_django(target.bench_url)
        from django.core.management import call_command
        from django.db import connection, transaction
        from django.db.migrations.executor import MigrationExecutor

        from ledger.chain import CANONICAL

        # Every app at its latest migration, the ledger at 0003.
        executor = MigrationExecutor(connection)
        graph = executor.loader.graph
        targets = [leaf for leaf in graph.leaf_nodes() if leaf[0] != "ledger"] + [("ledger", LEDGER_BEFORE)]
        plan = executor.migration_plan(targets)
        dependants = [m for m, _ in plan if (m.app_label, m.name) == ("ledger", LEDGER_MIGRATION)]
        assert not dependants, "an app's latest migration depends on ledger 0004: migrate it to before it"
        progress(f"migrate every app but the ledger to its latest, the ledger to {LEDGER_BEFORE}")
        executor.migrate(targets, plan=plan)

        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO ledger_account (code, debits_pending, debits_posted, credits_pending, credits_posted, "
                "debits_must_not_exceed_credits, credits_must_not_exceed_debits, closed, created_at) "
                "SELECT 'bench:d:' || c || ':' || j, 0, %s, 0, 0, false, false, false, now() "
                "FROM generate_series(0, %s - 1) c, generate_series(0, %s - 1) j ORDER BY c, j",
                [n // DEBIT_ACCOUNTS, args.chains, DEBIT_ACCOUNTS],
            )
            cursor.execute("SELECT min(id) FROM ledger_account")
            d0 = cursor.fetchone()[0]
            cursor.execute(
                "INSERT INTO ledger_account (code, debits_pending, debits_posted, credits_pending, credits_posted, "
                "debits_must_not_exceed_credits, credits_must_not_exceed_debits, closed, created_at) "
                "SELECT 'bench:p:' || k, 0, 0, 0, %s, false, false, false, now() FROM generate_series(0, %s - 1) k "
                "ORDER BY k",
                [args.chains * (n // PROVIDERS), PROVIDERS],
            )
            cursor.execute("SELECT min(id) FROM ledger_account WHERE code LIKE 'bench:p:%%'")
            p0 = cursor.fetchone()[0]
            # The triggers that fire on INSERT into the two tables (none at 0003: the insert-only
            # triggers fire on UPDATE and DELETE), disabled for the load.
            cursor.execute(
                "SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
                "WHERE tgrelid IN ('ledger_transfer'::regclass, 'ledger_transferseal'::regclass) "
                "AND NOT tgisinternal AND tgenabled <> 'D' AND tgtype & 4 <> 0"
            )
            insert_triggers = cursor.fetchall()
            for table, name in insert_triggers:
                cursor.execute(f'ALTER TABLE {table} DISABLE TRIGGER "{name}"')
            # The foreign keys' checks (internal triggers) are skipped for this session only.
            cursor.execute("SET session_replication_role = replica")

        started = time.perf_counter()
        for c, chain in enumerate(chains):
            with connection.cursor() as cursor:
                params = {"c": c, "n": n, "m": DEBIT_ACCOUNTS, "p": PROVIDERS, "d0": d0, "p0": p0, "chain": chain}
                cursor.execute(INSERT_CHAIN, {**params, "start": START + timedelta(days=366 * c)})
            progress(f"chain {chain}: {n:,} transfers")
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval(pg_get_serial_sequence('ledger_transfer', 'id'), %s)", [total])
        load_s = time.perf_counter() - started

        # The seals: every closed chain in full, the open one's first half.
        started = time.perf_counter()
        sealed = 0
        for c, chain in enumerate(chains):
            upto = n if c < len(chains) - 1 else n // 2
            link, rows = "", []
            with transaction.atomic(), connection.connection.cursor(name="seal") as cursor:
                cursor.itersize = 50_000
                cursor.execute(
                    f"SELECT t.id, {CANONICAL} FROM ledger_transfer t WHERE t.chain = %s ORDER BY t.id LIMIT %s",
                    [chain, upto],
                )
                for sequence, (transfer_id, content) in enumerate(cursor, start=1):
                    link = hashlib.sha256((link + content).encode()).hexdigest()
                    rows.append((transfer_id, sequence, link, chain))
            with (
                connection.cursor() as cursor,
                cursor.copy(
                    "COPY ledger_transferseal (transfer_id, sequence, link, chain, sealed_at) FROM STDIN"
                ) as copy,
            ):
                now = datetime.now(UTC)
                for row in rows:
                    copy.write_row((*row, now))
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO ledger_chainhead (chain, last_sequence, last_link, watermark_id) "
                    "VALUES (%s, %s, %s, 0)",
                    [chain, len(rows), link],
                )
            sealed += len(rows)
            progress(f"chain {chain}: {len(rows):,} seals")
        seal_s = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")
            for table, name in insert_triggers:
                cursor.execute(f'ALTER TABLE {table} ENABLE TRIGGER "{name}"')
            cursor.execute("VACUUM ANALYZE")
            cursor.execute("CHECKPOINT")
            cursor.execute(
                "SELECT pg_size_pretty(pg_total_relation_size('ledger_transfer') "
                "+ pg_total_relation_size('ledger_transferseal'))"
            )
            size = cursor.fetchone()[0]
        progress(f"loaded {total:,} transfers in {load_s:.1f} s, {sealed:,} seals in {seal_s:.1f} s; {size}")

        # Probes: a provider (credited by every chain) and a debit account of the open chain, at
        # moments spread over every year.
        probe_accounts = [p0 + 7, d0 + (args.chains - 1) * DEBIT_ACCOUNTS + 7]
        moments = [
            START + timedelta(days=366 * c, seconds=(k * 7919) % n) for c in range(args.chains) for k in range(5)
        ]
        moments.append(START + timedelta(days=366 * args.chains))

        def state() -> dict[str, Any]:
            with connection.cursor() as cursor:
                found: dict[str, Any] = {}
                for table in ("ledger_transfer", "ledger_transferseal"):
                    cursor.execute(CHECKSUM.format(table=table))
                    found[table] = cursor.fetchone()
                cursor.execute(ACCOUNTS)
                found["ledger_account"] = cursor.fetchone()
                balances = []
                for account_id in probe_accounts:
                    for at in moments:
                        cursor.execute(BALANCE_AT, {"a": account_id, "at": at})
                        row = cursor.fetchone()
                        balances.append(tuple(row[0]) if row else None)
                found["balances"] = balances
                return found

        before = state()
        assert before["ledger_transfer"][0] == total and before["ledger_transferseal"][0] == sealed, before
        with connection.cursor() as cursor:
            cursor.execute("SELECT 'ledger_transfer'::regclass::oid")
            oid = cursor.fetchone()[0]
        connection.close()  # The migration opens its own; the watcher's lock request must not wait on ours.

        watcher = LockWatcher(target, DATABASE, oid)
        watcher.start()
        watcher.ready.wait()
        progress(f"migrate ledger {LEDGER_MIGRATION}")
        statements: list[tuple[float, str]] = []

        def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            began = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                statements.append((time.perf_counter() - began, " ".join(str(sql).split())))

        started = time.perf_counter()
        with connection.execute_wrapper(timed):
            call_command("migrate", "ledger", LEDGER_MIGRATION, verbosity=0)
        migrate_s = time.perf_counter() - started
        watcher.stop.set()
        watcher.join(timeout=60)
        if watcher.error is not None:
            raise watcher.error
        progress(f"migrated in {migrate_s:.2f} s; a writer waited {watcher.waited} s")

        after = state()
        for name in ("ledger_transfer", "ledger_transferseal", "ledger_account", "balances"):
            assert before[name] == after[name], (name, before[name], after[name])
        from ledger.selectors import account_balance_at

        selector = []
        for account_id in probe_accounts:
            for at in moments:
                balance = account_balance_at(account_id=account_id, at=at)
                selector.append(
                    (balance.debits_pending, balance.debits_posted, balance.credits_pending, balance.credits_posted)
                )
        zero = (0, 0, 0, 0)
        assert selector == [b or zero for b in after["balances"]], (selector, after["balances"])
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), count(t.id) FILTER (WHERE t.chain = k.chain AND t.key = k.key) "
                "FROM ledger_transferkey k LEFT JOIN ledger_transfer t ON t.id = k.transfer_id"
            )
            keys, matching = cursor.fetchone()
            cursor.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'ledger_transfer'::regclass")
            partitions = cursor.fetchone()[0]
            cursor.execute(
                "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits "
                "WHERE inhparent IN ('ledger_transfer'::regclass, 'ledger_transferseal'::regclass)"
            )
            size_after = cursor.fetchone()[0]
            cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('ledger_transferkey'))")
            keys_size = cursor.fetchone()[0]
        assert keys == matching == total, (keys, matching, total)
        assert partitions == args.chains + 2, partitions  # Each chain's, the default chain's, DEFAULT.

        per_million = migrate_s / (total / 1_000_000)
        waited = watcher.waited
        print(
            f"\n{total:,} transfers in {args.chains} chains of {n:,}, {sealed:,} seals; before 0004 "
            f"the two tables and their indexes took {size}, after it {size_after} and the key table "
            f"{keys_size} (until it commits, both copies are on disk)\n"
        )
        print("| measure | seconds | seconds per million transfers |\n|---|---:|---:|")
        print(f"| `migrate ledger 0004` (the downtime) | {migrate_s:.1f} | {per_million:.1f} |")
        if waited is not None:
            print(
                f"| a writer's wait for `ledger_transfer` (the ACCESS EXCLUSIVE lock, seen within "
                f"{POLL_S * 1000:.0f} ms of being taken) | {waited:.1f} | {waited / (total / 1_000_000):.1f} |"
            )
        else:
            print("| a writer's wait for `ledger_transfer` | not seen | |")
        in_all = sum(seconds for seconds, _ in statements)
        print(f"\nThe migration's slowest statements (of {len(statements)}, {in_all:.1f} s in all):\n")
        print("| statement | seconds |\n|---|---:|")
        for seconds, sql in sorted(statements, reverse=True)[:TOP_STATEMENTS]:
            text = sql if len(sql) <= 100 else sql[:97] + "..."
            print(f"| `{text}` | {seconds:.1f} |")
        print(
            f"\nChecked: {total:,} transfers and {sealed:,} seals the same rows before and after, "
            f"{keys:,} keys each naming its transfer, {len(selector)} balances identical."
        )
    finally:
        if not args.keep:
            recreate_database(target, database=DATABASE, drop_only=True)


if __name__ == "__main__":
    main()
