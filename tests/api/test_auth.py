"""/api/v1/auth/, /me/ and API keys: bearer tokens and machine keys, their failures, throttles and logs."""

import logging
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

import api.throttles  # noqa: F401 - bound before any override, as in a running server
from accounts.models import AccessToken, ApiKey
from coupons.models import Application
from tests.api.conftest import PASSWORD, assert_problem, signed_in
from tests.coupons.conftest import submit
from tests.factories import ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

SECURITY_LOGGER = "coupons.security"


@pytest.fixture(autouse=True)
def fresh_throttle_counters():
    """Throttle counters live in the cache, which outlives a test: start and end each test clean."""
    cache.clear()
    yield
    cache.clear()


def sign_in(username: str, password: str = PASSWORD, client: APIClient | None = None):
    return (client or APIClient()).post(
        "/api/v1/auth/token/", {"username": username, "password": password}, format="json"
    )


def with_header(value: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=value)
    return client


def token_for(user) -> str:
    response = sign_in(user.username)
    assert response.status_code == 200, response.content
    return response.json()["token"]


# --- Tokens ---------------------------------------------------------------------------------------


def test_a_token_is_issued_and_names_its_expiry():
    user = UserFactory()

    response = sign_in(user.username)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    token = AccessToken.objects.get(user=user)
    assert token.expires_at > timezone.now() + timedelta(hours=1)
    assert body["expires_at"] == token.expires_at.astimezone(timezone.get_current_timezone()).isoformat()
    assert "+08:00" in body["expires_at"]
    # Only the hash is stored, never the secret.
    assert body["token"] not in {token.key_hash, token.prefix} and body["token"].startswith(token.prefix)


def test_a_wrong_password_is_401_authentication_failed():
    user = UserFactory()
    body = assert_problem(sign_in(user.username, "not the password"), 401, "authentication_failed")
    assert "password" in body["detail"]
    assert_problem(sign_in("nobody-by-this-name"), 401, "authentication_failed")
    assert AccessToken.objects.count() == 0


def test_an_inactive_user_cannot_sign_in():
    user = UserFactory(is_active=False)
    assert_problem(sign_in(user.username), 401, "authentication_failed")
    assert AccessToken.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"username", "password"}),
        ({"username": "someone"}, {"password"}),
        ({"password": PASSWORD}, {"username"}),
        ({"username": 12, "password": PASSWORD}, {"username"}),
        ({"username": "someone", "password": ["a"]}, {"password"}),
        ({"username": None, "password": None}, {"username", "password"}),
        ({"username": "someone", "password": PASSWORD, "remember": True}, {"remember"}),
    ],
)
def test_missing_or_non_string_credentials_are_400(body, fields):
    response = APIClient().post("/api/v1/auth/token/", body, format="json")
    problem = assert_problem(response, 400, "validation_error")
    assert set(problem["errors"]) == fields, problem
    assert AccessToken.objects.count() == 0


def test_a_body_that_is_not_an_object_is_400():
    assert_problem(APIClient().post("/api/v1/auth/token/", ["a", "b"], format="json"), 400, "validation_error")
    response = APIClient().post("/api/v1/auth/token/", "{not json", content_type="application/json")
    assert_problem(response, 400, "validation_error")


def test_me_shows_who_the_bearer_is(cast):
    reviewer = cast.reviewer
    reviewer.email = "reviewer@example.com"
    reviewer.save()

    me = with_header(f"Bearer {token_for(reviewer)}").get("/api/v1/me/")

    assert me.status_code == 200, me.content
    body = me.json()
    assert {"id", "username", "email", "roles", "enterprise", "provider"} <= set(body)
    assert (body["id"], body["username"], body["email"]) == (reviewer.pk, reviewer.username, "reviewer@example.com")
    assert (body["roles"], body["enterprise"], body["provider"]) == (["reviewer"], None, None)
    member = signed_in(cast.member).get("/api/v1/me/").json()
    assert (member["roles"], member["enterprise"], member["provider"]) == ([], cast.enterprise.pk, None)
    clerk = signed_in(cast.clerk).get("/api/v1/me/").json()
    assert (clerk["roles"], clerk["enterprise"], clerk["provider"]) == ([], None, cast.provider.pk)
    admin = signed_in(cast.admin).get("/api/v1/me/").json()
    assert admin["roles"] == ["reviewer", "approver", "finance", "auditor"]


