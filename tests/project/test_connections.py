"""Database connections under gunicorn with the production settings: each worker keeps its
connection between requests, and one PostgreSQL dropped while it sat idle (a restart, a failover,
an idle-session timeout, pg_terminate_backend) is replaced at the next request, never a 500.

The service runs as it does in production: gunicorn sync workers in their own processes, pointed at
this test's database (committed: a transactional test), so they read what the test wrote."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from accounts.credentials import api_key_create
from coupons.models import Grant, Redemption
from ledger.models import Transfer
from tests.coupons.conftest import Cast, grant_for, make_cast, open_year
from tests.evidence import document, invoice_number

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
START_TIMEOUT_S = 20
BILL_FEN = 1_000  # Ten yuan: 40 bills at 30% stay far inside the grant.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def database_url() -> str:
    """This test's database, as DATABASE_URL names it (the test process is connected to it)."""
    db = connection.settings_dict
    host = db["HOST"] or "127.0.0.1"
    if host.startswith("/"):  # The embedded server listens on a Unix socket only: django-environ's form.
        path = quote(f"{host}/{db['NAME']}", safe="")
        return f"postgres://{quote(db['USER'], safe='')}@/{path}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


class Service:
    """gunicorn serving config.wsgi with the production settings on a loopback port."""

    def __init__(self, port: int, process: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.process = process

    def request(
        self, method: str, path: str, *, key: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            client.request(
                method,
                path,
                body=payload,
                headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json", **(headers or {})},
            )
            answer = client.getresponse()
            data = answer.read()
            return answer.status, json.loads(data) if data.startswith((b"{", b"[")) else data
        finally:
            client.close()


def start_service(*, extra_env: dict[str, str], log: Path, workers: int = WORKERS, timeout: int = 30) -> Service:
    """gunicorn on a free port with the production settings, on this test's database unless `extra_env`
    names another (DATABASE_URL); `timeout` is gunicorn's worker timeout, in seconds."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_", "REDIS_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DATABASE_URL=database_url(),
        DJANGO_SECRET_KEY="test-connections-" + "x" * 50,
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECURE_SSL_REDIRECT="false",  # Plain HTTP on loopback, as docker-compose.yml serves it.
        DOCUMENTS_ROOT=str(settings.DOCUMENTS_ROOT),  # The invoices this test uploaded.
        THROTTLE_USER="100000/minute",
    )
    env.update(extra_env)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(gunicorn),
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--timeout",
                str(timeout),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"gunicorn exited:\n{log.read_text()}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return Service(port, process)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"gunicorn did not listen within {START_TIMEOUT_S} s:\n{log.read_text()}")


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    service = start_service(extra_env=request.param, log=tmp_path / "gunicorn.log")
    yield service
    service.process.terminate()
    try:
        service.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait()
    # The workers' connections close with them; the test database is then dropped without waiting.


def backends_of_this_database() -> set[int]:
    """The server processes connected to the test database, other than this test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return {pid for (pid,) in cursor.fetchall()}


def terminate_backends(pids: set[int]) -> int:
    """What a restart or failover of PostgreSQL does to connections sitting idle in the workers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [sorted(pids)])
        return sum(1 for (done,) in cursor.fetchall() if done)


@pytest.fixture
def world() -> tuple[Cast, Grant, str]:
    """A provider with an API key and an open grant, written before the service starts."""
    cast = make_cast()
    open_year(cast.admin)
    grant = grant_for(cast)
    _, key = api_key_create(provider=cast.provider, name="billing", actor=cast.clerk)
    return cast, grant, key


def redeem(service: Service, *, key: str, cast: Cast, grant: Grant, bill: str) -> tuple[str, int]:
    body = {
        "grant": grant.pk,
        "bill_number": bill,
        "bill_amount_fen": BILL_FEN,
        "invoice_number": invoice_number(),
        "invoice_document": document(cast.clerk, "invoice").pk,
        "capture": True,
    }
    status, _ = service.request("POST", "/api/v1/redemptions/", key=key, body=body, headers={"Idempotency-Key": bill})
    return f"POST /api/v1/redemptions/ {bill}", status


def round_of_requests(
    service: Service, *, key: str, cast: Cast, grant: Grant, label: str, count: int
) -> list[tuple[str, int]]:
    """`count` requests, each answer's status: reads of several endpoints and, every fourth, a bill
    redeemed and captured."""
    answers = []
    reads = ["/api/v1/me/", f"/api/v1/grants/{grant.pk}/", "/api/v1/redemptions/"]
    for n in range(count):
        if n % 4 == 3:
            answers.append(redeem(service, key=key, cast=cast, grant=grant, bill=f"{label}-{n}"))
        else:
            path = reads[n % len(reads)]
            answers.append((f"GET {path}", service.request("GET", path, key=key)[0]))
    return answers


def expected(answers: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The answers that are not what the request asks for: 200 for a read, 201 for a new bill."""
    return [(what, status) for what, status in answers if status != (201 if what.startswith("POST") else 200)]


# The defaults (nothing set), and the setting that showed the bug: connections kept 60 s.
@pytest.mark.parametrize("served", [{}, {"DATABASE_CONN_MAX_AGE_S": "60"}], indirect=True, ids=["defaults", "kept-60s"])
def test_connections_are_reused_and_a_dropped_one_is_replaced(served: Service, world: tuple[Cast, Grant, str]) -> None:
    cast, grant, key = world
    # Connections of this test process's other threads or helpers (a test that ran before in the same
    # process may have left one): not the workers'. The workers connect at their first request.
    others = backends_of_this_database()

    # given: the workers answered requests and keep their connections open between them
    assert expected(round_of_requests(served, key=key, cast=cast, grant=grant, label="warm", count=20)) == []
    kept = backends_of_this_database() - others
    assert 0 < len(kept) <= WORKERS, f"{len(kept)} connections open between requests for {WORKERS} workers"
    assert expected(round_of_requests(served, key=key, cast=cast, grant=grant, label="again", count=12)) == []
    still = backends_of_this_database() - others
    assert kept <= still, "a connection was closed and another opened instead of being reused"
    assert len(still) <= WORKERS, f"{len(still)} connections open between requests for {WORKERS} workers"

    # when: PostgreSQL drops every idle connection of the workers
    assert terminate_backends(still) == len(still)

    # then: the next 40 requests (reads and money writes) answer as if nothing happened
    answers = round_of_requests(served, key=key, cast=cast, grant=grant, label="after", count=40)
    assert [(what, status) for what, status in answers if status >= 500] == []
    assert expected(answers) == []
    # and each write happened once: one redemption and one posted transfer per bill
    bills = list(Redemption.objects.filter(grant=grant).values_list("bill_number", flat=True))
    assert len(bills) == len(set(bills)) == 5 + 3 + 10
    assert Redemption.objects.filter(grant=grant, status="captured").count() == len(bills)
    assert Transfer.objects.filter(reason="redemption_capture").count() == len(bills)
