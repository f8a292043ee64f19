"""Migration 0014 (and every migration after it) turns the single fund into the program
`hangzhou-compute` without moving a fen.

The database is the one the demo flows filled under the single-fund code, before programs: a
plain dump of it is kept in tests/coupons/fixtures/demo_before_programs.sql.gz (made with
`manage.py seed_demo` on the commit before programs, then `pg_dump --no-owner --no-privileges`), and
the document files it stored beside it in demo_before_programs_documents.tar.gz. It
is loaded into a database of its own, migrated by `manage.py migrate` in a process of its own, and
compared with what it was: every account's totals and flags, every transfer and seal byte for byte,
the chain heads; and the account codes are the old ones renamed by program. Then the audit of the
new code passes on it, the renaming run a second time renames nothing, and a migration back to
before programs and forward again changes nothing either.
"""

import gzip
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "coupons" / "fixtures"
DUMP = FIXTURES / "demo_before_programs.sql.gz"
# The documents the demo stored (content-addressed files under DOCUMENTS_ROOT), which the audit reads.
DOCUMENTS = FIXTURES / "demo_before_programs_documents.tar.gz"
DEFAULT = "hangzhou-compute"


def _conninfo(name: str) -> dict[str, object]:
    db = connection.settings_dict
    info: dict[str, object] = {"dbname": name, "user": db["USER"] or "postgres", "autocommit": True}
    if db["HOST"]:
        info["host"] = db["HOST"]
    if db["PORT"]:
        info["port"] = db["PORT"]
    if db["PASSWORD"]:
        info["password"] = db["PASSWORD"]
    return info


def _url(name: str) -> str:
    """The database `name` on the test server, as DATABASE_URL names it."""
    db = connection.settings_dict
    host = db["HOST"] or "127.0.0.1"
    if host.startswith("/"):  # The embedded server listens on a Unix socket only: django-environ's form.
        return f"postgres://{quote(db['USER'], safe='')}@/{quote(f'{host}/{name}', safe='')}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{name}"


def _statements(text: str) -> Iterator[tuple[str, list[str] | None]]:
    """pg_dump's plain SQL as (statement, COPY rows or None): statements end at a `;` at a line's
    end outside dollar quotes; a COPY … FROM stdin is followed by its rows up to `\\.`."""
    lines = iter(text.splitlines(keepends=True))
    pending: list[str] = []
    for line in lines:
        # Comments, and psql's meta-commands (`\restrict`, which newer pg_dump writes): not SQL.
        if not pending and (not line.strip() or line.startswith(("--", "\\"))):
            continue
        pending.append(line)
        sql = "".join(pending)
        if sql.count("$$") % 2 == 0 and line.rstrip().endswith(";"):
            pending = []
            if sql.lstrip().startswith("COPY ") and sql.rstrip().endswith("FROM stdin;"):
                rows = []
                for row in lines:
                    if row.rstrip("\n") == "\\.":
                        break
                    rows.append(row)
                yield sql, rows
            else:
                yield sql, None
    assert not "".join(pending).strip(), "the dump ends inside a statement"