def test_me_needs_credentials():
    assert_problem(APIClient().get("/api/v1/me/"), 401, "not_authenticated")


def test_logout_revokes_the_token_at_once():
    user = UserFactory()
    token = token_for(user)
    client = with_header(f"Bearer {token}")
    assert client.get("/api/v1/me/").status_code == 200

    response = client.post("/api/v1/auth/logout/")

    assert (response.status_code, response.json()) == (200, {"status": "signed_out"})
    assert AccessToken.objects.get(user=user).revoked_at is not None
    assert_problem(client.get("/api/v1/me/"), 401, "authentication_failed")
    assert_problem(client.post("/api/v1/auth/logout/"), 401, "authentication_failed")


def test_logout_revokes_only_the_token_sent():
    user = UserFactory()
    kept, dropped = with_header(f"Bearer {token_for(user)}"), with_header(f"Bearer {token_for(user)}")
    dropped.post("/api/v1/auth/logout/")
    assert kept.get("/api/v1/me/").status_code == 200
    assert_problem(dropped.get("/api/v1/me/"), 401, "authentication_failed")


def test_logout_needs_credentials():
    assert_problem(APIClient().post("/api/v1/auth/logout/"), 401, "not_authenticated")


def test_an_expired_token_is_401():
    user = UserFactory()
    client = with_header(f"Bearer {token_for(user)}")
    AccessToken.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_problem(client.get("/api/v1/me/"), 401, "authentication_failed")


def test_an_inactive_users_token_is_401():
    user = UserFactory()
    client = with_header(f"Bearer {token_for(user)}")
    user.is_active = False
    user.save()
    assert_problem(client.get("/api/v1/me/"), 401, "authentication_failed")


def test_a_token_fails_even_on_open_endpoints():
    """Credentials that are sent are checked everywhere, so a client learns its token is dead."""
    client = with_header("Bearer hzt_not-a-real-token")
    assert_problem(client.post("/api/v1/enterprises/register/", {}, format="json"), 401, "authentication_failed")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token abc", "garbage", "Bearerabc"])
