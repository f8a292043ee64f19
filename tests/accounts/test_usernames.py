"""Usernames that pass for someone else. Found from outside: `ADMIN`, `Admin`, `ａｄｍｉｎ` (fullwidth)
and `аdmin` (Cyrillic a) were each a separate account beside `admin`, and histories, approval
requests and the portal show usernames. A username is NFKC-normalised, holds only ASCII letters,
digits and @ . + - _, and is unique whatever its case, in the database too; signing in ignores case."""

import importlib
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Role, User
from accounts.services import staff_user_create_bootstrap, user_create
from accounts.signin import lockout_username
from config.errors import AlreadyExists, ValidationFailed
from tests.api.conftest import PASSWORD, assert_problem, signed_in
from tests.factories import UserFactory, valid_uscc

pytestmark = pytest.mark.django_db

CYRILLIC_A = "\u0430"  # а, which looks like a
FULLWIDTH_ADMIN = "ａｄｍｉｎ"
LOOK_ALIKES = ["ADMIN", "Admin", FULLWIDTH_ADMIN, "ＡＤＭＩＮ", "\u212a" + "elvin"]  # K is the Kelvin sign K
NON_ASCII = [f"{CYRILLIC_A}dmin", "émile", "张三", "adm\u0131n", "ad\u200bmin", "admin\u0301"]


def register(username: str):
    body = {
        "username": username,
        "password": PASSWORD,
        "enterprise": {"name": "Look-alike Ltd.", "uscc": valid_uscc()},
    }
    return APIClient().post("/api/v1/enterprises/register/", body, format="json")


@pytest.fixture
def admin() -> User:
    UserFactory(username="kelvin")
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


# --- Registering and creating ----------------------------------------------------------------------


@pytest.mark.parametrize("username", ["ADMIN", "Admin", FULLWIDTH_ADMIN, "ＡＤＭＩＮ", "\u212aelvin"])
def test_registering_a_username_taken_up_to_case_or_nfkc_is_409_and_writes_nothing(username, admin, db_snapshot):
    before = db_snapshot()

    problem = assert_problem(register(username), 409, "already_exists")

    assert list(problem["errors"]) == ["username"], problem
    assert db_snapshot() == before


@pytest.mark.parametrize("username", NON_ASCII)
def test_registering_a_username_with_other_than_ascii_letters_is_400_and_writes_nothing(username, admin, db_snapshot):
    before = db_snapshot()

    problem = assert_problem(register(username), 400, "validation_error")

    assert "ASCII" in " ".join(problem["errors"]["username"]), problem  # said in Chinese and in English
    assert db_snapshot() == before


def test_a_fullwidth_username_that_clashes_with_nobody_is_kept_as_its_ascii_form(db):
    response = register("ｆｏｕｎｄｅｒ")

    assert response.status_code == 201, response.content
    assert response.json()["user"]["username"] == "founder"
    assert User.objects.filter(username="founder").exists()


@pytest.mark.parametrize("username", ["ADMIN", FULLWIDTH_ADMIN])
def test_a_superuser_creating_a_username_taken_up_to_case_is_409_and_writes_nothing(username, admin, db_snapshot):
    before = db_snapshot()

    problem = assert_problem(
        signed_in(admin).post("/api/v1/users/", {"username": username, "password": PASSWORD}, format="json"),
        409,
        "already_exists",
    )

    assert list(problem["errors"]) == ["username"], problem
    assert db_snapshot() == before


@pytest.mark.parametrize("username", NON_ASCII)
def test_a_superuser_creating_a_non_ascii_username_is_400_and_writes_nothing(username, admin, db_snapshot):
    before = db_snapshot()
    body = {"username": username, "password": PASSWORD}

    problem = assert_problem(signed_in(admin).post("/api/v1/users/", body, format="json"), 400, "validation_error")

    assert list(problem["errors"]) == ["username"], problem
    assert db_snapshot() == before


def test_the_services_refuse_look_alikes_and_other_letters(admin):
    for username in LOOK_ALIKES:
        with pytest.raises(AlreadyExists):
            user_create(username=username, password=PASSWORD, actor=admin)
        with pytest.raises(AlreadyExists):
            staff_user_create_bootstrap(username=username, password=PASSWORD, email="", roles=[Role.APPROVER])
    for username in NON_ASCII:
        with pytest.raises(ValidationFailed):
            user_create(username=username, password=PASSWORD, actor=admin)
        with pytest.raises(ValidationFailed):
            staff_user_create_bootstrap(username=username, password=PASSWORD, email="", roles=[Role.APPROVER])
    assert sorted(User.objects.values_list("username", flat=True)) == ["admin", "kelvin"]
    assert not Group.objects.filter(user__isnull=False).exists()


