"""The year end at scale: how fast the annual reset expires a year's grants, and how long the audit
then takes over that ledger. Run as `python -m bench.yearend_bench [--grants N]` (`make bench-yearend`).

It creates its own database (`coupons_bench_yearend`, on the server that DATABASE_URL names or the
embedded one; a left-over one is dropped first), loads the demo data (`seed_demo`: real applications,
redemptions, claims and settlements for the audit to judge), then issues N grants in program year
2030 and a smaller number in 2040. The set-up is fast rather than faithful to the approval path: the
applications, grant accounts and grant rows are bulk-inserted, and the two issuing transfers of each
grant (pool → grant, cap → cap used) go through the ledger's batch path (`transfers_create`), so every
account total and transfer row is the ledger's own. Then, timed:

1. `annual_reset` of 2030 (the service, batched: `coupons.services.grants.grants_expire_batch`);
2. the old path as the baseline: 2040 closed, then one `grant_expire` per grant, one transaction each,
   as the reset did before;
3. sealing the ledger's hash chains and every audit check (`coupons.services.audit.CHECKS`).

It checks the outcome (every grant expired, the lapsed account holds exactly what the grants held),
prints the figures and drops the database. Not part of the test suite.
"""

import argparse
import cProfile
import datetime as dt
import io
import pstats
import re
import time
from typing import Any

from bench.ledger_bench import progress, recreate_database, resolve_target, setup_django

BENCH_DATABASE = "coupons_bench_yearend"
DEFAULT_GRANTS = 100_000
DEFAULT_BASELINE_GRANTS = 2_000
YEAR = 2030  # Future years, clear of the demo's.
BASELINE_YEAR = 2040
ENTERPRISES = 4  # The demo's verified enterprises share the grants (their caps hold them all).
ISSUE_BATCH = 500  # Grants per ledger batch at set-up: two transfers each, within TRANSFERS_PER_BATCH_MAX.
SEAL_BATCH = 10_000
AFTER = dt.timedelta(days=1)  # The reset runs a day after the year's end.
PROGRESS_EVERY = 10_000


def sparse_progress(message: str) -> None:
    """The reset's progress, but only every PROGRESS_EVERY grants expired (it reports every batch)."""
    match = re.search(r"grants expired (\d+)/(\d+)", message)
    if match is None or int(match[1]) % PROGRESS_EVERY == 0 or match[1] == match[2]:
        progress(message)


def amount_of(n: int) -> int:
    """Grant n's amount in fen: varied, so that a total off by one grant shows."""
    return 1_000 + n % 9_973