def test_an_unknown_scheme_is_not_credentials(header):
    response = with_header(header).get("/api/v1/me/")
    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"]


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer ", "Bearer    ", "Bearer a b", "bearer nope", "Api-Key", "Api-Key  ", "api-key x"]
)
def test_a_known_scheme_with_an_empty_or_wrong_secret_is_authentication_failed(header):
    response = with_header(header).get("/api/v1/me/")
    assert_problem(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"]


def test_a_token_is_not_an_api_key_nor_the_other_way_round(cast):
    token = token_for(cast.clerk)
    _, secret = _create_key(signed_in(cast.clerk), cast.provider.pk)
    assert_problem(with_header(f"Api-Key {token}").get("/api/v1/me/"), 401, "authentication_failed")
    assert_problem(with_header(f"Bearer {secret}").get("/api/v1/me/"), 401, "authentication_failed")


# --- Sign-in throttle -------------------------------------------------------------------------


@pytest.fixture
def three_failures_a_minute(settings):
    settings.THROTTLE_LOGIN = "3/minute"


def test_the_fourth_failed_sign_in_is_throttled(three_failures_a_minute):
    user = UserFactory()
    for _ in range(3):
        assert_problem(sign_in(user.username, "wrong"), 401, "authentication_failed")

    refused = sign_in(user.username, "wrong")

    body = assert_problem(refused, 429, "throttled")
    assert 1 <= int(refused["Retry-After"]) <= 60, refused["Retry-After"]
    assert "seconds" in body["detail"]
    # Even the right password waits out the window: the throttle stands before the check.
    assert_problem(sign_in(user.username), 429, "throttled")
    # The username is matched however it is written.
    assert_problem(sign_in(user.username.upper(), "wrong"), 429, "throttled")
    assert AccessToken.objects.count() == 0


def test_the_sign_in_throttle_is_per_username_and_address(three_failures_a_minute):
    user, other = UserFactory(), UserFactory()
    for _ in range(3):
        sign_in(user.username, "wrong")
    assert_problem(sign_in(user.username, "wrong"), 429, "throttled")

    # Another username from the same address is not blocked ...
    assert sign_in(other.username).status_code == 200
    assert_problem(sign_in(other.username, "wrong"), 401, "authentication_failed")
    # ... and neither is the same username from another address.
    elsewhere = APIClient(REMOTE_ADDR="10.1.2.3")
    assert sign_in(user.username, client=elsewhere).status_code == 200


def test_successful_sign_ins_do_not_count(three_failures_a_minute):
    user = UserFactory()
    for _ in range(5):
        assert sign_in(user.username).status_code == 200
    for _ in range(2):
        assert_problem(sign_in(user.username, "wrong"), 401, "authentication_failed")
    assert sign_in(user.username).status_code == 200
    assert_problem(sign_in(user.username, "wrong"), 401, "authentication_failed")
    assert_problem(sign_in(user.username, "wrong"), 429, "throttled")


# --- A password change revokes every token ------------------------------------------------------


def _live(token: str) -> bool:
    response = with_header(f"Bearer {token}").get("/api/v1/me/")
    if response.status_code == 401:
        assert_problem(response, 401, "authentication_failed")
        return False
    assert response.status_code == 200, response.content
    return True


def test_a_portal_password_change_revokes_every_token_issued_before():
    # given: two tokens, and a portal session
    user = UserFactory()
    first, second = token_for(user), token_for(user)
    portal = Client()
    portal.force_login(user)

    # when
    response = portal.post(
        "/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a new long passphrase 42",
            "new_password2": "a new long passphrase 42",
        },
    )

    # then
    assert response.status_code == 302, response.content[:2000]
    assert not _live(first) and not _live(second)
    assert AccessToken.objects.filter(user=user, revoked_at__isnull=True).count() == 0
    fresh = sign_in(user.username, "a new long passphrase 42").json()["token"]
    assert _live(fresh)


def test_an_admin_password_change_revokes_the_users_tokens():
    user = UserFactory()
    token = token_for(user)
    admin_client = Client()
    admin_client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = admin_client.post(
        reverse("admin:auth_user_password_change", args=[user.pk]),
        {"password1": "another long passphrase 7", "password2": "another long passphrase 7", "usable_password": "true"},
    )

    assert response.status_code == 302, response.content[:3000]
    assert not _live(token)


def test_set_password_through_any_path_revokes_and_other_changes_do_not():
    user, other = UserFactory(), UserFactory()
    token, others = token_for(user), token_for(other)

    # A change of anything but the password (a portal sign-in sets last_login) revokes nothing.
    user.email = "someone@example.org"
    user.save()
    assert Client().post("/login/", {"username": user.username, "password": PASSWORD}).status_code == 302
    assert _live(token)

    user.set_password("yet another long passphrase")
    user.save()

    assert not _live(token)
    assert _live(others)


def test_the_database_revokes_even_when_sql_changes_the_password():
    user = UserFactory()
    token = token_for(user)

    with connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_user SET password = 'x' WHERE id = %s", [user.pk])

    assert AccessToken.objects.get(user=user).revoked_at is not None
    assert not _live(token)


def test_the_token_endpoint_says_so_in_its_schema():
    schema = APIClient().get("/api/schema/?format=json").json()
    description = schema["paths"]["/api/v1/auth/token/"]["post"]["description"]
    assert "password revokes every token" in description
    assert "otp" in description and "THROTTLE_LOGIN" in description


