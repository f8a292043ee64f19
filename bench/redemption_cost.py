"""Where one redemption's time goes, beside the no-op's: a breakdown in process, stage by stage.

Run from the project root (`make bench-cost` does the same):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.redemption_cost

`make bench-http` says how fast the money path is over HTTP; this says why. It builds the same world
as `bench/http_bench.py` (through the services, in its own database `coupons_bench_cost`, dropped at
the end), then sends BENCH_COST_REQUESTS (500) requests of each kind through Django's whole request
handler in this process (every middleware, API-key authentication, throttles, the view, the
renderer; no socket and no gunicorn), one at a time, each on the kept connection with its health
check as in production: `GET /api/v1/ping/` (the no-op) and `POST /api/v1/redemptions/` with
`capture: true` over the 100 grants. For each it prints the wall time and this process's CPU time
per request; their difference is time spent waiting: on PostgreSQL (the cache is in process
memory here), and, on a busy machine, for a CPU (run it on a quiet one). For the redemption it
splits both by stage, timing the functions named in the table (their time includes what they call):

- authentication and throttles (`APIView.initial`), as in ping;
- the idempotency record (`api.idempotency.idempotent_call`, less the stages inside it);
- the input's check (`validated`), the service (`redemption_create`: its locked read, its write
  through the ledger, and the rest in Python), and the answer (`RedemptionSerializer.data`);
- everything else: middleware, routing, parsing and rendering, as in ping.

The last lines compare with the target of issue 12 (README, "Benchmark"): redemptions at half the
no-op's requests per second means one redemption in at most twice the no-op's time.
"""

import functools
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.http_bench import Options, build_world, progress, setup_django
from bench.ledger_bench import Target, recreate_database, resolve_target

BENCH_DATABASE = "coupons_bench_cost"
NO_THROTTLE = "1000000/minute"


