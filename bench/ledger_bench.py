"""Ledger throughput: posted transfers per second through `ledger.services`, against plain SQL.

Run from the project root (`make bench` does the same):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.ledger_bench

DATABASE_URL names the PostgreSQL server to use; the database in it is only where the benchmark
connects to run CREATE DATABASE. The benchmark creates its own database, `coupons_bench` (a
left-over one is dropped first), migrates it, creates the accounts, runs, and drops it at the end.
With DATABASE_URL unset it uses the embedded server under var/, as `make run` and `make test` do.
The connecting role must be allowed to create databases and to run CHECKPOINT.

What is measured
----------------
Every scenario is measured twice, each time for --seconds after a --warmup:

* service: `ledger.services.transfer_create(transfer=TransferRequest.posted(...))`, one transfer
  per call, so one transaction per call, through Django's connection; what a request does.
* plain SQL, the baseline: the same row work through psycopg 3 directly, no Django. Per transfer,
  in one transaction: lock both accounts in id order (`SELECT ... ORDER BY id FOR NO KEY UPDATE`),
  one statement of the shape of `ledger.services._APPLY_SQL` (update both accounts' totals and
  insert the transfer with the totals after it), commit. psycopg prepares statements it runs
  repeatedly (its default), so this is the best a hand-written version of the same work does.

Scenarios:

a. 1 worker; each transfer between two distinct random accounts out of --accounts (no flags);
b. --workers processes at once, spread the same way;
c. 1 worker; every transfer debits one hot account with `debits_must_not_exceed_credits`, funded
   with ample credits (the credit side is a random account);
d. --workers processes at once against that one hot account.

Each worker is a separate process (multiprocessing, 'spawn') that sets up Django itself and opens
its own connections; all workers of a run start together. Keys are unique per transfer, and both
runs of a scenario draw the same sequence of accounts and amounts. Before each run the transfer
table is truncated (the insert-only trigger refuses UPDATE and DELETE, not TRUNCATE), the account
table vacuumed and a CHECKPOINT taken, so both runs start from the same state; which of the two
goes first alternates between scenarios.

How to read it
--------------
tx/s is transfers committed inside the measured window, summed over the workers. ratio is
service / plain SQL; the goal is a ratio of at least 50%, that is, the service layer (validation,
the idempotency-key lookup, Python objects, Django's transaction handling) may cost at most as much
again as the row work itself. The gap is per-transfer overhead: extra round trips, statements that
Django sends unprepared (client-side binding, so PostgreSQL parses and plans them every time), and
Python time. In c and d the hot account's row lock is held from the locking SELECT to the commit,
so every round trip and every bit of Python the service spends in between lowers the rate, and
with several workers queueing on that one row the rate is about 1 / (time the lock is held).

Compare ratios rather than absolute numbers: those depend on the machine, on the cost of an fsync
at commit, and for b and d on how many cores the workers share with PostgreSQL (the table header
says how many there are; with fewer cores than workers plus server processes, b and d measure CPU
contention more than lock contention). On a busy or shared machine a single 5-second pair can be
off by ten points or more: --rounds 3 repeats each pair, alternating which goes first, and pools
them. Progress lines with latency percentiles go to stderr; --profile adds a cProfile of the
single-worker service path there. DJANGO_DEBUG is forced off, as in production.
"""

import argparse
import contextlib
import cProfile
import io
import json
import multiprocessing as mp
import os
import pstats
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import quote, urlsplit

BENCH_DATABASE = "coupons_bench"
SETTINGS_MODULE = "config.settings.base"
REASON = "bench"
AMOUNT_FEN_MAX = 100
HOT_FUNDING_FEN = 10**15  # Far more than any run can debit at AMOUNT_FEN_MAX a transfer.
GOAL_PERCENT = 50
START_DELAY_S = 0.2  # Time for every worker to get the start signal before the clock starts.
RESULT_TIMEOUT_S = 120.0  # Beyond warm-up plus measurement: a worker that says nothing is stuck.

# The baseline's lock: the same rows, the same order and the same lock strength as the service's.
LOCK_SQL = "SELECT id, closed FROM ledger_account WHERE id = ANY(%(ids)s) ORDER BY id FOR NO KEY UPDATE"