# --- General throttle -----------------------------------------------------------------------------


def rates(settings, **changes: str) -> None:
    rest = settings.REST_FRAMEWORK
    settings.REST_FRAMEWORK = {**rest, "DEFAULT_THROTTLE_RATES": {**rest["DEFAULT_THROTTLE_RATES"], **changes}}


@pytest.fixture
def three_requests_a_minute(settings):
    # api.throttles is imported (above) before this override: its rates must be read per request.
    rates(settings, user="3/minute")


def test_a_burst_beyond_the_user_rate_is_429(three_requests_a_minute):
    user, other = UserFactory(), UserFactory()
    client = with_header(f"Bearer {token_for(user)}")
    for _ in range(3):
        assert client.get("/api/v1/me/").status_code == 200

    refused = client.get("/api/v1/me/")

    assert_problem(refused, 429, "throttled")
    assert 1 <= int(refused["Retry-After"]) <= 60
    # The rate is per user: someone else is served.
    assert with_header(f"Bearer {token_for(other)}").get("/api/v1/me/").status_code == 200


def test_the_user_rate_is_per_api_key(cast, three_requests_a_minute):
    _, secret = _create_key(signed_in(cast.clerk), cast.provider.pk)
    client = with_header(f"Api-Key {secret}")
    for _ in range(3):
        assert client.get("/api/v1/me/").status_code == 200
    assert_problem(client.get("/api/v1/me/"), 429, "throttled")


def test_a_burst_beyond_the_anonymous_rate_is_429(settings):
    rates(settings, anon="3/minute")
    client = APIClient()
    for _ in range(3):
        assert_problem(client.post("/api/v1/enterprises/register/", {}, format="json"), 400, "validation_error")

    refused = client.post("/api/v1/enterprises/register/", {}, format="json")

    assert_problem(refused, 429, "throttled")
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Per address: another one is served.
    elsewhere = APIClient(REMOTE_ADDR="10.9.8.7").post("/api/v1/enterprises/register/", {}, format="json")
    assert_problem(elsewhere, 400, "validation_error")


# --- The security log -----------------------------------------------------------------------------


def test_every_authentication_failure_is_logged_without_the_secret(cast, caplog):
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)
    member = cast.member
    wrong_password = "this-is-not-the-password"
    stale = token_for(member)
    with_header(f"Bearer {stale}").post("/api/v1/auth/logout/")
    _, key = _create_key(signed_in(cast.clerk), cast.provider.pk)
    ApiKey.objects.update(revoked_at=timezone.now())
    caplog.clear()

    sign_in(member.username, wrong_password)
    with_header(f"Bearer {stale}").get("/api/v1/me/")
    with_header("Bearer hzt_made-up-secret").get("/api/v1/applications/")
    with_header(f"Api-Key {key}").get("/api/v1/me/")
    with_header("Bearer ").get("/api/v1/me/")

    records = [r for r in caplog.records if r.name == SECURITY_LOGGER]
    messages = [r.getMessage() for r in records]
    assert len(records) == 5, messages
    assert all(r.levelno == logging.WARNING for r in records)
    assert all("127.0.0.1" in m for m in messages), messages
    paths = ["/api/v1/auth/token/", "/api/v1/me/", "/api/v1/applications/", "/api/v1/me/", "/api/v1/me/"]
    for message, path in zip(messages, paths, strict=True):
        assert f"path={path}" in message, message
    assert member.username in messages[0]
    for secret in (wrong_password, stale, key, "hzt_made-up-secret", "made-up-secret"):
        assert secret not in caplog.text


def test_a_throttled_sign_in_is_logged(three_failures_a_minute, caplog):
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)
    user = UserFactory()
    for _ in range(3):
        sign_in(user.username, "wrong")
    caplog.clear()
    sign_in(user.username, "wrong")
    messages = [r.getMessage() for r in caplog.records if r.name == SECURITY_LOGGER]
    assert len(messages) == 1 and "throttled" in messages[0] and "127.0.0.1" in messages[0], messages
    assert "path=/api/v1/auth/token/" in messages[0]


