"""The ledger's history partitioned by chain, at scale: balance at a moment and the audit of one open
chain, on the partitioned tables of migration 0004 and on one unpartitioned table holding the same
rows, in the same run. Run as `python -m bench.partition_bench [--transfers N] [--chains C]`
(`make bench-partition`). Not part of the test suite.

It creates its own database (`ledger_partition_bench`, on the server DATABASE_URL names or the
embedded one), migrates it, and writes N posted transfers spread over C chains (one a program
year, one after the other in time), each chain in its own partition, by one set-based INSERT per
chain with every total consistent: per chain 1,000 debit accounts, and 100 provider accounts
credited by every chain (an account that lives across years, as a computing center's does). The
last chain, the open one, is sealed with the ledger's own canonical text and SHA-256 chaining (the
others are not sealed: only the open chain is audited). The bulk load turns the insert triggers off
(the key table is filled in one statement instead) and back on after.

The unpartitioned copy is the schema before 0004 (primary key id, unique key, the same two
account-time indexes, seals keyed by transfer): the tables `ledger_transfer` and
`ledger_transferseal` in a schema `flat`, filled from the partitioned ones. The same Python code
(`account_balance_at`, `chain_findings(chain=...)`) reads either: `search_path` picks the tables.
Then it prints the times and drops the database.

Measured on the shared 2-core machine, PostgreSQL 15: see docs/ledger-history.md.
"""

import argparse
import hashlib
import statistics
import time
from datetime import UTC, datetime, timedelta

from bench.ledger_bench import progress, recreate_database, resolve_target, setup_django

DATABASE = "ledger_partition_bench"
DEFAULT_TRANSFERS = 10_000_000
DEFAULT_CHAINS = 10
DEBIT_ACCOUNTS = 1_000  # per chain
PROVIDERS = 100  # shared by every chain
BALANCE_PROBES = 200
START = datetime(2020, 1, 1, tzinfo=UTC)

FLAT_SCHEMA = """
CREATE SCHEMA flat;
CREATE TABLE flat.ledger_transfer (LIKE public.ledger_transfer INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
CREATE TABLE flat.ledger_transferseal (LIKE public.ledger_transferseal INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
"""
FLAT_INDEXES = """
ALTER TABLE flat.ledger_transfer ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX ON flat.ledger_transfer (key);
CREATE INDEX ON flat.ledger_transfer (debit_account_id, created_at, id);
CREATE INDEX ON flat.ledger_transfer (credit_account_id, created_at, id);
CREATE UNIQUE INDEX ON flat.ledger_transfer (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX ON flat.ledger_transfer (expires_at) WHERE expires_at IS NOT NULL AND kind = 'pending';
ALTER TABLE flat.ledger_transferseal ADD PRIMARY KEY (transfer_id);
ALTER TABLE flat.ledger_transferseal ADD UNIQUE (chain, sequence);
"""
# Chain c's i-th transfer (0-based): debit account d0 + c*M + i%M, credit provider p0 + i%P, one fen;
# totals after it follow from i (the debit account's (i/M)+1-th debit, the provider's credits so far
# over every earlier chain and this one).
INSERT_CHAIN = """
INSERT INTO ledger_transfer (id, key, debit_account_id, credit_account_id, amount_fen, kind, reason, metadata, chain,
    created_at, debit_account_debits_pending, debit_account_debits_posted, debit_account_credits_pending,
    debit_account_credits_posted, credit_account_debits_pending, credit_account_debits_posted,
    credit_account_credits_pending, credit_account_credits_posted)
SELECT %(c)s::bigint * %(n)s + i + 1, 'b:' || (%(c)s::bigint * %(n)s + i + 1),
       %(d0)s + %(c)s * %(m)s + i %% %(m)s, %(p0)s + i %% %(p)s, 1, 'posted', 'bench', '{}', %(chain)s,
       %(start)s::timestamptz + i * interval '1 second',
       0, i / %(m)s + 1, 0, 0,
       0, 0, 0, %(c)s::bigint * (%(n)s / %(p)s) + i / %(p)s + 1
  FROM generate_series(0, %(n)s - 1) i
"""


