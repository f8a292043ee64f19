"""HTTP throughput of the money path: gunicorn with the production settings, measured with wrk.

Run from the project root (`make bench-http` does the same, and installs wrk when it can):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.http_bench

DATABASE_URL names the PostgreSQL server (with it unset, the embedded one under var/); the benchmark
creates its own database there, `coupons_bench_http` (a left-over one is dropped first), migrates it,
builds what it needs through the services, serves it, measures, and drops it at the end. REDIS_URL,
when set, is passed to the server: its throttle counters then live in Redis, as in production.

What is set up (through the services, as people would)
-----------------------------------------------------
The current program year (Asia/Shanghai) opened with the default policy; one computing center with
an API key; BENCH_ENTERPRISES (10) verified enterprises, each with BENCH_GRANTS / BENCH_ENTERPRISES
approved grants (100 in all) of 300,000 yuan on contracts of 1,000,000 yuan, and one more enterprise
with one hot grant of 3,000,000 yuan. Every enterprise stays far under the 8 million yuan cap and the
whole under the pool. Bills are BENCH_BILL_FEN (100 yuan, a coupon of 30 yuan): a grant covers
10,000 of them, far more than a run sends. Each bill needs its own invoice number and its own
invoice document (one file stands behind one invoice number), so before each run the center uploads
distinct small PDFs (the shipped sample invoice, each with its own comment), as many as the run
could use: its duration times the best rate runs of its kind reached so far (100 bills/s, 300 for a
batch, before any ran) times BENCH_DOCUMENT_HEADROOM (3). The run takes the next unused ones from a
file handed to the Lua script; one that runs out reuses them, is refused, and says so loudly.

What is measured
----------------
gunicorn serves config.wsgi with config.settings.production and BENCH_WORKERS (5) sync workers on
127.0.0.1, plain HTTP (DJANGO_SECURE_SSL_REDIRECT=false, for this loopback server only), throttle
rates raised so that no request is throttled. wrk (bench/http_bench.lua) runs each scenario at each
of BENCH_CONNECTIONS (1, 4, 16) for BENCH_DURATION_S (10) seconds:

a. ping: GET /api/v1/ping/, the no-op of the same stack (middleware, API-key authentication,
   throttles, renderer): what a request costs before any work;
b. redeem over BENCH_GRANTS grants: POST /api/v1/redemptions/ with capture: true, each request its
   own Idempotency-Key, bill, invoice number and document, the grants taken in turn;
c. the same on one hot grant: every request locks the same grant's ledger accounts;
d. batch: POST /api/v1/redemptions/batch/ with BENCH_BATCH_SIZE (50) bills each, over the grants.

The table gives requests/s (answers inside the window, from wrk), items/s (bills redeemed per
second: the run's captured redemptions the database holds, created inside the window, so a batch
still running when the window closes counts the bills it wrote in time), wrk's latency percentiles,
the non-2xx count and the other errors (socket errors; a 2xx that is not the expected answer, such
as a batch item refused or replayed; a bill answered 201 that the database does not hold), which
must all be 0, and the ratios: each redemption scenario's requests/s over ping's at the same
connections (what the money work costs, against the stack alone), and the batch's items/s over
redeem's (what a batch saves per bill). After each run the bench waits until the server has
finished the requests in flight (its count of redemptions holds still), so runs do not overlap. A
run with any failure exits 1 and keeps the gunicorn log.

Settings, from the environment: BENCH_DURATION_S (10), BENCH_CONNECTIONS (1,4,16), BENCH_WORKERS (5),
BENCH_GRANTS (100), BENCH_ENTERPRISES (10), BENCH_BATCH_SIZE (50), BENCH_BILL_FEN (10000),
BENCH_DOCUMENT_HEADROOM (3), BENCH_KEEP_DB (1 keeps the database). Connections above the worker
count queue in gunicorn's backlog: latency grows, throughput does not.

The server, wrk and PostgreSQL share the machine (the header says how many CPUs): with few cores
the figures measure CPU contention as much as the service. Compare ratios rather than absolute
numbers. The gunicorn log goes to a temporary file, named on stderr if the server fails.
"""

import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ledger_bench import Target, recreate_database, resolve_target

