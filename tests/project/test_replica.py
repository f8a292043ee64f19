"""Reads off the primary, through a real streaming replica (config/replica.py, docs/scale-out.md).

The test starts its own pair of PostgreSQL servers on loopback, never the shared one: a primary
(initdb, wal_level=replica, a replication line in pg_hba.conf) holding a copy of this test's
database, and a standby made from it with `pg_basebackup -R`, streaming from it. gunicorn serves the
service with DATABASE_URL naming the primary and DATABASE_REPLICA_URL the standby (two workers and
a Redis of the test's own, so a pin made by one worker holds in the other). With replay paused on
the standby, the two servers disagree, and each answer shows which one it was read from:

1. a list and the pool statistics asked by someone who has not written are read off the replica
   (they show the state from before the write);
2. the writer's own list, read right after its write, shows the write (pinned to the primary);
3. the money writes themselves (a bill redeemed, then captured) succeed, with the standby read-only
   and paused: writes go to the primary;
4. with the standby stopped, the same reads answer from the primary: no 500.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings

from accounts.credentials import api_key_create, token_issue
from config.replica import replica_lag_s
from coupons.models import Grant
from tests.coupons.conftest import Cast, grant_for, make_cast, open_year
from tests.evidence import document, invoice_number
from tests.project.test_connections import database_url, free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
WORKERS = 2
START_TIMEOUT_S = 20
DATABASE = "coupons"
BILL_FEN = 10_000  # 100 yuan: a coupon of 30 yuan, well inside the grant.
PIN_S = 60  # Longer than the test: the writer's reads stay pinned however slow the machine is.


def _server_user() -> dict[str, Any]:
    """PostgreSQL refuses to run as root: as root, the servers run as the `postgres` user."""
    if os.geteuid() != 0:
        return {}
    import pwd

    entry = pwd.getpwnam("postgres")
    return {"user": entry.pw_uid, "group": entry.pw_gid}


def _run(command: list[str], **kwargs: Any) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, **kwargs)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@dataclass
class Server:
    """One private PostgreSQL server on loopback."""

    data: Path
    port: int
    log: Path

    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self, sockets: Path) -> None:
        options = f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sockets}"
        command = [str(POSTGRES_BIN / "pg_ctl"), "start", "-w", "-D", str(self.data), "-l", str(self.log)]
        _run([*command, "-o", options], **_server_user())

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            [str(POSTGRES_BIN / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.data)],
            capture_output=True,
            timeout=60,
            check=False,
            **_server_user(),
        )

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


@dataclass
class Cluster:
    primary: Server
    standby: Server


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A primary with this test's database (as the test wrote it) and a standby streaming from it."""
    base = Path(tempfile.mkdtemp(prefix="coupons-replica-"))
    user = _server_user()
    if user:
        os.chown(base, user["user"], user["group"])
    primary = Server(base / "primary", free_port(), base / "primary.log")
    standby = Server(base / "standby", free_port(), base / "standby.log")
    try:
        _run([str(POSTGRES_BIN / "initdb"), "-D", str(primary.data), "-U", "postgres", "-A", "trust", "-N"], **user)
        with (primary.data / "postgresql.conf").open("a") as conf:
            conf.write("wal_level = replica\nmax_wal_senders = 4\nfsync = off\nsynchronous_commit = off\n")
        with (primary.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        primary.start(base)
        _run([str(POSTGRES_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", DATABASE])
        dump = subprocess.run(
            [str(POSTGRES_BIN / "pg_dump"), "--no-owner", "--no-privileges", "-d", database_url()],
            capture_output=True,
            timeout=60,
            check=True,
        )
        _run(
            [str(POSTGRES_BIN / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", primary.url()],
            input=dump.stdout.decode(),
        )
        basebackup = [str(POSTGRES_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port)]
        _run([*basebackup, "-U", "postgres", "-D", str(standby.data), "-R", "-X", "stream", "-N", "-c", "fast"], **user)
        standby.start(base)
        assert standby.query("SELECT pg_is_in_recovery()") == [(True,)]
        yield Cluster(primary, standby)
    finally:
        standby.stop("immediate")
        primary.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Service:
    port: int
    log: Path

    def request(self, method: str, path: str, *, auth: str, body: Any = None, key: str = "") -> tuple[int, Any]:
        client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            headers = {"Authorization": auth, "Content-Type": "application/json"}
            if key:
                headers["Idempotency-Key"] = key
            client.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
            answer = client.getresponse()
            data = answer.read()
            return answer.status, json.loads(data) if data.startswith((b"{", b"[")) else data
        finally:
            client.close()


@pytest.fixture
def service(cluster: Cluster, tmp_path: Path) -> Iterator[Service]:
    """gunicorn with the production settings, reading the standby and writing the primary."""
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_", "REDIS_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DATABASE_URL=cluster.primary.url(),
        DATABASE_REPLICA_URL=cluster.standby.url(),
        DATABASE_REPLICA_PIN_S=str(PIN_S),
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        DJANGO_SECRET_KEY="test-replica-" + "x" * 50,
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECURE_SSL_REDIRECT="false",
        STAFF_2FA_REQUIRED="false",
        DOCUMENTS_ROOT=str(settings.DOCUMENTS_ROOT),  # The invoice this test uploaded.
        THROTTLE_USER="100000/minute",
    )
    log = tmp_path / "gunicorn.log"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(gunicorn), "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"gunicorn exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"gunicorn did not start:\n{log.read_text()}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        yield Service(port, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        redis.kill()
        redis.wait()


@dataclass
class World:
    cast: Cast
    grant: Grant
    clerk_auth: str  # The provider's API key: the writer.
    finance_auth: str  # A finance officer's bearer token: someone who did not write.
    invoice_document: int


@pytest.fixture
def world() -> World:
    """Written (committed) before the cluster copies this test's database."""
    cast = make_cast()
    open_year(cast.admin)
    grant = grant_for(cast)
    _, key = api_key_create(provider=cast.provider, name="billing", actor=cast.clerk)
    _, token = token_issue(user=cast.finance)
    invoice = document(cast.clerk, "invoice")
    return World(cast, grant, f"Api-Key {key}", f"Bearer {token}", invoice.pk)


def _redemption_ids(service: Service, auth: str) -> set[int]:
    status, body = service.request("GET", "/api/v1/redemptions/", auth=auth)
    assert status == 200, (status, body)
    return {row["id"] for row in body["results"]}


def _redeemed_fen(service: Service, auth: str) -> int:
    status, body = service.request("GET", "/api/v1/stats/pool/", auth=auth)
    assert status == 200, (status, body)
    return int(body["redeemed_fen"])


def _lag_s(server: Server) -> float:
    with psycopg.connect(server.url(), autocommit=True) as conn, conn.cursor() as cursor:
        return replica_lag_s(cursor)


def _wait_for(condition: Any, what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_reads_go_to_the_replica_a_writer_reads_its_write_and_a_dead_replica_falls_back(
    world: World, cluster: Cluster, service: Service
) -> None:
    primary, standby = cluster.primary, cluster.standby
    # given: both servers agree, and nobody has redeemed anything
    assert _redemption_ids(service, world.finance_auth) == set()
    assert _redemption_ids(service, world.clerk_auth) == set()
    assert _redeemed_fen(service, world.finance_auth) == 0

    # and: the standby stops replaying what the primary sends it (it lags from now on)
    standby.query("SELECT pg_wal_replay_pause()")
    _wait_for(lambda: standby.query("SELECT pg_get_wal_replay_pause_state()") == [("paused",)], "replay to pause")

    # when: the provider redeems a bill (a hold on the grant, written by the money path's own SQL),
    # then captures it (through the ORM, under the redemption's lock): two money writes (3)
    bill = {
        "grant": world.grant.pk,
        "bill_number": "R-1",
        "bill_amount_fen": BILL_FEN,
        "invoice_number": invoice_number(),
        "invoice_document": world.invoice_document,
        "capture": False,
    }
    status, body = service.request("POST", "/api/v1/redemptions/", auth=world.clerk_auth, body=bill, key="R-1")
    assert status == 201, (status, body)
    redemption, coupon_fen = body["id"], body["coupon_fen"]
    assert coupon_fen > 0
    capture = f"/api/v1/redemptions/{redemption}/capture/"
    status, body = service.request("POST", capture, auth=world.clerk_auth, body={})
    assert (status, body.get("status")) == (200, "captured"), (status, body)
    # then: it was written on the primary; the read-only standby has not replayed it
    count = "SELECT count(*) FROM coupons_redemption WHERE id = %s AND status = 'captured'"
    assert primary.query(count, (redemption,)) == [(1,)]
    assert standby.query(count, (redemption,)) == [(0,)]
    # and: the standby knows it is behind (what DATABASE_REPLICA_MAX_LAG_S compares)
    assert _lag_s(standby) > 0

    # and: the writer's own list, read at once, shows its write: pinned to the primary (2)
    assert _redemption_ids(service, world.clerk_auth) == {redemption}
    # and: someone who did not write reads the replica: the list and the statistics from before (1)
    assert _redemption_ids(service, world.finance_auth) == set()
    assert _redeemed_fen(service, world.finance_auth) == 0

    # when: the standby replays again, it catches up, and so do the replica's readers
    standby.query("SELECT pg_wal_replay_resume()")
    _wait_for(lambda: standby.query(count, (redemption,)) == [(1,)], "the standby to replay the bill")
    _wait_for(lambda: _lag_s(standby) == 0, "the standby to have replayed all it received")
    assert _redemption_ids(service, world.finance_auth) == {redemption}
    assert _redeemed_fen(service, world.finance_auth) == coupon_fen

    # when: the standby goes away (4)
    standby.stop("immediate")
    # then: the same reads answer from the primary, in both workers, never a 500
    for _ in range(2 * WORKERS):
        assert _redemption_ids(service, world.finance_auth) == {redemption}
        assert _redeemed_fen(service, world.finance_auth) == coupon_fen
    status, _body = service.request("GET", "/api/v1/public/awards/", auth="")
    assert status == 200
    log = service.log.read_text()
    assert "replica: unreachable" in log
    assert "Internal Server Error" not in log, log