class Stages:
    """Wall and CPU seconds spent inside named functions, summed over the requests measured."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)

    def timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.wall[name] += time.perf_counter() - wall
                self.cpu[name] += time.process_time() - cpu

        return wrapper

    def patch(self, owner: Any, attribute: str, name: str) -> None:
        setattr(owner, attribute, self.timed(name, getattr(owner, attribute)))

    def clear(self) -> None:
        self.wall.clear()
        self.cpu.clear()


def install(stages: Stages) -> None:
    """Timers around the stages of one redemption (module attributes the view calls through)."""
    from rest_framework.views import APIView

    import api.idempotency
    import coupons.api.redemptions
    import coupons.services.redemptions_fast as fast

    stages.patch(APIView, "initial", "authentication and throttles")
    stages.patch(api.idempotency, "idempotent_call", "idempotency")
    stages.patch(coupons.api.redemptions, "validated", "input check")
    stages.patch(coupons.api.redemptions, "redemption_create", "service")
    stages.patch(fast, "_context", "service: locked read")
    stages.patch(fast, "transfer_send", "service: write")  # Sent in a pipeline; its wait is at its end.
    serializer = coupons.api.redemptions.RedemptionSerializer

    class TimedSerializer(serializer):  # type: ignore[misc, valid-type]
        @property
        def data(self) -> Any:
            return stages.timed("answer", lambda: serializer.data.fget(self))()  # type: ignore[attr-defined]

    coupons.api.redemptions.RedemptionSerializer = TimedSerializer  # type: ignore[misc]


def measure(send: Callable[[int], int], count: int, expected: int) -> tuple[float, float]:
    """Seconds of wall and of CPU per request over `count` requests, each on a health-checked connection."""
    from django.db import connection

    wall, cpu = 0.0, 0.0
    for n in range(count):
        connection.health_check_done = False  # type: ignore[attr-defined]  # What the request-start signal does under gunicorn.
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        status = send(n)
        wall += time.perf_counter() - started_wall
        cpu += time.process_time() - started_cpu
        if status != expected:
            sys.exit(f"request {n} answered {status}, not {expected}")
    return wall / count, cpu / count


def main() -> None:
    count = int(os.environ.get("BENCH_COST_REQUESTS", "") or 500)
    options = Options.from_environment()
    target: Target = resolve_target(BENCH_DATABASE, command="python -m bench.redemption_cost")
    workdir = Path(tempfile.mkdtemp(prefix="coupons-bench-cost-"))
    progress(f"server: {target.description}; creating database {BENCH_DATABASE}; files in {workdir}")
    recreate_database(target, database=BENCH_DATABASE)
    os.environ["THROTTLE_USER"] = os.environ["THROTTLE_ANON"] = NO_THROTTLE
    try:
        setup_django(target.bench_url, workdir / "documents")
        from django.core.management import call_command
        from django.test import Client

        call_command("migrate", verbosity=0)
        world = build_world(options)
        world.invoices_ensure(count + 50)
        client = Client(HTTP_AUTHORIZATION=f"Api-Key {world.api_key}", HTTP_HOST="127.0.0.1")

        def ping(_: int) -> int:
            return client.get("/api/v1/ping/").status_code

        def redeem(_: int) -> int:
            document, number = world.invoices[world.next_invoice]
            grant = world.spread_grants[world.next_invoice % len(world.spread_grants)]
            world.next_invoice += 1
            body = {
                "grant": grant,
                "bill_number": f"COST-{world.next_invoice}",
                "bill_amount_fen": options.bill_fen,
                "invoice_number": number,
                "invoice_document": document,
                "capture": True,
            }
            key = f"cost-{world.next_invoice}"
            return client.post(
                "/api/v1/redemptions/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key
            ).status_code

        stages = Stages()
        install(stages)
        measure(ping, 50, 200)  # Warm up: imports, caches, prepared statements.
        measure(redeem, 50, 201)
        stages.clear()
        progress(f"measuring {count} pings and {count} redemptions")
        ping_wall, ping_cpu = measure(ping, count, 200)
        ping_initial = (stages.wall["authentication and throttles"], stages.cpu["authentication and throttles"])
        stages.clear()
        redeem_wall, redeem_cpu = measure(redeem, count, 201)
        report(count, (ping_wall, ping_cpu), ping_initial, (redeem_wall, redeem_cpu), stages)
    finally:
        recreate_database(target, database=BENCH_DATABASE, drop_only=True)
        progress(f"dropped database {BENCH_DATABASE}")
        shutil.rmtree(workdir, ignore_errors=True)


def report(
    count: int,
    ping: tuple[float, float],
    ping_initial: tuple[float, float],
    redeem: tuple[float, float],
    stages: Stages,
) -> None:
    def per(seconds: float) -> float:
        return seconds / count * 1000

    wall, cpu = stages.wall, stages.cpu
    inner = ("input check", "service", "answer")
    service_parts = ("service: locked read", "service: write")
    rows = [
        (
            "authentication and throttles",
            per(wall["authentication and throttles"]),
            per(cpu["authentication and throttles"]),
        ),
        (
            "idempotency record and commit",
            per(wall["idempotency"] - sum(wall[k] for k in inner)),
            per(cpu["idempotency"] - sum(cpu[k] for k in inner)),
        ),
        ("input check", per(wall["input check"]), per(cpu["input check"])),
        ("service: locked read", per(wall["service: locked read"]), per(cpu["service: locked read"])),
        ("service: write", per(wall["service: write"]), per(cpu["service: write"])),
        (
            "service: the rest",
            per(wall["service"] - sum(wall[k] for k in service_parts)),
            per(cpu["service"] - sum(cpu[k] for k in service_parts)),
        ),
        ("answer (serializer)", per(wall["answer"]), per(cpu["answer"])),
    ]
    staged_wall = sum(r[1] for r in rows)
    staged_cpu = sum(r[2] for r in rows)
    rows.append(
        ("middleware, routing, parsing, rendering", redeem[0] * 1000 - staged_wall, redeem[1] * 1000 - staged_cpu)
    )

    def line(name: str, wall_ms: float, cpu_ms: float) -> str:
        return f"| {name} | {wall_ms:.2f} | {cpu_ms:.2f} | {wall_ms - cpu_ms:.2f} |"

    print(f"\nOne request in process, mean of {count}, on a machine with {os.cpu_count()} CPUs (ms):\n")
    print("| | wall | Python CPU | waiting |")
    print("| --- | ---: | ---: | ---: |")
    print(line("**ping** (the no-op)", ping[0] * 1000, ping[1] * 1000))
    print(line("  of which authentication and throttles", per(ping_initial[0]), per(ping_initial[1])))
    print(line("**redemption**", redeem[0] * 1000, redeem[1] * 1000))
    for name, wall_ms, cpu_ms in rows:
        print(line(f"  {name}", wall_ms, cpu_ms))
    ping_ms, redeem_ms = ping[0] * 1000, redeem[0] * 1000
    extra_wait = (redeem[0] - redeem[1] - (ping[0] - ping[1])) * 1000
    extra_cpu = (redeem[1] - ping[1]) * 1000
    print(
        f"\nA redemption takes {redeem_ms / ping_ms:.1f} times the no-op ({ping_ms / redeem_ms:.0%} of its rate,"
        f" one at a time). Beyond the no-op it waits {extra_wait:.2f} ms more and computes {extra_cpu:.2f} ms"
        f" more in Python.\nAt half the no-op's rate it would take at most {2 * ping_ms:.2f} ms:"
        f" {2 * ping_ms - redeem_ms:+.2f} ms from here. With its waits as they are, that leaves"
        f" {max(ping_ms - extra_wait, 0):.2f} ms of Python beyond the no-op's, against {extra_cpu:.2f} ms measured."
    )


if __name__ == "__main__":
    main()
