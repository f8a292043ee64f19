"""Reads off the primary: a streaming replica serves the read-only pages and endpoints.

With DATABASE_REPLICA_URL set, the settings add a second database alias, `replica`, and install
`ReplicaRouter`. The router does not route by default: every query goes to the primary (`default`)
unless the code runs inside a view marked `@reads_from_replica` (or a DRF list view with
`ListFromReplica`), which only the dashboard, the stats, the exports, the public notice and the
lists carry. Even there, writes, `select_for_update()` and every query inside `transaction.atomic`
stay on the primary, so a read that decides a write (always made under a lock, in a service's
transaction) can never reach a replica by accident. Services, Celery tasks, management commands and
unmarked views never see the replica at all.

A replica lags. Three guards keep that out of what people see (docs/scale-out.md):

- **Read-your-writes.** After any POST, PUT, PATCH or DELETE by a signed-in caller (session, bearer
  token or API key: all name a `User`), `ReplicaPinMiddleware` pins that user to the primary for
  DATABASE_REPLICA_PIN_S seconds, in the cache, which every worker shares (Redis). A marked read by
  a pinned user goes to the primary. A cache that does not answer counts as pinned.
- **A dead replica** (refused, dropped, failing its health check) is skipped: the read goes to the
  primary, the failure is logged once, and the replica is tried again after
  DATABASE_REPLICA_RETRY_S seconds. A query that fails on the replica part-way through a view is
  answered by running the (read-only) view again on the primary.
- **Lag over a bound**: with DATABASE_REPLICA_MAX_LAG_S set (> 0), a replica further behind than
  that is skipped like a dead one.
"""

import contextlib
import contextvars
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeVar, cast

from django.conf import settings
from django.core import checks
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, Error, InterfaceError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from rest_framework.mixins import ListModelMixin
from rest_framework.request import Request
from rest_framework.response import Response

log = logging.getLogger("coupons.replica")

REPLICA: Final = "replica"
ROUTER: Final = "config.replica.ReplicaRouter"
READ_METHODS: Final = frozenset({"GET", "HEAD"})
WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PIN_KEY_PREFIX: Final = "replica-pin:"

# Set (True) only while a marked view runs; threads and Celery tasks start with it unset.
_replica_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar("replica_allowed", default=False)

# Per process: until when (time.monotonic()) the replica is skipped after a failure, and why.
_skip_until = 0.0
_skip_reason = ""

# How far the replica is behind, in seconds: 0 when it replayed everything it received (or is not a
# standby at all, as the test suite's mirror of the test database is). Paused or busy replay with
# WAL waiting counts the time since the last transaction it replayed was committed on the primary,
# or, when it has replayed none since it started, since it started (unknown counts as behind).
LAG_SQL: Final = """
SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0
            WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
            ELSE greatest(extract(epoch FROM now() - coalesce(pg_last_xact_replay_timestamp(),
                                                             pg_postmaster_start_time())), 0)
       END
"""


def replica_configured() -> bool:
    """True when the settings name a replica (DATABASE_REPLICA_URL) and install the router. The test
    settings name one (a mirror of the test database) without the router: the suite reads the primary
    only, except the tests that install the router (tests/project/test_replica_routing.py)."""
    return REPLICA in settings.DATABASES and ROUTER in settings.DATABASE_ROUTERS


class ReplicaRouter:
    """Reads inside a marked view go to the replica; everything else to the primary.

    Answers `default` explicitly rather than None, so that Django's fallback (the database an
    instance came from) never sends a later query about an object read off the replica back to it.
    """

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        if (
            _replica_allowed.get()
            and REPLICA in settings.DATABASES
            and not connections[DEFAULT_DB_ALIAS].in_atomic_block
        ):
            return REPLICA
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        return True  # The replica holds the primary's rows: objects from either relate freely.

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS  # A replica replays the primary's schema; nothing migrates it.


# --- Read-your-writes ---------------------------------------------------------------------------

PER_PROCESS_CACHES: Final = frozenset(
    {"django.core.cache.backends.locmem.LocMemCache", "django.core.cache.backends.dummy.DummyCache"}
)


@checks.register(checks.Tags.caches, checks.Tags.database)
def pin_cache_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Pins live in the cache: one that each process keeps to itself (no REDIS_URL) pins a writer in
    the process that served the write only, and the writer's next read, served by another worker,
    may come off the replica before it has the write. Registered by `api.apps.ApiConfig.ready`."""
    if replica_configured() and settings.CACHES["default"]["BACKEND"] in PER_PROCESS_CACHES:
        return [
            checks.Warning(
                "DATABASE_REPLICA_URL is set but the cache is per process: a writer's pin to the primary "
                "holds only in the process that served the write.",
                hint="Set REDIS_URL, or run a single process (docs/scale-out.md, 'Reading your own writes').",
                id="replica.W001",
            )
        ]
    return []


def _pin_key(request: HttpRequest | Request) -> str | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return f"{PIN_KEY_PREFIX}{user.pk}"


def caller_pinned(request: HttpRequest | Request) -> bool:
    """True when the caller wrote within the last DATABASE_REPLICA_PIN_S seconds, or when the cache
    cannot say (the safe answer: the primary). Anonymous callers write nothing worth reading back."""
    key = _pin_key(request)
    if key is None:
        return False
    try:
        return cache.get(key) is not None
    except Exception:  # Whatever the cache backend raises when it is down.
        log.warning("replica: the cache did not answer; reading from the primary", exc_info=True)
        return True


def caller_pin(request: HttpRequest | Request) -> None:
    """Pin the caller of a write to the primary for DATABASE_REPLICA_PIN_S seconds."""
    key = _pin_key(request)
    if key is None:
        return
    try:
        cache.set(key, 1, timeout=settings.DATABASE_REPLICA_PIN_S)
    except Exception:  # A cache that is down fails `caller_pinned` too: the next reads go to the primary.
        log.warning("replica: could not pin a writer to the primary", exc_info=True)


class ReplicaPinMiddleware:
    """After a POST, PUT, PATCH or DELETE by a signed-in caller, pin them to the primary.

    Whatever the answer's status: a refused request may still have written (an idempotent replay,
    a step that commits before a later one fails), and a pin costs only a few primary reads. Reads
    `request.user` after the view, when DRF has set it for bearer tokens and API keys too.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if request.method in WRITE_METHODS and replica_configured():
            caller_pin(request)
        return response


