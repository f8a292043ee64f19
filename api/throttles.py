"""Request throttles, with rates from the environment: THROTTLE_ANON per address, THROTTLE_USER
per user or API key. Counters live in Django's cache (Redis when REDIS_URL is set). Failed sign-ins
(THROTTLE_LOGIN) are counted apart, in the database: see accounts.signin."""

from typing import cast

from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle


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
