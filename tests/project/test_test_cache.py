"""The test processes' cache (tests/cache.py): clearing it removes this process's keys only, so a test
that resets its throttles never empties the Redis database that the other test process and the real
Celery workers of the crash tests use as their broker."""

import uuid

import redis
from django.conf import settings
from django.core.cache import cache


def test_clearing_the_cache_removes_this_process_keys_and_nothing_else():
    location = settings.CACHES["default"].get("LOCATION")
    if not location:  # No Redis (REDIS_URL unset): a local-memory cache, which nobody else shares.
        assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
        return
    others = redis.Redis.from_url(location)
    broker_key = f"_kombu.binding.test-{uuid.uuid4().hex}"  # as a Celery queue's binding is named
    others.set(broker_key, "kept")
    try:
        cache.set("throttle", 1)
        cache.clear()
        assert cache.get("throttle") is None
        assert others.get(broker_key) == b"kept"
    finally:
        others.delete(broker_key)