# --- Health -------------------------------------------------------------------------------------


def replica_lag_s(cursor: Any) -> float:
    """How far behind the server `cursor` is connected to is, in seconds (LAG_SQL)."""
    cursor.execute(LAG_SQL)
    return float(cursor.fetchone()[0])


def _skip(reason: str) -> None:
    global _skip_until, _skip_reason
    if not _skip_reason:
        log.warning("replica: %s; reading from the primary for %s s", reason, settings.DATABASE_REPLICA_RETRY_S)
    _skip_until, _skip_reason = time.monotonic() + settings.DATABASE_REPLICA_RETRY_S, reason


def _replica_healthy() -> bool:
    """The replica answers (its kept connection passes Django's health check, or a new one opens)
    and, with DATABASE_REPLICA_MAX_LAG_S set, is not further behind. After a failure it is skipped
    for DATABASE_REPLICA_RETRY_S seconds, so a dead replica costs one failed connect per process per
    period, not one per request."""
    global _skip_reason
    if time.monotonic() < _skip_until:
        return False
    replica: BaseDatabaseWrapper = connections[REPLICA]
    try:
        replica.close_if_health_check_failed()
        replica.ensure_connection()
        max_lag_s = settings.DATABASE_REPLICA_MAX_LAG_S
        if max_lag_s > 0:
            with replica.cursor() as cursor:
                lag_s = replica_lag_s(cursor)
            if lag_s > max_lag_s:
                _skip(f"{lag_s:.1f} s behind, over DATABASE_REPLICA_MAX_LAG_S={max_lag_s}")
                return False
    except Error as error:
        _replica_close()
        _skip(f"unreachable ({type(error).__name__}: {str(error).strip()})")
        return False
    if _skip_reason:
        log.warning("replica: reading from it again")
        _skip_reason = ""
    return True


def _replica_close() -> None:
    with contextlib.suppress(Error):  # Already broken: Django forgets it either way.
        connections[REPLICA].close()


# --- Marking views ------------------------------------------------------------------------------

ViewFunction = TypeVar("ViewFunction", bound=Callable[..., Any])


def _request_of(args: tuple[Any, ...]) -> HttpRequest | Request:
    """The request among a view's arguments: first for a function view, second for a method."""
    for arg in args[:2]:
        if isinstance(arg, HttpRequest | Request):
            return arg
    raise TypeError("reads_from_replica marks views: (request, ...) or (self, request, ...).")


@contextlib.contextmanager
def replica_reads_allowed() -> Iterator[None]:
    """The block's ORM reads may go to the replica (outside transactions; writes never). What
    `reads_from_replica` sets around a view, without its checks: for tests, and for code that has
    made those checks itself."""
    token = _replica_allowed.set(True)
    try:
        yield
    finally:
        _replica_allowed.reset(token)


_END: Final = object()  # What the chunks' iterator gives once it is exhausted.


def _within_replica(chunks: Iterable[Any]) -> Iterator[Any]:
    """A streamed answer's chunks, each produced with the replica allowed: the WSGI server reads
    them after the view has returned, outside the view's own context."""
    iterator = iter(chunks)
    while True:
        with replica_reads_allowed():
            chunk = next(iterator, _END)
        if chunk is _END:
            return
        yield chunk


def reads_from_replica(view: ViewFunction) -> ViewFunction:
    """Let the ORM reads of a GET or HEAD view go to the replica (ReplicaRouter), unless the caller
    is pinned to the primary or the replica is unhealthy. Put it next to the view's function, inside
    the access checks, so that who may see the page is decided on the primary. Only for views that
    write nothing: a query that fails on the replica makes the view run again on the primary."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        request = _request_of(args)
        if (
            request.method not in READ_METHODS
            or not replica_configured()
            or caller_pinned(request)
            or not _replica_healthy()
        ):
            return view(*args, **kwargs)
        token = _replica_allowed.set(True)
        try:
            response = view(*args, **kwargs)
        except (OperationalError, InterfaceError) as error:
            if not connections[REPLICA].errors_occurred:
                raise  # The primary's failure: running the view again would not help.
            failure = f"failed during a read ({type(error).__name__}: {str(error).strip()})"
        else:
            failure = ""
        finally:
            _replica_allowed.reset(token)
        if failure:
            _replica_close()
            _skip(failure)
            return view(*args, **kwargs)
        if isinstance(response, StreamingHttpResponse) and not response.is_async:
            response.streaming_content = _within_replica(cast(Iterator[bytes], response.streaming_content))
        return response

    return wrapper  # type: ignore[return-value]


class ListFromReplica(ListModelMixin):
    """For a DRF list view (`generics.ListAPIView` and the list-and-create views): the GET list is
    read off the replica (`reads_from_replica`); authentication, permissions and throttles run
    before it, on the primary."""

    @reads_from_replica
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)