# Copied from `ledger.services._APPLY_SQL`, with the column list written out and casts on the two
# NULL parameters: with server-side binding PostgreSQL must know their types (Django binds
# client-side, so the service's text goes without them).
_TRANSFER_COLUMNS = (
    "id, key, debit_account_id, credit_account_id, amount_fen, kind, pending_id, timeout_s, expires_at, "
    "reason, metadata, created_at, debit_account_debits_pending, debit_account_debits_posted, "
    "debit_account_credits_pending, debit_account_credits_posted, credit_account_debits_pending, "
    "credit_account_debits_posted, credit_account_credits_pending, credit_account_credits_posted"
)
APPLY_SQL = f"""
WITH stamp AS (SELECT clock_timestamp() AS at),
debit AS (
    UPDATE ledger_account
       SET debits_pending = debits_pending + %(debits_pending_delta)s,
           debits_posted = debits_posted + %(debits_posted_delta)s
     WHERE id = %(debit_account_id)s
 RETURNING debits_pending, debits_posted, credits_pending, credits_posted
), credit AS (
    UPDATE ledger_account
       SET credits_pending = credits_pending + %(credits_pending_delta)s,
           credits_posted = credits_posted + %(credits_posted_delta)s
     WHERE id = %(credit_account_id)s
 RETURNING debits_pending, debits_posted, credits_pending, credits_posted
)
INSERT INTO ledger_transfer (
    key, debit_account_id, credit_account_id, amount_fen, kind, pending_id, timeout_s, expires_at,
    reason, metadata, created_at,
    debit_account_debits_pending, debit_account_debits_posted,
    debit_account_credits_pending, debit_account_credits_posted,
    credit_account_debits_pending, credit_account_debits_posted,
    credit_account_credits_pending, credit_account_credits_posted
)
SELECT %(key)s, %(debit_account_id)s, %(credit_account_id)s, %(amount_fen)s, %(kind)s, %(pending_id)s::bigint,
       %(timeout_s)s::integer, stamp.at + make_interval(secs => %(timeout_s)s::integer), %(reason)s,
       %(metadata)s::jsonb, stamp.at,
       debit.debits_pending, debit.debits_posted, debit.credits_pending, debit.credits_posted,
       credit.debits_pending, credit.debits_posted, credit.credits_pending, credit.credits_posted
  FROM stamp, debit, credit
RETURNING {_TRANSFER_COLUMNS}
"""

SERVICE = "service"
PLAIN_SQL = "plain SQL"


# --- Output -----------------------------------------------------------------------------------

_STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


# --- Where the database is --------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The server to use: how Django reaches the bench database, and how psycopg reaches both."""

    bench_url: str  # DATABASE_URL for Django, naming the bench database.
    admin_params: dict[str, Any]  # psycopg.connect keywords for the database named by DATABASE_URL.
    description: str


def _psycopg_params(settings: dict[str, Any]) -> dict[str, Any]:
    """psycopg.connect keywords from a Django DATABASES entry."""
    params: dict[str, Any] = {
        "dbname": settings["NAME"],
        "user": settings.get("USER") or None,
        "password": settings.get("PASSWORD") or None,
        "host": settings.get("HOST") or None,
        "port": settings.get("PORT") or None,
    }
    # Connection options from the URL's query string (sslmode=..., connect_timeout=...) are libpq's;
    # Django's own (server_side_binding, pool, ...) are not, and psycopg would refuse them.
    options = settings.get("OPTIONS", {})
    params.update({k: v for k, v in options.items() if k not in _DJANGO_ONLY_OPTIONS and isinstance(v, str | int)})
    return {k: v for k, v in params.items() if v is not None}


_DJANGO_ONLY_OPTIONS = {
    "assume_role",
    "cursor_factory",
    "isolation_level",
    "pool",
    "prepare_threshold",
    "server_side_binding",
}


def _socket_url(user: str, socket_dir: str, database: str) -> str:
    """A DATABASE_URL for the bench database over a Unix socket, in the form django-environ reads."""
    return f"postgres://{quote(user, safe='')}@/{quote(f'{socket_dir}/{database}', safe='')}"