def test_the_database_refuses_a_username_taken_up_to_case(admin):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="ADMIN")


@pytest.mark.parametrize("username", [f"{CYRILLIC_A}dmin", "张三", "two words", ""])
def test_the_database_refuses_other_characters(username, admin):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username=username)


def test_createsuperuser_refuses_look_alikes_and_other_letters(admin):
    for username in ["ADMIN", FULLWIDTH_ADMIN, f"{CYRILLIC_A}dmin"]:
        with pytest.raises(CommandError):
            call_command(
                "createsuperuser", username=username, email="", interactive=False, stdout=StringIO(), stderr=StringIO()
            )
    assert User.objects.count() == 2


# --- The admin's forms -----------------------------------------------------------------------------


def _admin_client(admin: User) -> Client:
    client = Client()
    client.force_login(admin)
    return client


def test_the_admin_may_not_rename_a_user_to_a_look_alike(admin):
    other = UserFactory(username="someone")
    client = _admin_client(admin)
    page = client.get(f"/admin/accounts/user/{other.pk}/change/")
    assert page.status_code == 200
    form = {"username": "ADMIN", "email": other.email, "is_active": "on", "date_joined_0": "2026-01-01"}
    form |= {"date_joined_1": "00:00:00", "last_login_0": "", "last_login_1": ""}
    for username in ["ADMIN", f"{CYRILLIC_A}dmin"]:
        response = client.post(f"/admin/accounts/user/{other.pk}/change/", {**form, "username": username})
        assert response.status_code == 200, response.status_code  # the form again, with its error
        other.refresh_from_db()
        assert other.username == "someone"


def test_the_admin_may_not_add_a_look_alike(admin):
    client = _admin_client(admin)
    for username in ["ADMIN", FULLWIDTH_ADMIN, f"{CYRILLIC_A}dmin"]:
        response = client.post(
            "/admin/accounts/user/add/",
            {"username": username, "password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"},
        )
        assert response.status_code in (200, 403), response.status_code
    assert User.objects.count() == 2


# --- Signing in ------------------------------------------------------------------------------------


def _token(username: str, password: str = PASSWORD) -> int:
    return APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def test_signing_in_ignores_case_and_width(admin):
    for username in ["admin", "ADMIN", "Admin", FULLWIDTH_ADMIN]:
        response = _token(username)
        assert response.status_code == 200, (username, response.content)
    client = Client()
    assert client.post("/login/", {"username": "ADMIN", "password": PASSWORD}).status_code == 302
    assert client.session["_auth_user_id"] == str(admin.pk)


@pytest.mark.parametrize("username", [f"{CYRILLIC_A}dmin", "adm\u0131n", "ADM\u0130N"])
def test_a_look_alike_with_the_right_password_does_not_sign_in(username, admin):
    # PostgreSQL's UPPER may map dotless ı to I: a lookup by case alone would find `admin`, under
    # a lockout key of its own.
    assert _token(username).status_code == 401


def test_the_lockout_counts_every_way_of_writing_one_username():
    keys = {lockout_username(None, {"username": name}) for name in ["admin", "ADMIN", "Admin", FULLWIDTH_ADMIN]}
    assert keys == {"admin"}


def test_failures_under_other_spellings_count_toward_one_lockout(admin, settings):
    settings.THROTTLE_LOGIN = "3/minute"
    for username in ["ADMIN", FULLWIDTH_ADMIN, "Admin"]:
        assert _token(username, "wrong password").status_code == 401
    assert _token("admin").status_code == 429


# --- The migration ---------------------------------------------------------------------------------


def test_the_migration_stops_naming_usernames_that_clash_rather_than_renaming_them(admin):
    migration = importlib.import_module("accounts.migrations.0012_usernames_ascii_and_unique_whatever_the_case")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE waits for no deferred check.
            cursor.execute("DROP INDEX accounts_user_username_upper_unique")
            cursor.execute("ALTER TABLE accounts_user DROP CONSTRAINT accounts_user_username_ascii")
        User.objects.bulk_create([User(username="ADMIN"), User(username=FULLWIDTH_ADMIN), User(username="émile")])
        from django.apps import apps

        with pytest.raises(RuntimeError) as raised:
            migration.usernames_check(apps, None)
        message = str(raised.value)
        for username in ["admin", "ADMIN", FULLWIDTH_ADMIN, "émile"]:
            assert repr(username) in message, message
        assert "kelvin" not in message
        transaction.set_rollback(True)
    assert sorted(User.objects.values_list("username", flat=True)) == ["admin", "kelvin"]


def test_the_migration_passes_usernames_that_clash_with_nobody(admin):
    from django.apps import apps

    migration = importlib.import_module("accounts.migrations.0012_usernames_ascii_and_unique_whatever_the_case")
    migration.usernames_check(apps, None)
