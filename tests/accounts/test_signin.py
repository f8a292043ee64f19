"""The sign-in lockout, the same on the portal's /login/, the admin's /admin/login/ and
POST /api/v1/auth/token/: counted in the database per username and address (django-axes), raced
on real connections, and lifted only when the window has passed."""

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.test import Client
from django.utils import translation
from rest_framework.test import APIClient

from accounts.models import AccessToken, User
from tests.concurrency import race
from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's password
LIMIT = 10
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ten_failures_a_minute(settings: Any) -> None:
    settings.THROTTLE_LOGIN = f"{LIMIT}/minute"


@pytest.fixture
def three_failures_a_minute(settings: Any) -> None:
    settings.THROTTLE_LOGIN = "3/minute"


# --- The three doors, each answering "signed in", "wrong" or "locked" ------------------------------


def _throttled_words() -> str:
    with translation.override("en"):
        return translation.gettext("Too many failed sign-ins. Try again in %(seconds)s seconds.").split("%")[0]


def _wrong_words() -> str:
    with translation.override("en"):
        return translation.gettext("The username, password or one-time code is wrong.")


def token_door(username: str, password: str) -> str:
    response = APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")
    if response.status_code == 200:
        return "signed in"
    if response.status_code == 401:
        assert response.json()["code"] == "authentication_failed"
        return "wrong"
    assert response.status_code == 429, response.content
    assert response.json()["code"] == "throttled" and int(response["Retry-After"]) >= 1
    return "locked"


def _form_door(path: str) -> Callable[[str, str], str]:
    def door(username: str, password: str) -> str:
        client = Client()
        client.cookies["django_language"] = "en"
        response = client.post(path, {"username": username, "password": password})
        if response.status_code == 302:
            assert "_auth_user_id" in client.session
            return "signed in"
        assert "_auth_user_id" not in client.session
        body = response.content.decode()
        if _throttled_words() in body:
            return "locked"
        assert _wrong_words() in body, body[:3000]
        return "wrong"

    return door


DOORS = {"token": token_door, "portal": _form_door("/login/"), "admin": _form_door("/admin/login/")}


def an_admin() -> User:
    return UserFactory(is_staff=True, is_superuser=True)


def counted_failures(username: str) -> int:
    return sum(AccessAttempt.objects.filter(username=username.lower()).values_list("failures_since_start", flat=True))


# --- The limit holds, and waits for the window --------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("door", DOORS, ids=str)
def test_after_the_limit_even_the_right_password_waits_for_the_window(door: str, three_failures_a_minute: None):
    # given: three wrong passwords
    sign_in = DOORS[door]
    user = an_admin()
    assert [sign_in(user.username, "wrong") for _ in range(3)] == ["wrong"] * 3

    # when / then: locked, the right password too, and a refused attempt does not count
    assert sign_in(user.username, PASSWORD) == "locked"
    assert sign_in(user.username, "wrong") == "locked"
    assert counted_failures(user.username) == 3
    assert AccessToken.objects.count() == 0

    # when: the window has passed since the last failure
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(seconds=61))

    # then
    assert sign_in(user.username, PASSWORD) == "signed in"


@pytest.mark.django_db
def test_the_doors_share_one_count(three_failures_a_minute: None):
    user = an_admin()
    assert DOORS["admin"](user.username, "wrong") == "wrong"
    assert DOORS["portal"](user.username.upper(), "wrong") == "wrong"
    assert DOORS["token"](user.username, "wrong") == "wrong"

    for door in DOORS.values():
        assert door(user.username, PASSWORD) == "locked"
    assert AccessFailureLog.objects.filter(username=user.username).count() == 3


@pytest.mark.django_db
def test_the_admin_is_locked_where_it_was_not_before(ten_failures_a_minute: None):
    """The reproduced bypass: 30 wrong passwords for the admin in a row, then the right one."""
    user = an_admin()
    answers = [DOORS["admin"](user.username, "wrong") for _ in range(30)]

    assert answers == ["wrong"] * LIMIT + ["locked"] * (30 - LIMIT)
    assert DOORS["admin"](user.username, PASSWORD) == "locked"


@pytest.mark.django_db
def test_the_limit_is_per_username_and_address(three_failures_a_minute: None):
    user, other = an_admin(), an_admin()
    for _ in range(3):
        token_door(user.username, "wrong")
    assert token_door(user.username, PASSWORD) == "locked"

    assert token_door(other.username, PASSWORD) == "signed in"
    elsewhere = APIClient(REMOTE_ADDR="10.1.2.3").post(
        "/api/v1/auth/token/", {"username": user.username, "password": PASSWORD}, format="json"
    )
    assert elsewhere.status_code == 200


# --- Raced: every worker shares the count ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("door", ["token", "admin"])
def test_thirty_concurrent_wrong_passwords_get_at_most_the_limit_of_wrong_answers(
    door: str, ten_failures_a_minute: None
):
    # given
    user = an_admin()
    sign_in = DOORS[door]

    # when: 30 wrong passwords at once, each on its own database connection
    answers = race([lambda: sign_in(user.username, "wrong") for _ in range(30)])

    # then: exactly the limit were checked and counted; every other one was refused unchecked
    assert not [answer for answer in answers if isinstance(answer, Exception)], answers
    assert answers.count("wrong") == LIMIT, answers
    assert answers.count("locked") == 30 - LIMIT, answers
    assert counted_failures(user.username) == LIMIT
    assert sign_in(user.username, PASSWORD) == "locked"
    assert not AccessToken.objects.exists()


# --- Settings -------------------------------------------------------------------------------------


def _production_setting(name: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "STAFF_2FA"))}
    production = {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DATABASE_URL": "postgres://nobody@127.0.0.1:5432/coupons",
        "DJANGO_SECRET_KEY": "test-only-" + "k" * 60,
        "DJANGO_ALLOWED_HOSTS": "coupons.example.org",
    }
    code = f"import django; django.setup(); from django.conf import settings; print(settings.{name})"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, **production, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def test_production_requires_the_staff_second_factor_unless_told_not_to():
    assert _production_setting("STAFF_2FA_REQUIRED") == "True"
    assert _production_setting("STAFF_2FA_REQUIRED", STAFF_2FA_REQUIRED="false") == "False"


def test_the_test_and_demo_settings_leave_it_optional(settings: Any):
    assert settings.STAFF_2FA_REQUIRED is False