ROOT = Path(__file__).resolve().parent.parent
LUA_SCRIPT = Path(__file__).resolve().with_name("http_bench.lua")
BENCH_DATABASE = "coupons_bench_http"
SETUP_SETTINGS = "config.settings.base"
SERVER_SETTINGS = "config.settings.production"
PASSWORD = "bench-http-pass-2026!"  # Users of a throwaway database that is dropped at the end.
SPREAD_CONTRACT_FEE_FEN = 100_000_000  # 1,000,000 yuan: a grant of 300,000 yuan at 30%.
HOT_CONTRACT_FEE_FEN = 1_000_000_000  # 10,000,000 yuan: a grant of 3,000,000 yuan, under the cap.
NO_THROTTLE = "1000000000/minute"
START_TIMEOUT_S = 60
WRK_TIMEOUT = "60s"  # A batch of 50 at 16 connections may take seconds; wrk's default (2 s) would cut it.
# Pings after the start, until every worker has imported what a request needs (Django loads the URLs
# and views at the first request) and connected: WARMUP_REQUESTS per worker within WARMUP_MAX_S.
WARMUP_S = 3
WARMUP_REQUESTS = 20
WARMUP_MAX_S = 120
# After a run, the server finishes the requests in flight: the count of its redemptions must hold
# still for SETTLE_S before the next run starts.
SETTLE_S = 2
SETTLE_MAX_S = 180
# Invoice documents are uploaded before each run, as many as it could use: its duration times a
# guess of its rate (what runs of its kind reached so far, or these first guesses) times the headroom.
FIRST_GUESS_ITEMS_PER_S = {"redeem": 100, "batch": 300}  # Only when ping or redeem did not run first.
BATCH_OVER_SINGLE_GUESS = 4  # Before any batch ran: a batch's items/s over single redemptions' at most.


_STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Options:
    duration_s: int
    connections: list[int]
    workers: int
    grants: int
    enterprises: int
    batch_size: int
    bill_fen: int
    headroom: int
    keep_db: bool

    @classmethod
    def from_environment(cls) -> "Options":
        def number(name: str, default: int) -> int:
            value = int(os.environ.get(name, "") or default)
            if value < 1:
                sys.exit(f"{name} must be at least 1, got {value}")
            return value

        options = cls(
            duration_s=number("BENCH_DURATION_S", 10),
            connections=[int(c) for c in (os.environ.get("BENCH_CONNECTIONS") or "1,4,16").split(",")],
            workers=number("BENCH_WORKERS", 5),
            grants=number("BENCH_GRANTS", 100),
            enterprises=number("BENCH_ENTERPRISES", 10),
            batch_size=number("BENCH_BATCH_SIZE", 50),
            bill_fen=number("BENCH_BILL_FEN", 10_000),
            headroom=number("BENCH_DOCUMENT_HEADROOM", 3),
            keep_db=os.environ.get("BENCH_KEEP_DB", "") not in ("", "0"),
        )
        return options


# --- The world: a year, a center with an API key, enterprises with grants, invoices ----------------


@dataclass
class World:
    api_key: str
    spread_grants: list[int]
    hot_grant: int
    clerk: Any  # The provider's member who uploads its invoices (a User).
    year: int
    invoices: list[tuple[int, str]]  # (document id, invoice number), each used once.
    next_invoice: int = 0
    upload_s: float = 0.0

    def unused(self) -> int:
        return len(self.invoices) - self.next_invoice

    def invoices_ensure(self, count: int) -> None:
        """At least `count` unused invoices: the provider uploads more documents, each its own file."""
        from evidence.models import Kind
        from evidence.services import document_upload

        started = time.monotonic()
        missing = count - self.unused()
        for _ in range(max(missing, 0)):
            n = len(self.invoices) + 1
            uploaded = document_upload(
                actor=self.clerk, kind=Kind.INVOICE, data=pdf(f"invoice {n}"), name="invoice.pdf"
            )
            # A fully digital e-invoice number: 2-digit year, 6-digit issuer area, a 12-digit serial.
            self.invoices.append((uploaded.document.pk, f"{self.year % 100:02d}332000{n:012d}"))
        if missing > 0:
            self.upload_s += time.monotonic() - started
            progress(f"uploaded {missing:,} invoice documents in {time.monotonic() - started:.0f} s")
        statistics_refresh()


