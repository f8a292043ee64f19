"""Request throttles, with rates from the environment (DESIGN.md §6):
THROTTLE_ANON per address, THROTTLE_USER per user or API key, THROTTLE_LOGIN for failed logins
per username and address. Counters live in Django's cache (Redis when REDIS_URL is set), so they
hold across processes."""

import hashlib
import time
from typing import cast

from django.conf import settings
from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from config.errors import ApplicationError


class RatesFromSettings(SimpleRateThrottle):
    """Reads its rate from the settings when a request comes, not when this module is imported.

    DRF binds `THROTTLE_RATES` to the settings' dict at import, so a changed REST_FRAMEWORK (a
    test's override) would be ignored, or, if the override was live at that first import, kept
    for the rest of the process."""

    def get_rate(self) -> str | None:
        assert self.scope is not None, "every throttle here names its scope"
        # The stubs type these rates as numbers; DRF's own are strings like "60/minute".
        return cast("str | None", api_settings.DEFAULT_THROTTLE_RATES[self.scope])


class AnonThrottle(RatesFromSettings, AnonRateThrottle):
    scope = "anon"


class UserThrottle(RatesFromSettings, UserRateThrottle):
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
        # Hashed: a username is the client's text, and not every cache takes any text as a key.
        self.key = "login-failures:" + hashlib.sha256(f"{username.lower()}\n{address}".encode()).hexdigest()

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
