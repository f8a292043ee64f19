"""The test processes' cache: Django's Redis cache, except that `clear()` removes only this process's
keys.

Django's `RedisCache.clear()` is FLUSHDB: it would empty the whole Redis database, which the other
xdist process's throttle counters share and which is also Celery's broker in the tests that run a
real worker (tests/coupons/test_worker.py, tests/coupons/test_reset_crash.py). A test resetting its
throttles in one process then deleted the queue bindings and messages of a crash test running in
the other, whose reset task was never delivered ("the reset did not finish").
"""

from django.core.cache.backends.redis import RedisCache


class ProcessRedisCache(RedisCache):
    def clear(self) -> bool:
        client = self._cache.get_client(None, write=True)
        keys = list(client.scan_iter(match=f"{self.key_prefix}:*", count=1000))
        return bool(client.delete(*keys)) if keys else True