def resolve_target(database: str = BENCH_DATABASE, *, command: str = "python -m bench.ledger_bench") -> Target:
    """The server DATABASE_URL names (the embedded one when unset), and `database`, the bench's own
    database on it (bench/http_bench.py uses another)."""
    import environ

    url = os.environ.get("DATABASE_URL", "")
    if url:
        settings = environ.Env.db_url_config(url)
        if settings.get("ENGINE") != "django.db.backends.postgresql":
            sys.exit(
                "DATABASE_URL must name a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/postgres; "
                f"got {url!r}"
            )
        if settings["NAME"] in ("", database):
            settings["NAME"] = "postgres"  # The bench database is dropped, so connect elsewhere.
        host = settings.get("HOST") or ""
        if host.startswith("/"):
            bench_url = _socket_url(settings.get("USER") or "postgres", host, database)
            where = host
        else:
            bench_url = urlsplit(url)._replace(path=f"/{database}").geturl()
            where = f"{host or 'localhost'}:{settings.get('PORT') or 5432}"
        return Target(bench_url, _psycopg_params(settings), f"PostgreSQL at {where}")
    try:
        from config.embedded_postgres import database_settings

        settings = database_settings()
    except Exception as error:
        sys.exit(
            "DATABASE_URL is unset and the embedded PostgreSQL server could not start "
            f"({type(error).__name__}: {error}).\nSet DATABASE_URL to a server the benchmark may create a "
            f"database on, e.g.\n  DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres {command}"
        )
    admin = {**settings, "NAME": "postgres"}
    return Target(
        _socket_url(settings["USER"], settings["HOST"], database),
        _psycopg_params(admin),
        f"embedded PostgreSQL at {settings['HOST']}",
    )