def _manage(name: str, *args: str, documents: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": _url(name),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",  # The test settings keep documents elsewhere.
        "DOCUMENTS_ROOT": str(documents),
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def _snapshot(cursor: psycopg.Cursor) -> dict[str, object]:
    """Everything money: accounts by id (totals, flags), transfers and seals whole, chain heads."""

    def rows(sql: str) -> list[tuple[object, ...]]:
        cursor.execute(sql)
        return cursor.fetchall()

    return {
        "accounts": rows(
            "SELECT id, debits_pending, debits_posted, credits_pending, credits_posted,"
            " debits_must_not_exceed_credits, credits_must_not_exceed_debits, closed FROM ledger_account ORDER BY id"
        ),
        "transfers": rows("SELECT t.*::text FROM ledger_transfer t ORDER BY id"),
        "seals": rows("SELECT s.*::text FROM ledger_transferseal s ORDER BY 1"),
        "heads": rows("SELECT h.*::text FROM ledger_chainhead h ORDER BY 1"),
        "grants": rows(
            "SELECT id, year_id, amount_fen, revoked_fen, lapsed_fen, account_id FROM coupons_grant ORDER BY id"
        ),
        "applications": rows(
            "SELECT id, year_id, status, eligible_fen, requested_fen FROM coupons_application ORDER BY id"
        ),
    }


def _codes(cursor: psycopg.Cursor) -> dict[int, str]:
    cursor.execute("SELECT id, code FROM ledger_account")
    return dict(cursor.fetchall())


def _renamed(code: str) -> str:
    """The code migration 0014 gives an account of the single-fund service."""
    parts = code.split(":")
    if parts[0] in {"appropriation", "pool", "cap_allotted", "cap_used", "disbursed", "lapsed"} and len(parts) == 2:
        return f"{parts[0]}:{DEFAULT}:{parts[1]}"
    if parts[0] == "grant" and len(parts) == 3:
        return f"grant:{DEFAULT}:{parts[1]}:{parts[2]}"
    if parts[0] == "cap" and len(parts) == 3:
        return f"cap:{DEFAULT}:{parts[2]}:{parts[1]}"
    return code  # provider:V and enterprise:E are not per year.


@pytest.fixture
def demo_database() -> Iterator[str]:
    name = f"{connection.settings_dict['NAME']}_before_programs"[:63]
    with psycopg.connect(**_conninfo("postgres")) as admin:  # type: ignore[arg-type]
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(**_conninfo(name)) as target, target.cursor() as cursor:  # type: ignore[arg-type]
            for sql, rows in _statements(gzip.decompress(DUMP.read_bytes()).decode()):
                if rows is None:
                    cursor.execute(sql)
                else:
                    with cursor.copy(sql) as copy:
                        for row in rows:
                            copy.write(row)
        yield name
    finally:
        with psycopg.connect(**_conninfo("postgres")) as admin:  # type: ignore[arg-type]
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_migration_to_programs_moves_no_fen(demo_database: str, tmp_path: Path) -> None:
    with tarfile.open(DOCUMENTS) as archive:
        archive.extractall(tmp_path, filter="data")
    with psycopg.connect(**_conninfo(demo_database)) as db, db.cursor() as cursor:  # type: ignore[arg-type]
        cursor.execute("SELECT max(name) FROM django_migrations WHERE app = 'coupons'")
        assert cursor.fetchone() == ("0013_invoice_identity_is_its_digits",), "the dump is from before programs"
        before, old_codes = _snapshot(cursor), _codes(cursor)
        cursor.execute("SELECT count(*), sum(amount_fen) FROM ledger_transfer")
        transfers, moved = cursor.fetchone()  # type: ignore[misc]
        assert transfers > 0 and moved > 0, "the demo moved money"

    migrated = _manage(demo_database, "migrate", "--noinput", documents=tmp_path)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    with psycopg.connect(**_conninfo(demo_database)) as db, db.cursor() as cursor:  # type: ignore[arg-type]
        after = _snapshot(cursor)
        for part in before:
            assert after[part] == before[part], f"{part} changed"
        assert _codes(cursor) == {pk: _renamed(code) for pk, code in old_codes.items()}
        assert any(code.startswith(f"pool:{DEFAULT}:") for code in _codes(cursor).values())
        cursor.execute("SELECT id, program_id, year, chain FROM coupons_programyear ORDER BY id")
        years = cursor.fetchall()
        assert years and all((pk, program, str(year)) == (year, DEFAULT, chain) for pk, program, year, chain in years)
        cursor.execute("SELECT count(*) FROM coupons_application WHERE program_id IS DISTINCT FROM %s", [DEFAULT])
        assert cursor.fetchone() == (0,)

        # The renaming run again renames nothing.
        cursor.execute(import_module("coupons.migrations.0014_programs").RENAME_ACCOUNTS)
        assert _codes(cursor) == {pk: _renamed(code) for pk, code in old_codes.items()}

    audit = _manage(demo_database, "audit", documents=tmp_path)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "passed" in audit.stdout

    # Back to before programs and forward again: still nothing moved, and the codes round-trip.
    back = _manage(demo_database, "migrate", "coupons", "0013", "--noinput", documents=tmp_path)
    assert back.returncode == 0, back.stdout + back.stderr
    with psycopg.connect(**_conninfo(demo_database)) as db, db.cursor() as cursor:  # type: ignore[arg-type]
        assert _codes(cursor) == old_codes
        assert _snapshot(cursor)["transfers"] == before["transfers"]
    forward = _manage(demo_database, "migrate", "--noinput", documents=tmp_path)
    assert forward.returncode == 0, forward.stdout + forward.stderr
    with psycopg.connect(**_conninfo(demo_database)) as db, db.cursor() as cursor:  # type: ignore[arg-type]
        snapshot = _snapshot(cursor)
        for part in ("accounts", "transfers", "seals", "heads", "grants"):
            assert snapshot[part] == before[part], f"{part} changed on the second migration"