def timed(label: str, fn, results: dict[str, float]) -> object:
    started = time.perf_counter()
    value = fn()
    results[label] = time.perf_counter() - started
    progress(f"{label}: {results[label]:.2f} s")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transfers", type=int, default=DEFAULT_TRANSFERS, help="ledger size (default 10,000,000)")
    parser.add_argument("--chains", type=int, default=DEFAULT_CHAINS, help="chains, one partition each (default 10)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    # Per chain, a whole number of rounds over the debit accounts (and so over the providers): the
    # accounts' final totals are then the same for each.
    n = args.transfers // args.chains // DEBIT_ACCOUNTS * DEBIT_ACCOUNTS
    if n == 0:
        parser.error(f"--transfers must be at least {DEBIT_ACCOUNTS:,} per chain")
    chains = [f"bench:{2020 + c}" for c in range(args.chains)]
    target = resolve_target(DATABASE, command="python -m bench.partition_bench")
    recreate_database(target, database=DATABASE)
    try:
        setup_django(target.bench_url)
        from django.core.management import call_command
        from django.db import connection, transaction

        from ledger.chain import CANONICAL, chain_findings
        from ledger.partitions import chain_partitions_create
        from ledger.selectors import account_balance_at

        call_command("migrate", verbosity=0)
        for chain in chains:
            chain_partitions_create(chain=chain)
        loads: dict[str, float] = {}
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
            # The bulk load: the insert triggers off, the key table filled in one statement after.
            cursor.execute("ALTER TABLE ledger_transfer DISABLE TRIGGER ledger_transfer_guard")
            cursor.execute("ALTER TABLE ledger_transferseal DISABLE TRIGGER ledger_transferseal_guard")
            cursor.execute("ALTER TABLE ledger_transferkey DISABLE TRIGGER ledger_transferkey_guard")

        def load() -> None:
            for c, chain in enumerate(chains):
                with connection.cursor() as cursor:
                    params = {"c": c, "n": n, "m": DEBIT_ACCOUNTS, "p": PROVIDERS, "d0": d0, "p0": p0, "chain": chain}
                    cursor.execute(INSERT_CHAIN, {**params, "start": START + timedelta(days=366 * c)})
                progress(f"chain {chain}: {n:,} transfers")
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO ledger_transferkey (key, transfer_id, chain) "
                    "SELECT key, id, chain FROM ledger_transfer"
                )
                cursor.execute("SELECT setval('ledger_transfer_id_seq', (SELECT max(id) FROM ledger_transfer))")

        timed(f"load {n * args.chains:,} transfers into {args.chains} partitions (indexes kept)", load, loads)
        open_chain = chains[-1]

        def seal() -> None:
            """The open chain's seals, by the ledger's canonical text and chaining (ledger/chain.py)."""
            link, rows = "", []
            with transaction.atomic(), connection.connection.cursor(name="seal") as cursor:
                cursor.itersize = 50_000
                cursor.execute(
                    f"SELECT t.id, {CANONICAL} FROM ledger_transfer t WHERE t.chain = %s ORDER BY t.id", [open_chain]
                )
                for sequence, (transfer_id, content) in enumerate(cursor, start=1):
                    link = hashlib.sha256((link + content).encode()).hexdigest()
                    rows.append((transfer_id, sequence, link, open_chain))
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
                    [open_chain, len(rows), link],
                )

        timed(f"seal the open chain ({n:,} transfers)", seal, loads)
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE ledger_transfer ENABLE TRIGGER ledger_transfer_guard")
            cursor.execute("ALTER TABLE ledger_transferseal ENABLE TRIGGER ledger_transferseal_guard")
            cursor.execute("ALTER TABLE ledger_transferkey ENABLE TRIGGER ledger_transferkey_guard")

        def flat() -> None:
            with connection.cursor() as cursor:
                cursor.execute(FLAT_SCHEMA)
                cursor.execute("INSERT INTO flat.ledger_transfer SELECT * FROM public.ledger_transfer ORDER BY id")
                cursor.execute("INSERT INTO flat.ledger_transferseal SELECT * FROM public.ledger_transferseal")
                cursor.execute(FLAT_INDEXES)

        timed("copy into one unpartitioned table, then its indexes", flat, loads)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
            cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('flat.ledger_transfer'))")
            flat_size = cursor.fetchone()[0]
            cursor.execute(
                "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits "
                "WHERE inhparent = 'public.ledger_transfer'::regclass"
            )
            partitioned_size = cursor.fetchone()[0]

        # Probes: a provider's balance (an account in every chain) and a debit account's of the open
        # chain, each at moments spread over the open chain's year.
        last_start = START + timedelta(days=366 * (args.chains - 1))
        moments = [last_start + timedelta(seconds=(k * 7919) % n) for k in range(BALANCE_PROBES)]
        accounts = {
            "provider (in every chain)": p0 + 7,
            "debit account (open chain only)": d0 + (args.chains - 1) * DEBIT_ACCOUNTS + 7,
        }
        results: dict[str, dict[str, float]] = {}
        answers: dict[str, list[object]] = {}
        for layout, search_path in (("partitioned", "public"), ("unpartitioned", "flat, public")):
            with connection.cursor() as cursor:
                cursor.execute(f"SET search_path TO {search_path}")
            times = results.setdefault(layout, {})
            for name, account_id in accounts.items():
                account_balance_at(account_id=account_id, at=moments[0])  # Warm the cache.
                samples = []
                for at in moments:
                    started = time.perf_counter()
                    answers.setdefault(f"{layout}:{name}", []).append(account_balance_at(account_id=account_id, at=at))
                    samples.append(time.perf_counter() - started)
                times[f"balance at a moment, {name} (median ms)"] = statistics.median(samples) * 1000
            chain_findings(chain=open_chain)  # Warm the cache.
            started = time.perf_counter()
            findings = chain_findings(chain=open_chain)
            times[f"audit of the open chain, {n:,} seals (s)"] = time.perf_counter() - started
            assert findings["seals_examined"] == n, findings
            assert not any(findings[k] for k in ("broken_links", "sequence_gaps", "head_mismatch")), findings
        for name in accounts:
            assert answers[f"partitioned:{name}"] == answers[f"unpartitioned:{name}"], name
        print(
            f"\n{n * args.chains:,} transfers in {args.chains} chains of {n:,}; "
            f"table and indexes: partitioned {partitioned_size}, unpartitioned {flat_size}\n"
        )
        print("| step | seconds |\n|---|---:|")
        for label, seconds in loads.items():
            print(f"| {label} | {seconds:.1f} |")
        print("\n| measure | partitioned | unpartitioned | ratio |\n|---|---:|---:|---:|")
        for label in results["partitioned"]:
            p, u = results["partitioned"][label], results["unpartitioned"][label]
            print(f"| {label} | {p:.3f} | {u:.3f} | {p / u:.2f} |")
    finally:
        if not args.keep:
            recreate_database(target, database=DATABASE, drop_only=True)


if __name__ == "__main__":
    main()
