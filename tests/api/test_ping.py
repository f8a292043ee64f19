"""GET /api/v1/ping/: the no-op of the API's own stack (middleware, authentication, throttles,
renderer, problem details), the baseline `make bench-http` measures every other endpoint against."""

import socket

import pytest
import yaml
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

import api.throttles  # noqa: F401 - bound before any override, as in a running server
from accounts.credentials import api_key_create
from tests.api.conftest import assert_problem, signed_in
from tests.factories import ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_throttle_counters():
    cache.clear()
    yield
    cache.clear()


def api_key_client() -> APIClient:
    provider = ProviderFactory()
    _, secret = api_key_create(provider=provider, name="billing", actor=UserFactory(provider=provider))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


def test_ping_answers_an_api_key_and_writes_nothing(db_snapshot):
    client = api_key_client()
    before = db_snapshot()

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/ping/")

    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]
    assert db_snapshot() == before
    assert all(q["sql"].lstrip().upper().startswith("SELECT") for q in queries.captured_queries), queries


def test_ping_answers_a_person_too():
    assert signed_in(UserFactory()).get("/api/v1/ping/").json() == {"status": "ok"}


def test_ping_needs_credentials():
    assert_problem(APIClient().get("/api/v1/ping/"), 401, "not_authenticated")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Api-Key hzk_wrong")
    assert_problem(client.get("/api/v1/ping/"), 401, "authentication_failed")


def test_ping_counts_against_the_user_rate(settings):
    rest = settings.REST_FRAMEWORK
    settings.REST_FRAMEWORK = {**rest, "DEFAULT_THROTTLE_RATES": {**rest["DEFAULT_THROTTLE_RATES"], "user": "2/minute"}}
    client = api_key_client()
    assert [client.get("/api/v1/ping/").status_code for _ in range(2)] == [200, 200]
    assert_problem(client.get("/api/v1/ping/"), 429, "throttled")


def test_ping_is_in_the_schema(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    operation = schema["paths"]["/api/v1/ping/"]["get"]
    assert operation["responses"]["200"] and "401" in operation["responses"]
    assert set(schema["paths"]["/api/v1/ping/"]) == {"get"}


def test_throttles_let_requests_through_when_their_cache_does_not_answer(settings, caplog):
    """Fail open (api/throttles.py, docs/faults.md): a Redis that is down must not refuse the API."""
    client = api_key_client()
    with socket.socket() as probe:  # A port nothing listens on: the connection is refused at once.
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "1/minute", "user": "1/minute"},
    }

    answers = [client.get("/api/v1/ping/").status_code for _ in range(3)]

    assert answers == [200, 200, 200]  # Past the rate of 1 a minute: nothing counted, nothing refused.
    assert "throttle user let a request through" in caplog.text