def issue_grants(year: int, count: int) -> Any:  # Any: the ProgramYear (Django is set up at run time).
    """Open `year` and issue `count` grants in it, as described in the module's docstring."""
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import Enterprise, Provider, User
    from coupons import books
    from coupons.grant_codes import grant_code
    from coupons.models import Application, Grant
    from coupons.services.grants import grant_expires_at
    from coupons.services.years import cap_account_ensure, program_year_create, program_year_open
    from ledger.models import Account
    from ledger.services import TransferRequest, transfers_create

    admin = User.objects.get(username="admin")
    approver = User.objects.get(username="approver")
    reviewer = User.objects.get(username="reviewer")
    enterprises = list(Enterprise.objects.filter(status="verified").order_by("pk")[:ENTERPRISES])
    members = {e.pk: User.objects.filter(enterprise=e).order_by("pk").first() for e in enterprises}
    provider = Provider.objects.filter(status="active").order_by("pk").first()
    assert provider is not None and enterprises, "the demo data has verified enterprises and an active provider"
    total_fen = sum(amount_of(n) for n in range(count))
    program_year_create(year=year, actor=admin, pool_fen=total_fen, default_cap_fen=total_fen)
    program_year = program_year_open(year=year, actor=admin)
    caps = {e.pk: cap_account_ensure(enterprise_id=e.pk, year=program_year) for e in enterprises}
    pool_id = books.account_id(books.pool_code(program_year))
    cap_used_id = books.account_id(books.cap_used_code(program_year))
    expires_at = grant_expires_at(program_year=program_year, issued_at=timezone.now())
    chain = books.chain(program_year)
    for start in range(0, count, ISSUE_BATCH):
        numbers = range(start, min(start + ISSUE_BATCH, count))
        with transaction.atomic():
            applications = Application.objects.bulk_create(
                Application(
                    enterprise=enterprises[n % len(enterprises)],
                    provider=provider,
                    program_id=program_year.program_id,
                    year=program_year,
                    contract_number=f"YE{year}-{n}",
                    contract_fee_fen=amount_of(n) * 10,
                    compute_source="domestic",
                    purpose="training",
                    rate_bp=3000,
                    rate_rule="bench",
                    eligible_fen=amount_of(n) * 3,  # 30% of the fee; granted a third of it.
                    requested_fen=amount_of(n) * 3,
                    recommended_fen=amount_of(n),
                    status="approved",
                    submitted_by=members[enterprises[n % len(enterprises)].pk],
                    reviewed_by=reviewer,
                    approved_by=approver,
                )
                for n in numbers
            )
            accounts = Account.objects.bulk_create(
                Account(code=books.grant_account_code(program_year, a.pk), debits_must_not_exceed_credits=True)
                for a in applications
            )
            transfers = []
            for n, application, account in zip(numbers, applications, accounts, strict=True):
                transfers += [
                    TransferRequest.posted(
                        key=f"grant:{application.pk}:issue",
                        debit_account_id=pool_id,
                        credit_account_id=account.pk,
                        amount_fen=amount_of(n),
                        reason="grant_issue",
                        chain=chain,
                    ),
                    TransferRequest.posted(
                        key=f"grant:{application.pk}:cap",
                        debit_account_id=caps[application.enterprise_id],
                        credit_account_id=cap_used_id,
                        amount_fen=amount_of(n),
                        reason="grant_cap",
                        chain=chain,
                    ),
                ]
            transfers_create(transfers=transfers)
            Grant.objects.bulk_create(
                Grant(
                    code=grant_code(year=year, number=application.pk),
                    application=application,
                    enterprise_id=application.enterprise_id,
                    provider=provider,
                    year=program_year,
                    amount_fen=amount_of(n),
                    rate_bp=3000,
                    account=account,
                    issued_by=approver,
                    expires_at=expires_at,
                )
                for n, application, account in zip(numbers, applications, accounts, strict=True)
            )
        if (start // ISSUE_BATCH) % 40 == 0:
            progress(f"{year}: issued {min(start + ISSUE_BATCH, count):,}/{count:,} grants")
    return program_year


def check_lapsed(year: int, count: int) -> None:
    """Every grant of `year` expired once, and the lapsed account holds what they held, to the fen."""
    from coupons import books
    from coupons.models import Grant
    from ledger.selectors import account_balance, account_get

    grants = Grant.objects.filter(year__year=year)
    assert grants.count() == count and not grants.exclude(status="expired").exists(), f"{year}: grants left"
    lapsed = account_balance(account_id=account_get(code=books.lapsed_code(year)).pk).credits_posted
    assert lapsed == sum(amount_of(n) for n in range(count)), f"{year}: lapsed {lapsed}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grants", type=int, default=DEFAULT_GRANTS, help="grants reset in batches (100,000)")
    parser.add_argument(
        "--baseline-grants",
        type=int,
        default=DEFAULT_BASELINE_GRANTS,
        help="grants expired one per transaction, the old path (2,000)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="grants per transaction (the service's default)")
    parser.add_argument("--profile", action="store_true", help="print where the batched reset spends its time")
    parser.add_argument("--database", default=BENCH_DATABASE, help=f"the bench's own database ({BENCH_DATABASE})")
    args = parser.parse_args()
    target = resolve_target(args.database, command="python -m bench.yearend_bench")
    recreate_database(target, database=args.database)
    try:
        setup_django(target.bench_url)
        from django.core.management import call_command
        from django.db import connection

        from coupons.models import Grant
        from coupons.services.audit import CHECKS, _run_check
        from coupons.services.grants import GRANTS_EXPIRE_BATCH_SIZE, grant_expire
        from coupons.services.reset import annual_reset, program_year_close
        from coupons.services.years import year_end
        from ledger.chain import ledger_seal

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        call_command("seed_demo", verbosity=0, stdout=io.StringIO())
        progress(f"demo data loaded in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        issue_grants(YEAR, args.grants)
        issue_grants(BASELINE_YEAR, args.baseline_grants)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        progress(
            f"set-up: {args.grants + args.baseline_grants:,} grants issued in {time.perf_counter() - started:.1f} s"
        )

        batch_size = args.batch_size or GRANTS_EXPIRE_BATCH_SIZE
        profiler = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        report = annual_reset(year=YEAR, now=year_end(YEAR) + AFTER, batch_size=batch_size, progress=sparse_progress)
        reset_s = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        assert report.grants_expired == args.grants, report
        check_lapsed(YEAR, args.grants)

        now = year_end(BASELINE_YEAR) + AFTER
        started = time.perf_counter()
        program_year_close(year=BASELINE_YEAR, now=year_end(BASELINE_YEAR))
        due = Grant.objects.filter(year__year=BASELINE_YEAR, status="active", expires_at__lte=now).order_by("pk")
        for grant_id in due.values_list("pk", flat=True):
            grant_expire(grant_id=grant_id, now=now)
        baseline_s = time.perf_counter() - started
        check_lapsed(BASELINE_YEAR, args.baseline_grants)
        progress("both years' grants lapsed exactly, to the fen")

        started = time.perf_counter()
        sealed = 0
        while (batch := ledger_seal(limit=SEAL_BATCH, now=now)) > 0:
            sealed += batch
        seal_s = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM ledger_transfer")
            (transfers,) = cursor.fetchone() or (0,)

        reset_rate, baseline_rate = args.grants / reset_s, args.baseline_grants / baseline_s
        print("| step | grants | seconds | grants/s |\n|---|---:|---:|---:|")
        print(
            f"| annual_reset, {batch_size} grants per transaction | {args.grants:,} | {reset_s:.1f} | "
            f"{reset_rate:,.0f} |"
        )
        print(
            f"| old path: one grant_expire per grant | {args.baseline_grants:,} | {baseline_s:.1f} | "
            f"{baseline_rate:,.0f} |"
        )
        print(f"\nbatched / per grant: {reset_rate / baseline_rate:.1f}x\n")
        print(f"| audit step ({transfers:,} transfers in the ledger) | seconds |\n|---|---:|")
        print(f"| seal {sealed:,} transfers | {seal_s:.2f} |")
        total = 0.0
        failed = []
        for name, check in CHECKS:
            started = time.perf_counter()
            result = _run_check(name, check)
            elapsed = time.perf_counter() - started
            total += elapsed
            if not result["ok"]:
                failed.append((name, result["details"]))
            print(f"| audit: {name} ({'ok' if result['ok'] else 'FAILED'}) | {elapsed:.2f} |")
        print(f"| audit, all checks | {total:.2f} |")
        for name, details in failed:
            print(f"audit check {name} failed: {str(details)[:600]}")
    finally:
        recreate_database(target, database=args.database, drop_only=True)


if __name__ == "__main__":
    main()
