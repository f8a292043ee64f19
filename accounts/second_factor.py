"""The second factor: TOTP devices (an authenticator app) and recovery codes (django-otp).

Staff need one where `STAFF_2FA_REQUIRED` is true; anyone who enrolled one needs it from then on.
Enrolment is two steps: `second_factor_enrol_begin` makes an unconfirmed TOTP device whose secret
the person copies into an app, and `second_factor_enrol_confirm` takes the app's first code,
confirms the device and returns a fresh set of recovery codes (shown once; each works once).
"""

import re
from base64 import b32encode
from typing import Final

from django.conf import settings
from django.db import transaction
from django_otp import devices_for_user
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from config.errors import InvalidState, ValidationFailed

RECOVERY_CODES_COUNT: Final = 10
TOTP_DEVICE_NAME: Final = "authenticator"
RECOVERY_DEVICE_NAME: Final = "recovery codes"
_TOTP_CODE: Final = re.compile(r"\d{6}")
CODE_LENGTH_MAX: Final = 32
_ENROLLED_ATTRIBUTE: Final = "_second_factor_enrolled"


# --- Reads ----------------------------------------------------------------------------------------


def second_factor_enrolled(user: User) -> bool:
    """Whether the user has a confirmed authenticator (then every sign-in needs a code).

    Read once per user object (one request); recovery codes exist only beside an authenticator."""
    if not user.is_authenticated:
        return False
    enrolled = user.__dict__.get(_ENROLLED_ATTRIBUTE)
    if enrolled is None:
        enrolled = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        user.__dict__[_ENROLLED_ATTRIBUTE] = enrolled
    return bool(enrolled)


def second_factor_required(user: User) -> bool:
    """Whether signing in as this user needs a code: enrolled, or staff where staff must have one."""
    return (settings.STAFF_2FA_REQUIRED and user.is_staff_member) or second_factor_enrolled(user)


def totp_secret(device: TOTPDevice) -> str:
    """The device's key as the base32 text authenticator apps take by hand."""
    return b32encode(device.bin_key).decode().rstrip("=")


# --- Writes ---------------------------------------------------------------------------------------


def second_factor_verify(*, user: User, code: str) -> Device | None:
    """The confirmed device that accepts `code` (a 6-digit TOTP code or a recovery code), or None.

    A recovery code is used up. django-otp refuses a TOTP code already used and slows down a device
    after failures; the sign-in lockout counts each failure too."""
    code = "".join((code or "").split()).lower()
    if not code or len(code) > CODE_LENGTH_MAX:
        return None
    device_class: type[Device] = TOTPDevice if _TOTP_CODE.fullmatch(code) else StaticDevice
    with transaction.atomic():
        for device in devices_for_user(user, confirmed=True, for_verify=True):
            if isinstance(device, device_class) and device.verify_token(code):
                return device
    return None


def second_factor_enrol_begin(*, user: User) -> TOTPDevice:
    """The user's unconfirmed TOTP device, made now if there is none, to show its secret."""
    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        raise InvalidState("Two-step sign-in is already set up; ask an administrator to reset it.")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


def second_factor_enrol_confirm(*, user: User, code: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the unconfirmed TOTP device with its first code; return it and new recovery codes."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("pk").first()
        if device is None:
            raise InvalidState("Start setting up two-step sign-in first.")
        code = "".join((code or "").split())
        if not _TOTP_CODE.fullmatch(code) or not device.verify_token(code):
            raise ValidationFailed("The code is wrong or too old; enter the code the app shows now.", field="code")
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        StaticDevice.objects.filter(user=user).delete()
        recovery = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES_COUNT)]
        StaticToken.objects.bulk_create([StaticToken(device=recovery, token=token) for token in codes])
    user.__dict__[_ENROLLED_ATTRIBUTE] = True
    return device, codes


def second_factor_reset(*, user: User) -> int:
    """Remove every second-factor device of the user (an administrator helping a locked-out
    colleague). They sign in with the password next, and staff enrol again. Returns how many."""
    with transaction.atomic():
        removed = 0
        for model in (TOTPDevice, StaticDevice):
            _, per_model = model.objects.filter(user=user).delete()
            removed += per_model.get(model._meta.label, 0)
    user.__dict__.pop(_ENROLLED_ATTRIBUTE, None)
    return removed
