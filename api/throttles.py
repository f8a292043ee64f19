"""Request throttles, with rates from the environment: THROTTLE_ANON per address, THROTTLE_USER
per user or API key. Counters live in Django's cache (Redis when REDIS_URL is set). Failed sign-ins
(THROTTLE_LOGIN) are counted apart, in the database: see accounts.signin.

When the cache does not answer (Redis down or unreachable), the throttles fail OPEN: the request is
let through and a warning logged. They protect capacity, not money: every money rule (grants, caps,
the pool, Idempotency-Key) lives in PostgreSQL, and so does the sign-in lockout, so letting a request
through costs at most some load for the minutes Redis is away, while refusing it would turn a cache
outage into an outage of redemptions. docs/faults.md; tests/faults/test_redis_outage.py.
"""

import logging
from typing import Any, cast

from redis.exceptions import RedisError
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

throttle_log = logging.getLogger("api.throttles")


class RatesFromSettings(SimpleRateThrottle):
    """Reads its rate from the settings when a request comes, not when this module is imported.

    DRF binds `THROTTLE_RATES` to the settings' dict at import, so a changed REST_FRAMEWORK (a
    test's override) would be ignored, or, if the override was live at that first import, kept
    for the rest of the process."""

    def get_rate(self) -> str | None:
        assert self.scope is not None, "every throttle here names its scope"
        # The stubs type these rates as numbers; DRF's own are strings like "60/minute".
        return cast("str | None", api_settings.DEFAULT_THROTTLE_RATES[self.scope])

    def allow_request(self, request: Any, view: Any) -> bool:
        """The rate's verdict, or True when the counters cannot be read or written (fail open)."""
        try:
            return super().allow_request(request, view)
        except RedisError as error:
            throttle_log.warning("throttle %s let a request through: its cache did not answer (%s)", self.scope, error)
            return True


class AnonThrottle(RatesFromSettings, AnonRateThrottle):
    scope = "anon"


class UserThrottle(RatesFromSettings, UserRateThrottle):
    scope = "user"