def recreate_database(target: Target, *, database: str = BENCH_DATABASE, drop_only: bool = False) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(**target.admin_params, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def setup_django(bench_url: str) -> None:
    os.environ["DATABASE_URL"] = bench_url
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    os.environ["DJANGO_DEBUG"] = "0"  # DEBUG keeps every query's text: not what production does.
    import django

    django.setup()


# --- One run in one worker --------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    mode: str  # SERVICE or PLAIN_SQL.
    hot: bool
    key_prefix: str
    seed: str
    warmup_s: float
    seconds: float


@dataclass
class RunResult:
    counted: int = 0  # Committed inside the measured window.
    total: int = 0  # Committed at all, warm-up included.
    latencies_s: list[float] = field(default_factory=list)  # Of the counted ones.


TransferFn = Callable[[str, int, int, int], None]


def service_transfer_fn() -> TransferFn:
    from ledger.services import TransferRequest, transfer_create

    def transfer(key: str, debit_account_id: int, credit_account_id: int, amount_fen: int) -> None:
        transfer_create(
            transfer=TransferRequest.posted(
                key=key,
                debit_account_id=debit_account_id,
                credit_account_id=credit_account_id,
                amount_fen=amount_fen,
                reason=REASON,
            )
        )

    return transfer


def plain_sql_transfer_fn(conn: Any) -> TransferFn:  # Any: a psycopg.Connection in autocommit mode.
    cursor = conn.cursor()
    metadata = json.dumps({})

    def transfer(key: str, debit_account_id: int, credit_account_id: int, amount_fen: int) -> None:
        with conn.transaction():
            cursor.execute(LOCK_SQL, {"ids": sorted((debit_account_id, credit_account_id))})
            rows = cursor.fetchall()
            if len(rows) != 2 or any(closed for _, closed in rows):
                raise RuntimeError(f"accounts {debit_account_id}, {credit_account_id}: missing or closed")
            cursor.execute(
                APPLY_SQL,
                {
                    "key": key,
                    "debit_account_id": debit_account_id,
                    "credit_account_id": credit_account_id,
                    "amount_fen": amount_fen,
                    "kind": "posted",
                    "pending_id": None,
                    "timeout_s": None,
                    "reason": REASON,
                    "metadata": metadata,
                    "debits_pending_delta": 0,
                    "debits_posted_delta": amount_fen,
                    "credits_pending_delta": 0,
                    "credits_posted_delta": amount_fen,
                },
            )
            if cursor.fetchone() is None:
                raise RuntimeError(f"transfer {key}: nothing inserted")

    return transfer


def run_loop(
    transfer: TransferFn, spec: RunSpec, start_at: float, account_ids: list[int], hot_account_id: int
) -> RunResult:
    """Transfer as fast as one connection allows from `start_at` until the window closes."""
    rng = random.Random(spec.seed)
    measure_from = start_at + spec.warmup_s
    until = measure_from + spec.seconds
    result = RunResult()
    time.sleep(max(0.0, start_at - time.monotonic()))
    while True:
        if spec.hot:
            debit_account_id, credit_account_id = hot_account_id, rng.choice(account_ids)
        else:
            debit_account_id, credit_account_id = rng.sample(account_ids, 2)
        amount_fen = rng.randint(1, AMOUNT_FEN_MAX)
        key = f"{spec.key_prefix}{result.total}"
        began = time.monotonic()
        if began >= until:
            return result
        transfer(key, debit_account_id, credit_account_id, amount_fen)
        done = time.monotonic()
        result.total += 1
        if measure_from <= done < until:
            result.counted += 1
            result.latencies_s.append(done - began)


def worker_main(pipe: Connection, bench_url: str, account_ids: list[int], hot_account_id: int) -> None:
    """A worker process: Django and a psycopg connection of its own; runs what the parent sends."""
    sql_conn = None
    try:
        setup_django(bench_url)
        import psycopg
        from django.conf import settings
        from django.db import connection

        connection.ensure_connection()
        sql_conn = psycopg.connect(**_psycopg_params(settings.DATABASES["default"]), autocommit=True)
        transfers = {SERVICE: service_transfer_fn(), PLAIN_SQL: plain_sql_transfer_fn(sql_conn)}
        pipe.send(("ready", None))
        while True:
            command, payload = pipe.recv()
            if command == "stop":
                break
            spec: RunSpec = payload
            pipe.send(("armed", None))
            command, start_at = pipe.recv()
            assert command == "go", command
            pipe.send(("done", run_loop(transfers[spec.mode], spec, start_at, account_ids, hot_account_id)))
    except BaseException:
        with contextlib.suppress(OSError):  # The parent may be gone.
            pipe.send(("error", traceback.format_exc()))
    finally:
        if sql_conn is not None:
            sql_conn.close()


# --- The parent -------------------------------------------------------------------------------


@dataclass
class Worker:
    index: int
    process: BaseProcess
    pipe: Connection

    def expect(self, wanted: str, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while not self.pipe.poll(0.2):
            if not self.process.is_alive():
                raise RuntimeError(f"worker {self.index} exited with code {self.process.exitcode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.index} said nothing for {timeout_s:.0f}s (waiting for {wanted})")
        what, payload = self.pipe.recv()
        if what == "error":
            raise RuntimeError(f"worker {self.index} failed:\n{payload}")
        assert what == wanted, (what, wanted)
        return payload


def start_workers(count: int, bench_url: str, account_ids: list[int], hot_account_id: int) -> list[Worker]:
    context = mp.get_context("spawn")
    workers = []
    for index in range(count):
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=worker_main,
            args=(child_end, bench_url, account_ids, hot_account_id),
            name=f"ledger-bench-{index}",
            daemon=True,
        )
        process.start()
        child_end.close()
        workers.append(Worker(index, process, parent_end))
    for worker in workers:
        worker.expect("ready", RESULT_TIMEOUT_S)
    return workers


def stop_workers(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.is_alive():
            with contextlib.suppress(OSError):  # The worker has gone already.
                worker.pipe.send(("stop", None))
    for worker in workers:
        worker.process.join(10)
        if worker.process.is_alive():
            worker.process.terminate()  # Only ever a process this benchmark started.
            worker.process.join(5)


def reset_state() -> None:
    """The same starting point for every run: no transfers, a vacuumed account table, no dirty pages."""
    from django.db import connection

    with connection.cursor() as cursor:
        # CASCADE: other apps' tables that reference transfers (coupons) are empty here anyway. The
        # keys go too: they are unique across the ledger's partitions in their own table.
        cursor.execute("TRUNCATE ledger_transfer, ledger_transferseal, ledger_transferkey CASCADE")
        cursor.execute("VACUUM (ANALYZE) ledger_account")
        cursor.execute("CHECKPOINT")


@dataclass(frozen=True)
class Scenario:
    letter: str
    label: str
    workers: int
    hot: bool


@dataclass
class Measured:
    counted: int
    seconds: float
    latencies_s: list[float]

    @property
    def rate(self) -> float:
        return self.counted / self.seconds

    @property
    def p50_ms(self) -> float:
        return percentile_ms(self.latencies_s, 0.5)

    @property
    def p99_ms(self) -> float:
        return percentile_ms(self.latencies_s, 0.99)

    @classmethod
    def pooled(cls, runs: list["Measured"]) -> "Measured":
        return cls(sum(r.counted for r in runs), sum(r.seconds for r in runs), [x for r in runs for x in r.latencies_s])


def percentile_ms(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(workers: list[Worker], scenario: Scenario, mode: str, args: argparse.Namespace) -> Measured:
    from django.db import connection

    reset_state()
    tag = "svc" if mode == SERVICE else "sql"  # Same length: both runs fill the key index alike.
    taking_part = workers[: scenario.workers]
    for worker in taking_part:
        spec = RunSpec(
            mode=mode,
            hot=scenario.hot,
            key_prefix=f"bench:{scenario.letter}:{tag}:{worker.index}:",
            seed=f"{scenario.letter}:{worker.index}",  # The same for both modes.
            warmup_s=args.warmup,
            seconds=args.seconds,
        )
        worker.pipe.send(("run", spec))
    for worker in taking_part:
        worker.expect("armed", RESULT_TIMEOUT_S)
    start_at = time.monotonic() + START_DELAY_S
    for worker in taking_part:
        worker.pipe.send(("go", start_at))
    results: list[RunResult] = [
        worker.expect("done", args.warmup + args.seconds + RESULT_TIMEOUT_S) for worker in taking_part
    ]

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ledger_transfer")
        (rows,) = cursor.fetchone()
    committed = sum(r.total for r in results)
    if rows != committed:
        raise RuntimeError(f"{scenario.letter} {mode}: workers committed {committed} transfers, the table has {rows}")

    measured = Measured(
        sum(r.counted for r in results), args.seconds, [latency for r in results for latency in r.latencies_s]
    )
    progress(
        f"{scenario.letter}. {scenario.label}, {mode}: {measured.counted} transfers in {args.seconds:g}s = "
        f"{measured.rate:,.0f}/s (latency p50 {measured.p50_ms:.2f} ms, p99 {measured.p99_ms:.2f} ms)"
    )
    return measured


def create_accounts(count: int) -> tuple[list[int], int]:
    """`count` plain accounts in one statement, and a hot limited account funded from a source."""
    from django.db import connection

    from ledger.services import TransferRequest, account_create, transfer_create

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_account (code, debits_pending, debits_posted, credits_pending, credits_posted, "
            "debits_must_not_exceed_credits, credits_must_not_exceed_debits, closed, created_at) "
            "SELECT 'bench:' || g, 0, 0, 0, 0, false, false, false, now() FROM generate_series(1, %s) AS g "
            "RETURNING id",
            [count],
        )
        account_ids = sorted(row[0] for row in cursor.fetchall())
    source = account_create(code="bench:source")
    hot = account_create(code="bench:hot", debits_must_not_exceed_credits=True)
    transfer_create(
        transfer=TransferRequest.posted(
            key="bench:fund-hot",
            debit_account_id=source.pk,
            credit_account_id=hot.pk,
            amount_fen=HOT_FUNDING_FEN,
            reason="bench_fund",
        )
    )
    # The first reset truncates this transfer; the account keeps its credits, which is all that counts.
    return account_ids, hot.pk


def profile_service(args: argparse.Namespace, account_ids: list[int], hot_account_id: int) -> None:
    """cProfile the single-worker service path (scenario a) in this process; the report goes to stderr."""
    reset_state()
    transfer = service_transfer_fn()
    warm = RunSpec(SERVICE, False, "bench:profile-warm:", "profile", 0.0, args.warmup)
    run_loop(transfer, warm, time.monotonic(), account_ids, hot_account_id)
    spec = RunSpec(SERVICE, False, "bench:profile:", "profile", 0.0, args.seconds)
    profiler = cProfile.Profile()
    profiler.enable()
    result = run_loop(transfer, spec, time.monotonic(), account_ids, hot_account_id)
    profiler.disable()
    progress(f"profile: {result.counted} service transfers in {args.seconds:g}s under cProfile")
    for sort in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(30)
        print(f"--- cProfile, by {sort} ---\n{out.getvalue()}", file=sys.stderr)


def print_table(rows: list[tuple[Scenario, Measured, Measured]], header: str) -> None:
    head = ("scenario", "service tx/s", "plain SQL tx/s", "ratio")
    body = [
        (f"{s.letter}. {s.label}", f"{svc.rate:,.0f}", f"{sql.rate:,.0f}", f"{100 * svc.rate / sql.rate:.1f}%")
        for s, svc, sql in rows
    ]
    widths = [max(len(line[i]) for line in (head, *body)) for i in range(len(head))]

    def line(cells: tuple[str, ...]) -> str:
        padded = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join(padded) + " |"

    print(header)
    print()
    print(line(head))
    print("|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|")
    for cells in body:
        print(line(cells))
    met = sum(svc.rate >= GOAL_PERCENT / 100 * sql.rate for _, svc, sql in rows)
    print()
    print(
        f"Goal: service >= {GOAL_PERCENT}% of plain SQL (ratio = service / plain SQL) in every scenario; "
        f"met in {met} of {len(rows)}.",
        flush=True,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ledger_bench",
        description="Posted transfers per second through ledger.services against plain SQL (see the module docstring).",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each run (default 1)")
    parser.add_argument("--accounts", type=int, default=10_000, help="accounts to spread over (default 10000)")
    parser.add_argument("--workers", type=int, default=4, help="processes in the parallel scenarios (default 4)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure each scenario's pair this many times, alternating the order, and pool them (default 1); "
        "more rounds even out a noisy machine",
    )
    parser.add_argument("--profile", action="store_true", help="also cProfile the single-worker service path")
    parser.add_argument("--keep-db", action="store_true", help=f"leave the {BENCH_DATABASE} database behind")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or args.accounts < 2 or args.workers < 1 or args.rounds < 1:
        parser.error("need --seconds > 0, --warmup >= 0, --accounts >= 2, --workers >= 1 and --rounds >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    target = resolve_target()
    progress(f"server: {target.description}; creating database {BENCH_DATABASE}")
    recreate_database(target)
    workers: list[Worker] = []
    try:
        setup_django(target.bench_url)
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        account_ids, hot_account_id = create_accounts(args.accounts)
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('server_version'), current_setting('synchronous_commit')")
            server_version, synchronous_commit = cursor.fetchone()
        progress(f"migrated; {len(account_ids):,} accounts and a funded hot account; starting {args.workers} workers")
        workers = start_workers(args.workers, target.bench_url, account_ids, hot_account_id)

        spread = f"{len(account_ids):,} accounts"
        scenarios = [
            Scenario("a", f"1 worker, {spread}", 1, hot=False),
            Scenario("b", f"{args.workers} workers, {spread}", args.workers, hot=False),
            Scenario("c", "1 worker, 1 hot limited account", 1, hot=True),
            Scenario("d", f"{args.workers} workers, 1 hot limited account", args.workers, hot=True),
        ]
        rows = []
        for number, scenario in enumerate(scenarios):
            runs: dict[str, list[Measured]] = {SERVICE: [], PLAIN_SQL: []}
            for round_ in range(args.rounds):
                # Alternate which mode goes first, so that neither always gets the warmer server
                # or the quieter machine.
                order = (SERVICE, PLAIN_SQL) if (number + round_) % 2 == 0 else (PLAIN_SQL, SERVICE)
                for mode in order:
                    runs[mode].append(measure(workers, scenario, mode, args))
            rows.append((scenario, Measured.pooled(runs[SERVICE]), Measured.pooled(runs[PLAIN_SQL])))
        stop_workers(workers)
        workers = []

        print_table(
            rows,
            f"Ledger posted transfers per second, {args.rounds} x {args.seconds:g}s per cell after {args.warmup:g}s "
            "warm-up each; "
            f"PostgreSQL {server_version} (synchronous_commit={synchronous_commit}), "
            f"{os.cpu_count()} CPUs shared by workers and server.",
        )
        if args.profile:
            profile_service(args, account_ids, hot_account_id)
        connection.close()
    finally:
        stop_workers(workers)
        if args.keep_db:
            progress(f"kept database {BENCH_DATABASE}")
        else:
            recreate_database(target, drop_only=True)
            progress(f"dropped database {BENCH_DATABASE}")


if __name__ == "__main__":
    main()
