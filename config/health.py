"""The front page and the health probes.

`/healthz` answers while the process is up. `/readyz` answers 200 only when the database (and
Redis, when REDIS_URL is set) answer, so a load balancer stops sending traffic to a process that
cannot serve it. The front page shows the same facts to a person.
"""

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

REDIS_PING_TIMEOUT_S = 2


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:  # Any failure to answer means "not ready"; the probe must not raise.
        return False


def _redis_ok() -> bool | None:
    """True or False when Redis is configured, None when it is not."""
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=REDIS_PING_TIMEOUT_S)
        return bool(client.ping())
    except redis.RedisError:
        return False


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_ok(), "redis": _redis_ok()}
    ready = all(ok is not False for ok in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def home(request: HttpRequest) -> HttpResponse:
    from config.schedule import schedule_jobs

    context = {"database_ok": _database_ok(), "redis_ok": _redis_ok(), "jobs": schedule_jobs()}
    return render(request, "home.html", context)