def statistics_refresh() -> None:
    """ANALYZE before each run. Here the tables grow from nothing to thousands of rows in seconds, faster
    than autovacuum refreshes the planner's statistics; with stale ones the planner reads every live
    invoice to find those of one file (a hash join instead of the document index), which a service
    that grew over months does not meet. Measured here: the read that decides a redemption took 2.7 ms
    with stale statistics and 1.2 ms after ANALYZE, on 4,300 invoices."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def uscc(serial: int) -> str:
    """A valid credit code (GB 32100-2015) of a Hangzhou (Xihu district) company, numbered `serial`."""
    from accounts.uscc import check_character

    first_seventeen = f"91330106MA2B{serial:05d}"
    return first_seventeen + check_character(first_seventeen)


def pdf(label: str) -> bytes:
    """The shipped sample invoice made a file of its own by a comment after its end."""
    sample = (ROOT / "evidence" / "samples" / "invoice.pdf").read_bytes()
    return sample + f"% bench copy {label}\n%%EOF\n".encode()


def build_world(options: Options) -> World:
    from django.utils import timezone

    from accounts.credentials import api_key_create
    from accounts.models import Provider, Role, User
    from accounts.services import (
        enterprise_register,
        enterprise_verify,
        provider_create,
        staff_user_create_bootstrap,
        user_create,
    )
    from coupons.models import ComputeSource, Grant, Purpose
    from coupons.services.applications import (
        application_approve,
        application_confirm,
        application_review,
        application_submit,
    )
    from coupons.services.years import PROGRAM_TIME_ZONE, program_year_create, program_year_of, program_year_open
    from evidence.models import Kind
    from evidence.services import document_upload

    now = timezone.now()
    year = program_year_of(now)
    admin = User.objects.create_superuser(username="admin", email="admin@example.com", password=PASSWORD)
    reviewer = staff_user_create_bootstrap(username="reviewer", password=PASSWORD, email="", roles=[Role.REVIEWER])
    approver = staff_user_create_bootstrap(username="approver", password=PASSWORD, email="", roles=[Role.APPROVER])
    program_year_create(year=year, actor=admin)
    program_year_open(year=year, actor=admin)
    serials = iter(range(1, 100_000))
    provider = provider_create(
        name="Bench Computing Center",
        uscc=uscc(next(serials)),
        listing=Provider.Listing.PLANNING_LAYOUT,
        facilities=[
            {
                "compute_source": ComputeSource.DOMESTIC,
                "description": "Bench cluster",
                "listed_from": dt.date(year - 1, 1, 1),
                "listed_until": None,
            }
        ],
        actor=admin,
    )
    clerk, _ = user_create(username="clerk", password=PASSWORD, provider=provider, actor=admin)
    _, api_key = api_key_create(provider=provider, name="bench billing system", actor=clerk)
    signed_on = now.astimezone(PROGRAM_TIME_ZONE).date()

    def grant(member: User, number: str, fee_fen: int) -> int:
        contract = document_upload(actor=member, kind=Kind.CONTRACT, data=pdf(number), name="contract.pdf").document
        application = application_submit(
            actor=member,
            provider=provider,
            contract_number=number,
            contract_fee_fen=fee_fen,
            compute_source=ComputeSource.DOMESTIC,
            purpose=Purpose.TRAINING,
            contract_document=contract,
            contract_signed_on=signed_on,
            contract_term_months=12,
            now=now,
        )
        application_confirm(application=application, actor=clerk)
        application_review(
            application=application,
            actor=reviewer,
            recommended_fen=application.requested_fen,
            evidence_checked=[contract.pk],
        )
        application_approve(application=application, actor=approver)
        return int(Grant.objects.values_list("pk", flat=True).get(application=application))

    def enterprise(n: int) -> User:
        member, registered = enterprise_register(
            username=f"enterprise{n}",
            password=PASSWORD,
            email="",
            name=f"Bench Enterprise {n}",
            uscc=uscc(next(serials)),
        )
        enterprise_verify(enterprise=registered, actor=reviewer)
        return member

    members = [enterprise(n) for n in range(options.enterprises)]
    spread = [
        grant(members[n % len(members)], f"BENCH-{n:04d}", SPREAD_CONTRACT_FEE_FEN) for n in range(options.grants)
    ]
    hot = grant(enterprise(options.enterprises), "BENCH-HOT", HOT_CONTRACT_FEE_FEN)
    progress(f"year {year} open; {len(spread)} grants over {len(members)} enterprises and one hot grant")

    return World(api_key=api_key, spread_grants=spread, hot_grant=hot, clerk=clerk, year=year, invoices=[])


def invoices_needed(scenario: "Scenario", connections: int, options: Options, results: list["Measured"]) -> int:
    """What `scenario` could use in one run: its duration times a generous guess of its rate, plus
    what its connections have in flight when the run ends."""
    if scenario.mode == "ping":
        return 0
    seen = [m.items_per_s * options.headroom for m in results if m.scenario.mode == scenario.mode]
    if not seen and scenario.mode == "redeem":
        # A redemption does all a ping does and more: never faster than ping at these connections.
        seen = [m.requests_per_s * 1.2 for m in results if (m.scenario.mode, m.connections) == ("ping", connections)]
    if not seen and scenario.mode == "batch":
        singles = [m.items_per_s for m in results if m.scenario.mode == "redeem"]
        seen = [max(singles) * BATCH_OVER_SINGLE_GUESS * options.headroom] if singles else []
    rate = max(seen) if seen else FIRST_GUESS_ITEMS_PER_S[scenario.mode] * options.headroom
    in_flight = 2 * connections * scenario.items_per_request
    return int(options.duration_s * rate) + in_flight


# --- The server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(options: Options, bench_url: str, documents_root: Path, log: Path) -> Iterator[int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "THROTTLE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE=SERVER_SETTINGS,
        DATABASE_URL=bench_url,
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        # Plain HTTP on loopback for this bench only; production keeps its https redirect.
        DJANGO_SECURE_SSL_REDIRECT="false",
        DOCUMENTS_ROOT=str(documents_root),
        THROTTLE_USER=NO_THROTTLE,
        THROTTLE_ANON=NO_THROTTLE,
    )
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn), "config.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(options.workers), "--worker-class", "sync", "--timeout", "60"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                sys.exit(f"gunicorn exited at start; its log:\n{log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"gunicorn did not listen within {START_TIMEOUT_S} s; its log: {log}")
                time.sleep(0.2)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- wrk --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: str  # The Lua script's BENCH_MODE.
    items_per_request: int
    hot: bool = False


@dataclass
class Measured:
    scenario: Scenario
    connections: int
    requests: int  # Answered inside the window (wrk).
    committed: int  # Redemptions the run's requests created inside the window (the database).
    written: int  # Every redemption the run's requests created, the ones in flight at its end included.
    seconds: float
    non_2xx: int
    socket_errors: int
    unexpected: int
    wrapped: int
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def items_per_s(self) -> float:
        """Bills redeemed per second, counted in the database: a batch's bills are written one after
        another, so those of a batch still running when the window closes count too."""
        return self.requests_per_s if self.scenario.mode == "ping" else self.committed / self.seconds

    @property
    def lost(self) -> int:
        """Bills answered as redeemed that the database does not hold (must be 0)."""
        if self.scenario.mode == "ping":
            return 0
        return max(self.requests * self.scenario.items_per_request - self.written, 0)

    @property
    def failed(self) -> int:
        return self.non_2xx + self.socket_errors + self.unexpected + self.lost


def run_wrk(
    scenario: Scenario, connections: int, *, port: int, world: World, options: Options, workdir: Path, run: str
) -> Measured:
    threads = min(connections, os.cpu_count() or 1)
    items = workdir / f"{run}.items"
    result = workdir / f"{run}.json"
    unused = world.invoices[world.next_invoice :]
    items.write_text("".join(f"{document} {number}\n" for document, number in unused))
    grants = [world.hot_grant] if scenario.hot else world.spread_grants
    env = {
        **os.environ,
        "BENCH_MODE": scenario.mode,
        "BENCH_KEY": world.api_key,
        "BENCH_RUN": run,
        "BENCH_GRANTS": ",".join(map(str, grants)),
        "BENCH_ITEMS": str(items),
        "BENCH_THREADS": str(threads),
        "BENCH_BATCH_SIZE": str(options.batch_size),
        "BENCH_BILL_FEN": str(options.bill_fen),
        "BENCH_RESULT": str(result),
    }
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{options.duration_s}s"]
    command += ["--timeout", WRK_TIMEOUT, "-s", str(LUA_SCRIPT), f"http://127.0.0.1:{port}"]
    started = dt.datetime.now(dt.UTC)
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if finished.returncode != 0 or not result.exists():
        sys.exit(f"wrk failed ({finished.returncode}):\n{finished.stdout}\n{finished.stderr}")
    answer: dict[str, Any] = json.loads(result.read_text())
    window = dt.timedelta(microseconds=answer["duration_us"])
    committed, written = redemptions_written(run, since=started, within=window) if scenario.mode != "ping" else (0, 0)
    if not answer["requests"] and not run.startswith("warmup"):
        progress(f"wrk completed no request:\n{finished.stdout}{finished.stderr}")
    # Thread i took lines i, i + threads, ...: every line before threads x the most any took is spent.
    world.next_invoice += min(len(unused), answer["threads"] * answer["taken_max"])
    return Measured(
        scenario=scenario,
        connections=connections,
        requests=answer["requests"],
        committed=committed,
        written=written,
        seconds=answer["duration_us"] / 1e6,
        non_2xx=answer["non_2xx"],
        socket_errors=answer["socket_errors"],
        unexpected=answer["unexpected"],
        wrapped=answer["wrapped"],
        p50_ms=answer["p50_us"] / 1000,
        p90_ms=answer["p90_us"] / 1000,
        p99_ms=answer["p99_us"] / 1000,
    )


def warm_up(options: Options, *, port: int, world: World, workdir: Path, ping: "Scenario") -> None:
    warm = Options(**{**options.__dict__, "duration_s": WARMUP_S})
    deadline = time.monotonic() + WARMUP_MAX_S
    for attempt in range(WARMUP_MAX_S // WARMUP_S):
        measured = run_wrk(
            ping, 2 * options.workers, port=port, world=world, options=warm, workdir=workdir, run=f"warmup{attempt}"
        )
        if measured.requests >= WARMUP_REQUESTS * options.workers and not measured.failed:
            progress(f"warm: {measured.requests_per_s:,.1f} pings/s")
            return
        if time.monotonic() > deadline:
            break
    sys.exit(f"the server did not warm up in {WARMUP_MAX_S} s (see the gunicorn log)")


def redemptions_written(run: str, *, since: dt.datetime, within: dt.timedelta) -> tuple[int, int]:
    """The run's captured redemptions created inside its window, and all of them once the server has
    finished the requests in flight when the window closed (sync workers finish what they accepted)."""
    from django.db import connection

    from coupons.models import Redemption

    # The service writes bill numbers in capitals.
    mine = Redemption.objects.filter(bill_number__istartswith=f"{run}-", status=Redemption.Status.CAPTURED)
    written, deadline = -1, time.monotonic() + SETTLE_MAX_S
    while time.monotonic() < deadline:
        now_written = mine.count()
        if now_written == written:
            break
        written = now_written
        time.sleep(SETTLE_S)
    committed = mine.filter(created_at__gte=since, created_at__lt=since + within).count()
    connection.close()
    return committed, written


# --- The table --------------------------------------------------------------------------------------


def print_table(results: list[Measured], header: str) -> None:
    def at(connections: int, mode: str) -> Measured | None:
        return next(
            (m for m in results if (m.connections, m.scenario.mode, m.scenario.hot) == (connections, mode, False)), None
        )

    columns = (
        "scenario",
        "conns",
        "req/s",
        "items/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "non-2xx",
        "errors",
        "vs ping",
        "batch/redeem",
    )
    rows = []
    for m in results:
        ping, single = at(m.connections, "ping"), at(m.connections, "redeem")
        vs_ping = f"{m.requests_per_s / ping.requests_per_s:.0%}" if ping and ping.requests and m is not ping else ""
        per_item = (
            f"{m.items_per_s / single.items_per_s:.1f}x"
            if single and m.scenario.mode == "batch" and single.items_per_s
            else ""
        )
        answered = bool(m.requests)  # wrk's percentiles of no answer are zeros: shown as "-".
        rows.append(
            (
                m.scenario.name,
                str(m.connections),
                f"{m.requests_per_s:,.1f}",
                f"{m.items_per_s:,.1f}",
                *(f"{ms:,.1f}" if answered else "-" for ms in (m.p50_ms, m.p90_ms, m.p99_ms)),
                str(m.non_2xx),
                str(m.socket_errors + m.unexpected + m.lost),
                vs_ping,
                per_item,
            )
        )
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        )

    print(header)
    print(line(columns))
    print(line(tuple("-" * w for w in widths)))
    for row in rows:
        print(line(row))
    print(
        "req/s and latencies: answers inside the window (wrk); items/s: bills the database holds as captured, "
        "created inside the window.\nerrors: socket errors, 2xx answers that were not the expected one, bills "
        "answered but not in the database.\nvs ping: requests/s over ping's at the same connections; "
        "batch/redeem: the batch's items/s over single redemptions' (over the grants) at the same connections."
    )
    failed = [m for m in results if m.failed]
    if failed:
        print("\n" + "!" * 100)
        for m in failed:
            print(
                f"!!! {m.scenario.name} at {m.connections} connections: {m.non_2xx} non-2xx answers, "
                f"{m.socket_errors} socket errors, {m.unexpected} unexpected answers, {m.lost} bills answered "
                "but not in the database"
                + (" (it ran out of invoice documents: raise BENCH_DOCUMENT_HEADROOM)" if m.wrapped else "")
            )
        print("!!! The figures above include failures: they do not measure the service. See the gunicorn log.")
        print("!" * 100)


# --- Main -------------------------------------------------------------------------------------------


def setup_django(bench_url: str, documents_root: Path) -> None:
    os.environ["DATABASE_URL"] = bench_url
    os.environ["DJANGO_SETTINGS_MODULE"] = SETUP_SETTINGS
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ["DOCUMENTS_ROOT"] = str(documents_root)
    import django

    django.setup()


def main() -> None:
    options = Options.from_environment()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: sudo apt-get install wrk (make bench-http does it when run as root)")
    target: Target = resolve_target(BENCH_DATABASE, command="python -m bench.http_bench")
    workdir = Path(tempfile.mkdtemp(prefix="coupons-bench-http-"))
    documents_root = workdir / "documents"
    progress(f"server: {target.description}; creating database {BENCH_DATABASE}; files in {workdir}")
    recreate_database(target, database=BENCH_DATABASE)
    failed = False
    try:
        setup_django(target.bench_url, documents_root)
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        world = build_world(options)
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('server_version'), current_setting('max_connections')")
            server_version, max_connections = cursor.fetchone()
        connection.close()

        scenarios = [
            Scenario("ping", "ping", 1),
            Scenario(f"redeem, {len(world.spread_grants)} grants", "redeem", 1),
            Scenario("redeem, 1 hot grant", "redeem", 1, hot=True),
            Scenario(f"batch of {options.batch_size}", "batch", options.batch_size),
        ]
        log = workdir / "gunicorn.log"
        results: list[Measured] = []
        with served(options, target.bench_url, documents_root, log) as port:
            progress(f"gunicorn: {options.workers} sync workers on 127.0.0.1:{port}, production settings; warming up")
            warm_up(options, port=port, world=world, workdir=workdir, ping=scenarios[0])
            for scenario in scenarios:
                for connections in options.connections:
                    world.invoices_ensure(invoices_needed(scenario, connections, options, results))
                    run = f"{scenario.mode}{'-hot' if scenario.hot else ''}-c{connections}"
                    measured = run_wrk(
                        scenario, connections, port=port, world=world, options=options, workdir=workdir, run=run
                    )
                    progress(
                        f"{scenario.name} at {connections}: {measured.requests_per_s:,.1f} req/s, "
                        f"{measured.items_per_s:,.1f} items/s, p99 {measured.p99_ms:,.1f} ms"
                        + (
                            f", FAILED: {measured.non_2xx} non-2xx, {measured.socket_errors} socket errors, "
                            f"{measured.unexpected} unexpected, {measured.lost} lost"
                            if measured.failed
                            else ""
                        )
                    )
                    results.append(measured)
        written = sum(m.written for m in results)
        redis = "Redis" if os.environ.get("REDIS_URL") else "process memory"
        print_table(
            results,
            f"\nHTTP throughput, {options.duration_s} s per cell: gunicorn ({options.workers} sync workers, "
            f"production settings, throttle counters in {redis}), wrk and PostgreSQL {server_version} "
            f"(max_connections {max_connections}) on one machine with {os.cpu_count()} CPUs; "
            f"bills of {options.bill_fen / 100:,.0f} yuan, {world.next_invoice:,} of {len(world.invoices):,} "
            f"invoice documents used (uploaded between runs in {world.upload_s:.0f} s); {written:,} redemptions "
            "captured.",
        )
        failed = any(m.failed for m in results)
        if failed:
            progress(f"gunicorn log kept: {log}")
    finally:
        if options.keep_db:
            progress(f"kept database {BENCH_DATABASE}")
        else:
            recreate_database(target, database=BENCH_DATABASE, drop_only=True)
            progress(f"dropped database {BENCH_DATABASE}")
        if not failed:
            shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
