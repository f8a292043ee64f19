"""Points a contract review found, each pinned: the answers docs/api.md gives."""

import pytest

from accounts.credentials import api_key_create
from accounts.models import Provider
from tests.api.conftest import assert_problem
from tests.evidence import contract_ids

pytestmark = pytest.mark.django_db


def test_applying_with_a_suspended_provider_is_409_provider_not_listed(cast, year, as_user, db_snapshot):
    Provider.objects.filter(pk=cast.provider.pk).update(status="suspended")
    body = {
        "provider": cast.provider.pk,
        "contract_number": "X-1",
        "contract_fee_fen": 1_000_000,
        "compute_source": "domestic",
        "purpose": "training",
        **contract_ids(cast.member, year.year),
    }
    before = db_snapshot()
    assert_problem(as_user(cast.member).post("/api/v1/applications/", body, format="json"), 409, "provider_not_listed")
    assert_problem(
        as_user(cast.member).post("/api/v1/applications/", {**body, "provider": 10**9}, format="json"), 404, "not_found"
    )
    assert db_snapshot() == before


def test_a_role_that_may_not_is_403_before_its_input_is_read(cast, year, as_user):
    from tests.coupons.conftest import submit, to_reviewed

    application = to_reviewed(cast, submit(cast))
    assert_problem(
        as_user(cast.reviewer).post(
            f"/api/v1/applications/{application.pk}/approve/", {"approved_fen": "x"}, format="json"
        ),
        403,
        "permission_denied",
    )
    assert_problem(
        as_user(cast.reviewer).post("/api/v1/settlements/", {"provider": 999}, format="json"), 403, "permission_denied"
    )


def test_registration_checks_the_username(anonymous, db_snapshot):
    before = db_snapshot()
    body = {
        "username": "bad user/<x>",
        "password": "Str0ng-pass-2026!",
        "email": "",
        "enterprise": {"name": "X", "uscc": "91330106MA2T0UR01N"},
    }
    problem = assert_problem(
        anonymous.post("/api/v1/enterprises/register/", body, format="json"), 400, "validation_error"
    )
    assert any("username" in field for field in problem["errors"]), problem
    assert db_snapshot() == before


def test_an_api_key_does_not_sign_out(cast, year):
    from rest_framework.test import APIClient

    _, secret = api_key_create(provider=cast.provider, name="billing", actor=cast.clerk)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert_problem(client.post("/api/v1/auth/logout/"), 403, "permission_denied")
    assert client.get("/api/v1/me/").status_code == 200


def test_actions_refuse_a_body_they_would_ignore(cast, year, as_user):
    client = as_user(cast.reviewer)
    response = client.post(f"/api/v1/enterprises/{cast.enterprise.pk}/verify/", {"status": "suspended"}, format="json")
    assert "status" in assert_problem(response, 400, "validation_error")["errors"]


@pytest.mark.parametrize("path", ["/api/v1/applications/", "/api/v1/grants/", "/api/v1/redemptions/"])
def test_filters_do_not_reveal_which_ids_exist(path, cast, year, as_user):
    client = as_user(cast.member)
    for value in (cast.enterprise.pk + 1000, 999_999):
        response = client.get(f"{path}?enterprise={value}")
        assert (response.status_code, response.json()["results"]) == (200, [])
