"""Servers of a fault test's own, to stop, kill and restart without harming anybody else's tests.

- `PrivatePostgres`: a PostgreSQL cluster made with initdb in a temporary directory, on a free
  loopback port, with a copy of this test's database (schema and rows, by pg_dump) in it;
  `using(...)` points this process's Django connection at that copy for a block.
- `PrivateRedis`: a redis-server on a free loopback port, keeping nothing on disk, to stop and
  start again on the same port.

The shared PostgreSQL and Redis of the machine are never stopped or reconfigured here.
"""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from django.db import connection

from tests.project.test_connections import free_port

PG_BIN = Path(os.environ.get("FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT_S = 30
DATABASE = "faults"
# PostgreSQL refuses to run as root: as root (a container, CI), the server runs as this system user.
SERVER_USER = "postgres"


def as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command


class PrivatePostgres:
    def __init__(self) -> None:
        # Its own directory in the system's temp dir (pytest's is private to root, out of the server user's reach).
        self.root = Path(tempfile.mkdtemp(prefix="faults-postgres-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.data = self.root / "pgdata"
        self.socket_dir = self.root / "pgsocket"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        try:
            self._create()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _create(self) -> None:
        """initdb, then start on the port chosen; raises when either fails (the caller removes the directory)."""
        subprocess.run(as_server_user(["mkdir", str(self.socket_dir)]), check=True)
        initdb = [
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]
        subprocess.run(as_server_user(initdb), check=True, capture_output=True)
        # A throwaway cluster: no disk flushes. A restart (`-m fast`) still shuts down cleanly and loses no commit.
        options = f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off -k {self.socket_dir}"
        self._pg_ctl("start", "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 {options}")

    def _pg_ctl(self, *args: str) -> None:
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(START_TIMEOUT_S)]
        subprocess.run(as_server_user([*command, *args]), check=True, capture_output=True)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def copy_of_test_database(self) -> None:
        """The test database as it is now (its migrations, and whatever rows it holds), as DATABASE here."""
        db = connection.settings_dict
        source = ["-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432), "-U", db["USER"]]
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-qc", f"CREATE DATABASE {DATABASE}"],
            check=True,
        )
        env = {**os.environ, "PGPASSWORD": db["PASSWORD"] or ""}
        dump = subprocess.Popen(
            [str(PG_BIN / "pg_dump"), *source, "--no-owner", "--no-privileges", db["NAME"]],
            stdout=subprocess.PIPE,
            env=env,
        )
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                DATABASE,
            ],
            stdin=dump.stdout,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        assert dump.wait() == 0

    def restart(self) -> float:
        """`pg_ctl restart -m fast`: every session is cut; returns how long the server was away (s)."""
        started = time.monotonic()
        self._pg_ctl("restart", "-m", "fast")
        return time.monotonic() - started

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "immediate")

    @contextmanager
    def using(self) -> Iterator[None]:
        """This process's default connection on the private copy for the block (Django ORM, services)."""
        settings_dict = connection.settings_dict
        saved = dict(settings_dict)
        connection.close()
        settings_dict.update(HOST="127.0.0.1", PORT=str(self.port), NAME=DATABASE, USER="postgres", PASSWORD="")
        try:
            yield
        finally:
            connection.close()
            settings_dict.clear()
            settings_dict.update(saved)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


class PrivateRedis:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            except redis.RedisError:
                assert time.monotonic() < deadline and self.process.poll() is None, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        """Gone at once, as a crashed Redis (SIGKILL): queued messages and counters are lost with it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@contextmanager
def private_redis(root: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(root)
    try:
        yield server
    finally:
        server.stop()


ROOT = Path(__file__).resolve().parents[2]


def start_worker(*, redis_url: str, database_url: str, log: Path, queue: str = "celery") -> subprocess.Popen[bytes]:
    """A Celery worker (one process, the solo pool) on `queue` of this Redis, on this database."""
    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_", "REDIS_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PYTHONPATH=str(ROOT),
        DOCUMENTS_ROOT=str(settings.DOCUMENTS_ROOT),  # The audit's storage check reads this test's files.
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--queues", queue),
                *("--without-mingle", "--without-gossip", "--loglevel=INFO", f"--hostname={queue}-{os.getpid()}@%h"),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_a_session_waiting_on_a_lock(timeout_s: float = 30) -> None:
    """Until another session of this database (a gunicorn worker's, a Celery worker's) waits on a lock,
    which the test holds: the request or the job is then inside its transaction, stopped there."""
    deadline = time.monotonic() + timeout_s
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # Inside a transaction it would be read once.
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            row = cursor.fetchone()
        if row and row[0]:
            return
        assert time.monotonic() < deadline, "nothing came to wait on the lock the test holds"
        time.sleep(0.05)


def send_task(name: str, *, redis_url: str) -> None:
    """Send a task through this Redis, on a connection of its own: the Celery app's shared producer
    pool stays bound to the first broker it met, which an earlier test may have stopped. (The test
    settings run tasks eagerly; send_task always sends, and says so in a warning, silenced here.)"""
    from celery.exceptions import AlwaysEagerIgnored

    from config.celery import app

    with warnings.catch_warnings(), app.connection_for_write(redis_url) as broker:
        warnings.simplefilter("ignore", AlwaysEagerIgnored)
        app.send_task(name, connection=broker)
