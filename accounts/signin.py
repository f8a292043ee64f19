"""Signing in: the one check behind the portal's /login/, the admin's /admin/login/ and
POST /api/v1/auth/token/.

Failed sign-ins (a wrong password, or a missing or wrong second-factor code) are counted by
django-axes in the database per username and client address. `THROTTLE_LOGIN` ("N/period")
drives it: after N failures that username is refused at that address for one period from the
last failure, even with the right password. A sign-in refused during a lockout neither counts nor
extends it.

The count must hold across workers and concurrent requests: a request checks the lock, checks the
password and records a failure while holding a PostgreSQL advisory lock on its username and
address, so attempts for one username and address run one at a time (others are not held up),
and 30 concurrent wrong passwords get at most N answers of "wrong" before "locked".
"""

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_login_failed
from django.db import connection, transaction
from django.db.models import Max
from django.http import HttpRequest
from django.utils import timezone
from django_otp.models import Device
from rest_framework.throttling import SimpleRateThrottle

from accounts.errors import SignInFailed, SignInThrottled
from accounts.models import User, username_key
from accounts.second_factor import second_factor_enrolled, second_factor_required, second_factor_verify
from config.addresses import client_address

security_log = logging.getLogger("coupons.security")

# The first key of PostgreSQL's two-key advisory locks that serialise sign-ins (an arbitrary,
# project-wide constant so no other advisory lock collides with it).
SIGN_IN_LOCK_CLASS = 0x5157


@dataclass(frozen=True)
class SignedIn:
    user: User
    # The second-factor device that accepted the code; None when no code was needed.
    device: Device | None


# --- What django-axes reads (named in the AXES_* settings) -----------------------------------------


def _login_rate() -> tuple[int, int]:
    limit, window_s = SimpleRateThrottle.parse_rate(None, settings.THROTTLE_LOGIN)  # type: ignore[arg-type]
    assert limit is not None and window_s is not None, "THROTTLE_LOGIN is N/second|minute|hour|day"
    return limit, window_s


def lockout_failure_limit(request: HttpRequest | None, credentials: dict[str, object] | None) -> int:
    return _login_rate()[0]


def lockout_window(request: HttpRequest | None = None) -> timedelta:
    return timedelta(seconds=_login_rate()[1])


def lockout_username(request: HttpRequest | None, credentials: dict[str, object] | None) -> str | None:
    """The username as counted: however it is written (`Admin` and `ａｄｍｉｎ` count with `admin`),
    as it signs in (usernames are unique whatever their case: `accounts.models.UserManager`)."""
    username = (credentials or {}).get("username")
    return username_key(username) if isinstance(username, str) else None


def lockout_address(request: HttpRequest) -> str | None:
    """The client's address, behind the trusted proxies too (config/addresses.py)."""
    return client_address(request)


# --- The check -------------------------------------------------------------------------------------


def _hold_sign_in_lock(username: str, address: str | None) -> None:
    """Serialise sign-ins for this username and address until the transaction ends."""
    digest = hashlib.sha256(f"{username_key(username)}\n{address}".encode()).digest()
    key = int.from_bytes(digest[:4], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SIGN_IN_LOCK_CLASS, key])


def _lockout_wait_s(request: HttpRequest, credentials: dict[str, object]) -> int:
    """Seconds until the lockout ends: one window after the last counted failure."""
    handler = AxesProxyHandler.get_implementation()
    window = lockout_window(request)
    last = None
    for attempts in handler.get_user_attempts(request, credentials):
        latest = attempts.aggregate(latest=Max("attempt_time"))["latest"]
        if latest is not None and (last is None or latest > last):
            last = latest
    if last is None:
        return int(window.total_seconds())
    return max(1, int((last + window - timezone.now()).total_seconds()) + 1)


def sign_in_check(
    *, request: HttpRequest, username: str, password: str, code: str = "", may_enrol: bool = False
) -> SignedIn:
    """The user these credentials sign in, or SignInFailed (any part wrong) or SignInThrottled.

    `code` is a TOTP or recovery code, needed when `second_factor_required(user)`. With `may_enrol`
    (the portal and the admin), a staff user who must have a second factor and has none yet signs
    in with the password alone, and the portal lets them do nothing but enrol until they have one;
    the API has no such step, so there a missing code is a failure."""
    credentials: dict[str, object] = {"username": username}
    address = lockout_address(request)
    throttled_wait_s = None
    signed_in = None
    with transaction.atomic():
        _hold_sign_in_lock(username, address)
        if not AxesProxyHandler.is_allowed(request, credentials):
            throttled_wait_s = _lockout_wait_s(request, credentials)
        else:
            user = authenticate(request, username=username, password=password)
            device = None
            if isinstance(user, User) and second_factor_required(user):
                device = second_factor_verify(user=user, code=code)
                if device is None and not (may_enrol and not second_factor_enrolled(user)):
                    # The password was right and the code was not: a failure like any other.
                    user_login_failed.send(sender=__name__, credentials=credentials, request=request)
                    user = None
            if isinstance(user, User):
                signed_in = SignedIn(user=user, device=device)
    # Raised after the transaction, so the recorded failure is kept.
    if throttled_wait_s is not None:
        security_log.warning("sign-in throttled: username=%r address=%s path=%s", username, address, request.path)
        raise SignInThrottled(throttled_wait_s)
    if signed_in is None:
        security_log.warning("sign-in failed: username=%r address=%s path=%s", username, address, request.path)
        raise SignInFailed()
    return signed_in
