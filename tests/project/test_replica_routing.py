"""The replica router and the views marked for it (config/replica.py), against a `replica` alias that
mirrors the test database: a second connection to it, as DATABASE_REPLICA_URL's alias is a second
connection to a standby. What each request read through that connection is what it read off the
replica. tests/project/test_replica.py proves the same through a real streaming replica.

The marked reads need transactional tests: a plain test runs inside a transaction on the primary,
and inside a transaction the router sends everything to the primary by design."""

import datetime as dt
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.core.checks import run_checks
from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test.utils import CaptureQueriesContext
from django.urls import URLResolver, get_resolver
from rest_framework.mixins import ListModelMixin
from rest_framework.test import APIClient

from accounts.credentials import token_issue
from accounts.models import User
from config import replica as replica_module
from config.replica import REPLICA, ROUTER, ListFromReplica, ReplicaRouter, caller_pinned, replica_reads_allowed
from coupons.models import Grant
from tests.coupons.conftest import Cast, grant_for, make_cast, open_year

pytestmark = pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, REPLICA])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _replica_state_reset() -> None:
    replica_module._skip_until = 0.0
    replica_module._skip_reason = ""


@pytest.fixture
def replica(settings: Any) -> Iterator[BaseDatabaseWrapper]:
    """The router installed, as DATABASE_REPLICA_URL installs it, over the test settings' `replica`
    alias (a mirror of the test database)."""
    settings.DATABASE_ROUTERS = [ROUTER]
    cache.clear()
    _replica_state_reset()
    yield connections[REPLICA]
    connections[REPLICA].close()
    _replica_state_reset()
    cache.clear()


@pytest.fixture
def world(replica: BaseDatabaseWrapper) -> tuple[Cast, Grant]:
    cast = make_cast()
    open_year(cast.admin)
    return cast, grant_for(cast)


def client_of(user: User) -> APIClient:
    client = APIClient()
    _, secret = token_issue(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def replica_queries(
    replica: BaseDatabaseWrapper, client: Any, method: str, path: str, **kwargs: Any
) -> tuple[Any, int]:
    """The answer to the request, and how many queries it sent through the replica's connection."""
    with CaptureQueriesContext(replica) as replica_log, CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]):
        response = getattr(client, method)(path, **kwargs)
        if getattr(response, "streaming", False):  # Streamed after the view returned: read it here.
            response.streaming_content = [b"".join(response.streaming_content)]
    return response, len(replica_log.captured_queries)


def text_of(response: Any) -> str:
    data = b"".join(response.streaming_content) if response.streaming else response.content
    return data.decode("utf-8-sig")


# --- The router -------------------------------------------------------------------------------------


def test_the_router_sends_reads_to_the_replica_only_inside_a_marked_block_and_outside_transactions(
    replica: BaseDatabaseWrapper,
) -> None:
    routing = ReplicaRouter()
    assert routing.db_for_read(Grant) == DEFAULT_DB_ALIAS  # Not marked: the primary.
    with replica_reads_allowed():
        assert routing.db_for_read(Grant) == REPLICA
        assert router.db_for_read(Grant) == REPLICA
        assert Grant.objects.all().db == REPLICA
        # Every write, and every read that decides one, stays on the primary even here.
        assert routing.db_for_write(Grant) == DEFAULT_DB_ALIAS
        assert Grant.objects.select_for_update().db == DEFAULT_DB_ALIAS
        with transaction.atomic():
            assert routing.db_for_read(Grant) == DEFAULT_DB_ALIAS
            assert Grant.objects.all().db == DEFAULT_DB_ALIAS
    assert routing.db_for_read(Grant) == DEFAULT_DB_ALIAS
    assert routing.allow_migrate(REPLICA, "coupons") is False
    assert routing.allow_migrate(DEFAULT_DB_ALIAS, "coupons") is True


def test_without_the_router_a_marked_block_reads_the_primary(db: None) -> None:
    # The test settings name the replica, as DATABASE_REPLICA_URL does, but install no router.
    with replica_reads_allowed(), CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as primary:
        assert Grant.objects.all().db == DEFAULT_DB_ALIAS
        list(Grant.objects.all())
    assert len(primary.captured_queries) == 1


# --- Marked and unmarked views ----------------------------------------------------------------------


