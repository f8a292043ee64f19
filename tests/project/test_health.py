"""The status page and the health probes answer, and say what is wrong when something is."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_status_page_says_the_service_is_up(client: Client):
    response = client.get("/status/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="service-status" class="ok"' in body
    assert "The service is up." in body


def test_healthz(client: Client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_reports_the_database(client: Client, settings):
    settings.REDIS_URL = ""
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": True, "redis": None}}


def test_readyz_is_503_when_redis_does_not_answer(client: Client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # Nothing listens on port 1.
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": True, "redis": False}


def test_readyz_is_503_when_the_database_does_not_answer(client: Client, monkeypatch):
    from config import health

    monkeypatch.setattr(health.connection, "cursor", lambda: (_ for _ in ()).throw(OSError("down")))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] is False


def test_readyz_against_the_configured_redis(client: Client, settings):
    """CI sets REDIS_URL to a real Redis: readiness must then ask it. Unset, Redis is not needed."""
    import os

    redis_url = os.environ.get("REDIS_URL", "")
    settings.REDIS_URL = redis_url
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["redis"] is (True if redis_url else None)


def test_the_status_page_and_a_command_show_the_beat_schedule(client: Client):
    # Found from outside: run as production runs it, nothing showed when the nightly audit runs.
    from io import StringIO

    from django.core.management import call_command

    body = client.get("/status/").content.decode()
    assert 'id="beat-schedule"' in body
    assert "nightly-audit" in body and "daily at 02:30 Asia/Shanghai" in body
    out = StringIO()
    call_command("beat_schedule", stdout=out)
    assert "nightly-audit" in out.getvalue() and "coupons.tasks.nightly_audit" in out.getvalue()
    assert "daily at 02:30 Asia/Shanghai" in out.getvalue()
