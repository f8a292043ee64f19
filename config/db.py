"""PostgreSQL below the ORM, for the few hot paths that count their round trips.

The ORM waits for the server after every statement. Where a path is worth it (a redemption, a
ledger batch), statements that do not depend on each other's answers are sent together in one
psycopg pipeline: the server still runs them in order, in the caller's transaction, but the client
waits once. Statements sent here bind their parameters on the server and are prepared once per
connection, so they are neither parsed nor planned again; they do not show in Django's query log
(`tests/roundtrips.py` counts them at the wire).

Django's ORM must not run inside a pipeline: it reads `rowcount` before the server answered.
"""

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from django.db import connection, transaction
from django.db.models import Model


def cursor() -> psycopg.Cursor[Any]:
    """A psycopg cursor on Django's connection, in its transaction."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


@contextlib.contextmanager
def pipeline() -> Iterator[None]:
    """Send what is executed in the block without waiting; the first fetch (or the block's end) waits
    once for everything sent so far. An error raises at that point, and the transaction is then
    aborted: the caller rolls back to a savepoint it took."""
    connection.ensure_connection()
    with connection.connection.pipeline():
        yield


def insert_statement(
    instance: Model, *, include_pk: bool = False, expressions: dict[str, tuple[str, Sequence[Any]]] | None = None
) -> tuple[str, list[Any]]:
    """The INSERT of a new model instance, with its values prepared as the ORM's `save()` would
    (auto_now_add set, defaults applied, JSON and arrays adapted). `expressions` gives some columns
    an SQL expression instead (`{"hold_transfer_id": ("(SELECT id FROM … WHERE key = %s)", [key])}`)."""
    expressions = expressions or {}
    columns: list[str] = []
    placeholders: list[str] = []
    params: list[Any] = []
    for field in instance._meta.concrete_fields:
        if field.primary_key and not include_pk:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.column in expressions:
            sql, sql_params = expressions[field.column]
            placeholders.append(sql)
            params.extend(sql_params)
            continue
        value = field.pre_save(instance, add=True)
        placeholders.append("%s")
        params.append(field.get_db_prep_save(value, connection=connection))
    table = connection.ops.quote_name(instance._meta.db_table)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(placeholders)})", params


class _RolledBack(Exception):
    """Ends `dry_run`'s transaction so that it rolls back."""


def dry_run(call: Callable[[], object]) -> None:
    """Run `call` in a transaction (a savepoint inside the caller's) that is always rolled back: its
    refusals are raised as they are, its writes never land. A request that must pass the same checks
    as the write it asks for, before anyone approves it, is checked this way by the write itself."""
    try:
        with transaction.atomic():
            call()
            raise _RolledBack
    except _RolledBack:
        pass