def test_a_list_is_read_off_the_replica_and_a_write_and_a_detail_never_are(
    replica: BaseDatabaseWrapper, world: tuple[Cast, Grant]
) -> None:
    cast, grant = world
    finance = client_of(cast.finance)

    response, count = replica_queries(replica, finance, "get", "/api/v1/grants/")
    assert response.status_code == 200 and [row["id"] for row in response.json()["results"]] == [grant.pk]
    assert count > 0, "the list of grants was not read off the replica"

    response, count = replica_queries(replica, finance, "get", f"/api/v1/grants/{grant.pk}/")
    assert response.status_code == 200
    assert count == 0, "a detail read (it may precede a write) went to the replica"

    provider = client_of(cast.clerk)
    body = {"grant": grant.pk, "bill_number": "B-1", "bill_amount_fen": 1_000}
    response, count = replica_queries(replica, provider, "post", "/api/v1/redemptions/", data=body, format="json")
    assert response.status_code in {201, 400}, response.content[:300]  # Written or refused: never off the replica.
    assert count == 0, "a POST read something off the replica"


@pytest.mark.parametrize(
    "path",
    ["/api/v1/stats/pool/", "/api/v1/stats/programs/", "/api/v1/public/awards/", "/api/v1/public/awards.csv"],
)
def test_stats_and_the_public_notice_are_read_off_the_replica(
    replica: BaseDatabaseWrapper, world: tuple[Cast, Grant], path: str
) -> None:
    cast, grant = world
    response, count = replica_queries(replica, client_of(cast.admin), "get", path)
    assert response.status_code == 200, response.content[:300]
    assert count > 0
    if path.endswith(".csv"):  # Streamed after the view returned: still read off the replica.
        assert grant.code in text_of(response)


def test_portal_pages_dashboard_exports_and_notice_are_read_off_the_replica(
    replica: BaseDatabaseWrapper, world: tuple[Cast, Grant], client: Any
) -> None:
    cast, grant = world
    _, count = replica_queries(replica, client, "get", "/public/awards/")
    assert count > 0
    response, count = replica_queries(replica, client, "get", "/public/awards.csv")
    assert count > 0 and grant.code in text_of(response)

    client.force_login(cast.finance)
    today = dt.date.today()
    period = f"start={today - dt.timedelta(days=30)}&end={today + dt.timedelta(days=1)}"
    for path in ["/dashboard/", "/grants/", f"/exports/?what=grants&{period}&file_format=csv"]:
        response, count = replica_queries(replica, client, "get", path)
        assert response.status_code == 200, (path, response.status_code)
        assert count > 0, path
        if "exports" in path:  # Streamed after the view returned: still read off the replica.
            assert grant.code in text_of(response)


# --- Read-your-writes -------------------------------------------------------------------------------


def test_a_writer_reads_the_primary_for_the_pin_time_then_the_replica_again(
    replica: BaseDatabaseWrapper, world: tuple[Cast, Grant], settings: Any
) -> None:
    cast, grant = world
    clerk = client_of(cast.clerk)
    _, count = replica_queries(replica, clerk, "get", "/api/v1/redemptions/")
    assert count > 0

    # when: the clerk writes (a bill; refused or not, the request may have written)
    clerk.post("/api/v1/redemptions/", {"grant": grant.pk, "bill_number": "B-2"}, format="json")

    # then: the clerk's reads go to the primary, another caller's still to the replica
    response, count = replica_queries(replica, clerk, "get", "/api/v1/redemptions/")
    assert response.status_code == 200 and count == 0
    _, count = replica_queries(replica, client_of(cast.finance), "get", "/api/v1/redemptions/")
    assert count > 0
    assert cache.get(f"{replica_module.PIN_KEY_PREFIX}{cast.clerk.pk}") is not None

    # and once the pin expires, the replica again
    cache.delete(f"{replica_module.PIN_KEY_PREFIX}{cast.clerk.pk}")
    _, count = replica_queries(replica, clerk, "get", "/api/v1/redemptions/")
    assert count > 0


def test_a_portal_sign_in_and_form_post_pin_the_session_user(
    replica: BaseDatabaseWrapper, world: tuple[Cast, Grant], client: Any
) -> None:
    cast, _grant = world
    client.force_login(cast.finance)
    _, count = replica_queries(replica, client, "get", "/grants/")
    assert count > 0
    client.post("/i18n/setlang/", {"language": "en", "next": "/grants/"})  # Any POST by the signed-in user.
    _, count = replica_queries(replica, client, "get", "/grants/")
    assert count == 0


