"""Request throttles, with rates from the environment (DESIGN.md §6):
THROTTLE_ANON per address, THROTTLE_USER per user or API key, THROTTLE_LOGIN for failed logins
per username and address. Counters live in Django's cache (Redis when REDIS_URL is set), so they
hold across processes."""

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from config.errors import ApplicationError


class AnonThrottle(AnonRateThrottle):
    scope = "anon"


class UserThrottle(UserRateThrottle):
    scope = "user"


class LoginThrottled(ApplicationError):
    code = "throttled"
    http_status = 429
    title = "Too many failed sign-ins."

    def __init__(self, wait_s: int) -> None:
        super().__init__(f"Too many failed sign-ins; try again in {wait_s} seconds.", retry_after_s=wait_s)
        self.wait_s = wait_s


class LoginFailures:
    """Counts failed sign-ins per username and address in a fixed window; successes are free."""

    def __init__(self, username: str, address: str) -> None:
        limit, window_s = SimpleRateThrottle.parse_rate(None, settings.THROTTLE_LOGIN)  # type: ignore[arg-type]
        assert limit is not None and window_s is not None, "THROTTLE_LOGIN is set"
        self.limit, self.window_s = limit, window_s
        self.key = f"login-failures:{username.lower()}:{address}"

    def check(self) -> None:
        """Raise LoginThrottled while this username and address are over the limit."""
        entry = cache.get(self.key)
        if entry and entry["count"] >= self.limit:
            wait_s = max(1, int(entry["until"] - time.time()))
            raise LoginThrottled(wait_s)

    def record(self) -> None:
        entry = cache.get(self.key)
        now = time.time()
        if not entry or entry["until"] <= now:
            entry = {"count": 0, "until": now + self.window_s}
        entry["count"] += 1
        cache.set(self.key, entry, timeout=int(entry["until"] - now) + 1)