def test_a_username_cannot_forge_log_lines(caplog):
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)
    sign_in("mallory\nsign-in succeeded: username=admin", "wrong")
    messages = [r.getMessage() for r in caplog.records if r.name == SECURITY_LOGGER]
    assert len(messages) == 1 and "\n" not in messages[0], messages


# --- API keys ------------------------------------------------------------------------------------


def _create_key(client: APIClient, provider_pk: int, name: str = "billing") -> tuple[int, str]:
    response = client.post(f"/api/v1/providers/{provider_pk}/api-keys/", {"name": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"], response.json()["key"]


def test_a_member_creates_a_key_shown_once(cast):
    clerk = signed_in(cast.clerk)

    created = clerk.post(f"/api/v1/providers/{cast.provider.pk}/api-keys/", {"name": "billing"}, format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert set(body) == {"id", "name", "prefix", "created_at", "revoked_at", "key"}
    assert (body["name"], body["revoked_at"]) == ("billing", None)
    assert body["key"].startswith(body["prefix"]) and len(body["key"]) > len(body["prefix"]) + 20
    listed = clerk.get(f"/api/v1/providers/{cast.provider.pk}/api-keys/")
    assert listed.status_code == 200
    (only,) = listed.json()["results"]
    assert set(only) == {"id", "name", "prefix", "created_at", "revoked_at"}
    assert (only["id"], only["prefix"]) == (body["id"], body["prefix"])
    assert body["key"] not in listed.content.decode()
    key = ApiKey.objects.get()
    assert (key.provider, key.created_by, key.user.provider) == (cast.provider, cast.clerk, cast.provider)


def test_the_database_holds_only_hashes(cast):
    _, secret = _create_key(signed_in(cast.clerk), cast.provider.pk)
    token = token_for(cast.member)
    for table in ("accounts_apikey", "accounts_accesstoken", "accounts_user"):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {table}")
            cells = [str(cell) for row in cursor.fetchall() for cell in row]
        for value in (secret, token):
            assert not any(value in cell for cell in cells), table
            # Nor the part after the visible prefix.
            assert not any(value[12:] in cell for cell in cells), table


def test_a_key_acts_for_its_provider(cast, year):
    mine = submit(cast)
    other_provider = ProviderFactory()
    submit(cast, provider=other_provider)
    _, secret = _create_key(signed_in(cast.clerk), cast.provider.pk)
    machine = with_header(f"Api-Key {secret}")

    me = machine.get("/api/v1/me/")
    applications = machine.get("/api/v1/applications/")

    assert me.status_code == 200, me.content
    assert (me.json()["provider"], me.json()["enterprise"], me.json()["roles"]) == (cast.provider.pk, None, [])
    assert applications.status_code == 200
    assert [a["id"] for a in applications.json()["results"]] == [mine.pk]
    confirmed = machine.post(f"/api/v1/applications/{mine.pk}/confirm/")
    assert (confirmed.status_code, confirmed.json()["status"]) == (200, "confirmed")
    assert Application.objects.count() == 2


def test_a_key_may_not_manage_keys_or_users(cast):
    clerk = signed_in(cast.clerk)
    key_id, secret = _create_key(clerk, cast.provider.pk)
    machine = with_header(f"Api-Key {secret}")
    base = f"/api/v1/providers/{cast.provider.pk}/api-keys/"

    assert_problem(machine.get(base), 403, "permission_denied")
    assert_problem(machine.post(base, {"name": "more"}, format="json"), 403, "permission_denied")
    assert_problem(machine.post(f"{base}{key_id}/revoke/"), 403, "permission_denied")
    user = {"username": "x-new", "password": PASSWORD, "provider": cast.provider.pk}
    assert_problem(machine.post("/api/v1/users/", user, format="json"), 403, "permission_denied")
    assert ApiKey.objects.count() == 1 and ApiKey.objects.get().revoked_at is None


def test_a_revoked_key_fails_on_its_very_next_request(cast):
    clerk = signed_in(cast.clerk)
    key_id, secret = _create_key(clerk, cast.provider.pk)
    machine = with_header(f"Api-Key {secret}")
    assert machine.get("/api/v1/me/").status_code == 200

    revoked = clerk.post(f"/api/v1/providers/{cast.provider.pk}/api-keys/{key_id}/revoke/")

    assert revoked.status_code == 200, revoked.content
    assert revoked.json()["id"] == key_id and revoked.json()["revoked_at"] is not None
    assert "key" not in revoked.json()
    assert_problem(machine.get("/api/v1/me/"), 401, "authentication_failed")
    # Revoking again changes nothing and says so with the same answer.
    again = clerk.post(f"/api/v1/providers/{cast.provider.pk}/api-keys/{key_id}/revoke/")
    assert (again.status_code, again.json()["revoked_at"]) == (200, revoked.json()["revoked_at"])


def test_another_providers_member_sees_no_keys(cast):
    key_id, _ = _create_key(signed_in(cast.clerk), cast.provider.pk)
    base = f"/api/v1/providers/{cast.provider.pk}/api-keys/"
    for stranger in (UserFactory(provider=ProviderFactory()), cast.member):
        client = signed_in(stranger)
        assert_problem(client.get(base), 404, "not_found")
        assert_problem(client.post(base, {"name": "mine now"}, format="json"), 404, "not_found")
        assert_problem(client.post(f"{base}{key_id}/revoke/"), 404, "not_found")
    # Staff can see the provider anyway: for them it is their role that may not (403).
    staff = signed_in(cast.reviewer)
    assert_problem(staff.get(base), 403, "permission_denied")
    assert_problem(staff.post(f"{base}{key_id}/revoke/"), 403, "permission_denied")
    assert ApiKey.objects.count() == 1 and ApiKey.objects.get().revoked_at is None


def test_a_key_of_another_provider_is_404_by_its_id(cast):
    other = ProviderFactory()
    other_key_id, _ = _create_key(signed_in(UserFactory(provider=other)), other.pk)
    clerk = signed_in(cast.clerk)
    assert_problem(
        clerk.post(f"/api/v1/providers/{cast.provider.pk}/api-keys/{other_key_id}/revoke/"), 404, "not_found"
    )
    assert ApiKey.objects.get(pk=other_key_id).revoked_at is None


def test_a_superuser_lists_and_revokes_any_providers_keys_but_creates_none(cast, db_snapshot):
    # A key acts as the provider: a superuser who could make one could redeem fabricated bills alone.
    admin = signed_in(cast.admin)
    before = db_snapshot()
    refused = admin.post(f"/api/v1/providers/{cast.provider.pk}/api-keys/", {"name": "mine"}, format="json")
    assert_problem(refused, 403, "permission_denied")
    assert db_snapshot() == before
    key_id, secret = _create_key(signed_in(cast.clerk), cast.provider.pk)
    assert with_header(f"Api-Key {secret}").get("/api/v1/me/").json()["provider"] == cast.provider.pk
    assert [k["id"] for k in admin.get(f"/api/v1/providers/{cast.provider.pk}/api-keys/").json()["results"]] == [key_id]
    assert admin.post(f"/api/v1/providers/{cast.provider.pk}/api-keys/{key_id}/revoke/").status_code == 200
    assert_problem(admin.get("/api/v1/providers/999999/api-keys/"), 404, "not_found")


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "   "}, {"name": 5}, {"name": "x" * 101}, {"name": "ok", "key": "mine"}]
)
def test_a_bad_key_request_is_400(cast, body):
    clerk = signed_in(cast.clerk)
    response = clerk.post(f"/api/v1/providers/{cast.provider.pk}/api-keys/", body, format="json")
    assert_problem(response, 400, "validation_error")
    assert ApiKey.objects.count() == 0
