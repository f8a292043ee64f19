"""Audit and sealing at scale: how long the chain takes to seal, and each audit check to run,
over a large ledger. Run as `python -m bench.audit_bench [--transfers N]` (`make bench-audit`).

It creates its own database (`coupons_bench`, as bench.ledger_bench does, on the server that
DATABASE_URL names or the embedded one), fills the ledger with N posted transfers by one
set-based INSERT (with consistent totals), seals them all with the real sealer, runs every audit
check, prints the times, and drops the database. Not part of the test suite.

Reference point (2 cores, PostgreSQL 15): 1,000,000 transfers sealed in 38 s; all thirteen audit
checks ran in 5.7 s, of which the whole-chain verification took 5.0 s.
"""

import argparse
import time

from bench.ledger_bench import progress, recreate_database, resolve_target, setup_django

DEFAULT_TRANSFERS = 1_000_000
SEAL_BATCH = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transfers", type=int, default=DEFAULT_TRANSFERS, help="ledger size (default 1,000,000)")
    args = parser.parse_args()
    target = resolve_target()
    recreate_database(target)
    try:
        setup_django(target.bench_url)
        from django.core.management import call_command
        from django.db import connection

        from coupons.services.audit import CHECKS, _run_check
        from ledger.chain import ledger_seal
        from ledger.services import account_create

        call_command("migrate", verbosity=0)
        debit, credit = account_create(code="bench:debit"), account_create(code="bench:credit")
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO ledger_transfer (key, debit_account_id, credit_account_id, amount_fen, kind, reason,
                    metadata, created_at, debit_account_debits_pending, debit_account_debits_posted,
                    debit_account_credits_pending, debit_account_credits_posted, credit_account_debits_pending,
                    credit_account_debits_posted, credit_account_credits_pending, credit_account_credits_posted)
                SELECT 'bench-' || i, %s, %s, 1, 'posted', 'bench', '{}',
                       now() - interval '1 hour' + i * interval '1 microsecond', 0, i, 0, 0, 0, 0, 0, i
                  FROM generate_series(1, %s) i
                """,
                [debit.pk, credit.pk, args.transfers],
            )
            cursor.execute("UPDATE ledger_account SET debits_posted = %s WHERE id = %s", [args.transfers, debit.pk])
            cursor.execute("UPDATE ledger_account SET credits_posted = %s WHERE id = %s", [args.transfers, credit.pk])
            cursor.execute("ANALYZE")
        progress(f"inserted {args.transfers:,} transfers in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        sealed = 0
        while (batch := ledger_seal(limit=SEAL_BATCH)) > 0:
            sealed += batch
        seal_s = time.perf_counter() - started
        print(f"| step | seconds |\n|---|---:|\n| seal {sealed:,} transfers | {seal_s:.2f} |")
        total = 0.0
        for name, check in CHECKS:
            started = time.perf_counter()
            result = _run_check(name, check)
            elapsed = time.perf_counter() - started
            total += elapsed
            print(f"| audit: {name} ({'ok' if result['ok'] else 'FAILED'}) | {elapsed:.2f} |")
        print(f"| audit, all checks | {total:.2f} |")
    finally:
        recreate_database(target, drop_only=True)


if __name__ == "__main__":
    main()
