"""The staff second factor (TOTP, with recovery codes): enrolment in the portal, sign-in on the
portal, the admin and POST /api/v1/auth/token/, the lockout it shares, and the reset command.

Codes come from django_otp's own TOTP generator over the device's key and the clock, not a mock.
A TOTP device takes each time step once and a step either side of now, so a test uses at most two
codes per device: `code(device)` for now and `code(device, 1)` for the next step."""

import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import translation
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from accounts.models import AccessToken, Role, User
from accounts.second_factor import (
    RECOVERY_CODES_COUNT,
    second_factor_enrol_begin,
    second_factor_enrol_confirm,
)
from tests.factories import EnterpriseFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's password


@pytest.fixture
def required(settings: Any) -> None:
    settings.STAFF_2FA_REQUIRED = True


def code(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows now (or `steps_ahead` time steps later): from the key and
    the clock alone, as the app knows nothing of the drift the server tracks."""
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, steps_ahead):0{device.digits}d}"


def wrong_code(device: TOTPDevice) -> str:
    """A 6-digit code the device refuses: none of the steps it would take around now."""
    near = {code(device, steps) for steps in range(-2, 3)}
    return next(
        candidate for candidate in ("000000", "111111", "222222", "333333", "444444", "555555") if candidate not in near
    )


def enrolled(user: User) -> tuple[TOTPDevice, list[str]]:
    """The user with a confirmed authenticator (confirmed with the current code) and recovery codes."""
    device = second_factor_enrol_begin(user=user)
    confirmed, recovery = second_factor_enrol_confirm(user=user, code=code(device))
    return confirmed, recovery


def portal_sign_in(username: str, password: str = PASSWORD, otp: str = "", path: str = "/login/") -> Client:
    client = Client()
    client.cookies["django_language"] = "en"
    client.post(path, {"username": username, "password": password, "code": otp})
    return client


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def token_answer(username: str, otp: str | None = None, password: str = PASSWORD) -> Any:
    body = {"username": username, "password": password}
    if otp is not None:
        body["otp"] = otp
    return APIClient().post("/api/v1/auth/token/", body, format="json")


def wrong_words() -> str:
    with translation.override("en"):
        return translation.gettext("The username, password or one-time code is wrong.")


# --- Enrolment ------------------------------------------------------------------------------------


def test_staff_without_a_device_sign_in_with_the_password_and_can_only_enrol(required: None):
    # given
    reviewer = UserFactory(roles=[Role.REVIEWER])

    # when: the password alone
    client = portal_sign_in(reviewer.username)

    # then: signed in, but every page leads to enrolment, and the API refuses the session
    assert signed_in(client) and DEVICE_ID_SESSION_KEY not in client.session
    for path in ("/", "/dashboard/", "/review/", "/admin/", "/password/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"] == "/two-step/", path
    api = client.get("/api/v1/me/")
    assert api.status_code == 403 and api.json()["code"] == "permission_denied"
    assert client.get("/two-step/").status_code == 200


def test_enrolment_shows_the_key_takes_a_first_code_and_gives_recovery_codes_once(required: None):
    # given: a reviewer sent to enrolment
    reviewer = UserFactory(roles=[Role.REVIEWER])
    client = portal_sign_in(reviewer.username)
    page = client.get("/two-step/").content.decode()
    device = TOTPDevice.objects.get(user=reviewer, confirmed=False)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page)
    assert secret is not None
    assert "otpauth://totp/" in page and secret.group(1) in page
    assert f'id="totp-secret">{secret.group(1)}<' in client.get("/two-step/").content.decode()  # the same device

    # when: a wrong code, then the app's code
    wrong = client.post("/two-step/", {"code": wrong_code(device)})
    assert wrong.status_code == 200 and not TOTPDevice.objects.filter(user=reviewer, confirmed=True).exists()
    assert not StaticDevice.objects.filter(user=reviewer).exists()
    device.throttle_reset()  # django-otp slows a device down after a wrong code; the person would wait
    answer = client.post("/two-step/", {"code": code(device)})

    # then: recovery codes shown once; the session is verified and opens the dashboard
    assert answer.status_code == 200
    shown = re.findall(r"<li><code>([a-z2-7]+)</code></li>", answer.content.decode())
    assert len(shown) == RECOVERY_CODES_COUNT
    assert sorted(shown) == sorted(StaticToken.objects.filter(device__user=reviewer).values_list("token", flat=True))
    assert answer["Cache-Control"].startswith("max-age=0") or "no-store" in answer["Cache-Control"]
    assert DEVICE_ID_SESSION_KEY in client.session
    assert client.get("/dashboard/").status_code == 200
    page = client.get("/two-step/").content.decode()
    assert not any(token in page for token in shown) and "otpauth" not in page


def test_without_the_requirement_staff_sign_in_with_the_password(settings: Any):
    settings.STAFF_2FA_REQUIRED = False
    reviewer = UserFactory(roles=[Role.REVIEWER])

    client = portal_sign_in(reviewer.username)

    assert signed_in(client)
    assert client.get("/dashboard/").status_code == 200
    assert token_answer(reviewer.username).status_code == 200


# --- Signing in with the code ---------------------------------------------------------------------


def test_the_portal_asks_an_enrolled_person_for_the_code(required: None):
    reviewer = UserFactory(roles=[Role.REVIEWER])
    device, _ = enrolled(reviewer)

    # A missing or wrong code: refused with the same words as a wrong password.
    for otp in ("", "12345x"):
        client = portal_sign_in(reviewer.username, otp=otp)
        assert not signed_in(client)
    missing = Client()
    missing.cookies["django_language"] = "en"
    body = missing.post("/login/", {"username": reviewer.username, "password": PASSWORD}).content.decode()
    assert wrong_words() in body

    # The app's code: signed in and verified.
    otp = code(device, 1)
    client = portal_sign_in(reviewer.username, otp=otp)
    assert signed_in(client) and DEVICE_ID_SESSION_KEY in client.session
    assert client.get("/dashboard/").status_code == 200
    # The same code a second time is refused.
    assert not signed_in(portal_sign_in(reviewer.username, otp=otp))


def test_a_recovery_code_signs_in_once(required: None):
    auditor = UserFactory(roles=[Role.AUDITOR])
    _, recovery = enrolled(auditor)

    first = portal_sign_in(auditor.username, otp=recovery[0].upper())
    again = portal_sign_in(auditor.username, otp=recovery[0])

    assert signed_in(first) and first.get("/dashboard/").status_code == 200
    assert not signed_in(again)
    assert StaticToken.objects.filter(device__user=auditor).count() == RECOVERY_CODES_COUNT - 1
    StaticDevice.objects.get(user=auditor).throttle_reset()  # django-otp's own slow-down after `again`
    assert token_answer(auditor.username, otp=recovery[1]).status_code == 200


def test_the_token_endpoint_takes_the_code_and_never_says_which_part_was_wrong(required: None):
    # given: a finance user with a device, and one who has none yet
    finance = UserFactory(roles=[Role.FINANCE])
    device, _ = enrolled(finance)
    newcomer = UserFactory(roles=[Role.APPROVER])

    # then
    answers = [
        token_answer(finance.username),
        token_answer(finance.username, otp=""),
        token_answer(finance.username, otp=wrong_code(device)),
        token_answer(finance.username, otp=code(device, 1), password="wrong"),
        token_answer(newcomer.username),
    ]
    for answer in answers:
        assert answer.status_code == 401 and answer.json()["code"] == "authentication_failed", answer.content
        assert answer.json()["detail"] == answers[0].json()["detail"]
    assert not AccessToken.objects.exists()
    device.throttle_reset()  # django-otp's own slow-down after the wrong code above

    answer = token_answer(finance.username, otp=code(device, 1))
    assert answer.status_code == 200, answer.content


def test_an_enterprise_member_may_enrol_and_then_needs_the_code(required: None):
    member = UserFactory(enterprise=EnterpriseFactory())
    assert token_answer(member.username).status_code == 200
    before = portal_sign_in(member.username)  # a session from before enrolment
    assert signed_in(before)

    device, _ = enrolled(member)

    assert token_answer(member.username).status_code == 401
    assert not signed_in(portal_sign_in(member.username))
    # The session from before has shown no code: it ends.
    response = before.get("/enterprise/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not signed_in(before)
    assert token_answer(member.username, otp=code(device, 1)).status_code == 200


def test_the_admin_needs_the_code_and_a_verified_session(required: None):
    admin = UserFactory(is_staff=True, is_superuser=True)
    device, _ = enrolled(admin)

    # Without the code: no sign-in, with Django's admin page and our words.
    client = Client()
    client.cookies["django_language"] = "en"
    body = client.post("/admin/login/", {"username": admin.username, "password": PASSWORD}).content.decode()
    assert not signed_in(client) and wrong_words() in body and 'name="code"' in body

    # A session that skipped the code (force_login) does not open the admin.
    skipped = Client()
    skipped.force_login(admin)
    assert skipped.get("/admin/").status_code == 302

    # With the code: the admin opens.
    response = client.post("/admin/login/", {"username": admin.username, "password": PASSWORD, "code": code(device, 1)})
    assert response.status_code == 302 and signed_in(client)
    assert client.get("/admin/").status_code == 200


def test_failed_codes_count_towards_the_lockout(required: None, settings: Any):
    settings.THROTTLE_LOGIN = "3/minute"
    approver = UserFactory(roles=[Role.APPROVER])
    device, _ = enrolled(approver)
    wrong = wrong_code(device)

    # The right password with a wrong code, three times ...
    assert [token_answer(approver.username, otp=wrong).status_code for _ in range(3)] == [401] * 3

    # ... locks the username out, even with the right code.
    device.throttle_reset()
    locked = token_answer(approver.username, otp=code(device, 1))
    assert locked.status_code == 429 and locked.json()["code"] == "throttled" and locked["Retry-After"]
    assert not signed_in(portal_sign_in(approver.username, otp=code(device, 1)))
    assert not AccessToken.objects.exists()


# --- Reset ----------------------------------------------------------------------------------------


def test_an_administrator_resets_a_colleagues_second_factor(required: None):
    # given: a reviewer who lost the app and the codes
    reviewer = UserFactory(roles=[Role.REVIEWER])
    enrolled(reviewer)
    other = UserFactory(roles=[Role.REVIEWER])
    enrolled(other)

    # when
    out = StringIO()
    call_command("reset_second_factor", reviewer.username, stdout=out)

    # then: the password signs in again and leads to enrolment; nobody else's device moved
    assert "Removed 2" in out.getvalue()
    assert not TOTPDevice.objects.filter(user=reviewer).exists()
    assert not StaticDevice.objects.filter(user=reviewer).exists()
    assert TOTPDevice.objects.filter(user=other).count() == 1 and StaticDevice.objects.filter(user=other).count() == 1
    client = portal_sign_in(reviewer.username)
    assert signed_in(client) and client.get("/")["Location"] == "/two-step/"


def test_resetting_an_unknown_user_fails_and_changes_nothing():
    reviewer = UserFactory(roles=[Role.REVIEWER])
    enrolled(reviewer)

    with pytest.raises(CommandError):
        call_command("reset_second_factor", "nobody-by-this-name", stdout=StringIO())

    assert TOTPDevice.objects.count() == 1 and StaticDevice.objects.count() == 1