def test_a_cache_that_does_not_answer_reads_the_primary(
    replica: BaseDatabaseWrapper, world: tuple[Cast, Grant], client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cast, _grant = world
    client.force_login(cast.finance)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get", down)
    monkeypatch.setattr(cache, "set", down)
    # The portal (the API's throttles need the cache whatever the replica): pins can be neither read,
    # so the primary, nor stored, and the write still answers.
    response, count = replica_queries(replica, client, "get", "/grants/")
    assert response.status_code == 200 and count == 0
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/grants/"})
    assert response.status_code == 302


def test_an_anonymous_caller_is_never_pinned(rf: Any) -> None:
    request = rf.get("/")
    request.user = AnonymousUser()
    assert caller_pinned(request) is False


# --- A replica that is down or behind ---------------------------------------------------------------


def test_an_unreachable_replica_falls_back_to_the_primary_and_is_logged_once(
    replica: BaseDatabaseWrapper,
    world: tuple[Cast, Grant],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cast, grant = world
    replica.close()
    monkeypatch.setitem(replica.settings_dict, "PORT", free_port())  # Nothing listens there: refused.
    finance = client_of(cast.finance)
    with caplog.at_level(logging.WARNING, logger="coupons.replica"):
        for _ in range(3):
            response = finance.get("/api/v1/grants/")
            assert response.status_code == 200
            assert [row["id"] for row in response.json()["results"]] == [grant.pk]
    warnings = [r for r in caplog.records if r.name == "coupons.replica"]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()


def test_a_replica_failing_mid_read_is_answered_from_the_primary(
    replica: BaseDatabaseWrapper, world: tuple[Cast, Grant]
) -> None:
    cast, grant = world
    finance = client_of(cast.finance)
    assert finance.get("/api/v1/grants/").status_code == 200  # The replica's connection is open.
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:  # What a replica's crash does to it.
        cursor.execute("SELECT pg_backend_pid()")
        own = cursor.fetchone()[0]
        with replica.cursor() as replica_cursor:
            replica_cursor.execute("SELECT pg_backend_pid()")
            replica_pid = replica_cursor.fetchone()[0]
        assert replica_pid != own
        cursor.execute("SELECT pg_terminate_backend(%s)", [replica_pid])
    # Django's test client skips the health check between requests (it never resets it), so the dead
    # connection is found by the list's own query, as a replica crashing mid-request would be.
    replica.health_check_done = True
    response = finance.get("/api/v1/grants/")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [grant.pk]
    assert replica_module._skip_reason.startswith("failed during a read")


def test_a_replica_behind_the_bound_is_skipped(
    replica: BaseDatabaseWrapper, world: tuple[Cast, Grant], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cast, _grant = world
    finance = client_of(cast.finance)
    settings.DATABASE_REPLICA_MAX_LAG_S = 1.0
    _, count = replica_queries(replica, finance, "get", "/api/v1/grants/")
    assert count > 1  # The lag query (0: the mirror is no standby), then the list.
    _replica_state_reset()
    monkeypatch.setattr(replica_module, "replica_lag_s", lambda cursor: 10.0)
    response, count = replica_queries(replica, finance, "get", "/api/v1/grants/")
    assert response.status_code == 200 and count == 0
    assert "behind" in replica_module._skip_reason


# --- Which views are marked -------------------------------------------------------------------------


def _views(patterns: list[Any]) -> Iterator[Any]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(pattern.url_patterns)
        else:
            yield pattern.callback


def test_every_api_list_view_reads_its_list_off_the_replica() -> None:
    """A new list endpoint is marked like the others (unmarked would be safe, only slower)."""
    classes = {getattr(view, "cls", None) for view in _views(get_resolver().url_patterns)}
    lists = {cls for cls in classes if isinstance(cls, type) and issubclass(cls, ListModelMixin)}
    assert len(lists) >= 15
    assert sorted(cls.__name__ for cls in lists if not issubclass(cls, ListFromReplica)) == []


def test_a_replica_with_a_per_process_cache_is_warned_about(settings: Any) -> None:
    settings.DATABASE_ROUTERS = [ROUTER]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert [message.id for message in run_checks(tags=["caches"])] == ["replica.W001"]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}}
    assert run_checks(tags=["caches"]) == []
    settings.DATABASE_ROUTERS = []  # No replica routing: nothing to pin.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert run_checks(tags=["caches"]) == []
