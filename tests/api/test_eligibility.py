"""Eligibility over HTTP: flags staff verify, flags enterprises declare, the model-filing register,
the region of a program year, and the 403 `not_eligible` refusals."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Enterprise, EnterpriseFlagsEvent, ModelFiling
from accounts.services import related_party_add, sanction_set
from coupons.models import Application
from coupons.services.years import program_year_of
from tests.api.conftest import PASSWORD, assert_problem
from tests.evidence import checked, contract_ids
from tests.factories import EnterpriseFactory, UserFactory, valid_uscc

pytestmark = pytest.mark.django_db

FLAGS = ("has_registered_model", "foundation_model_developer", "small_or_medium")


def submit_body(cast, *, member=None, **changes):
    """An application of `member` (the cast's by default), with a contract its enterprise uploaded."""
    return {
        "provider": cast.provider.pk,
        "contract_number": "HZ-C-1",
        "contract_fee_fen": 1_000_000,
        "compute_source": "other",
        "purpose": "maas",
        **contract_ids(member or cast.member, program_year_of(timezone.now())),
        **changes,
    }


# --- Verify with flags ---------------------------------------------------------------------------------


def test_a_reviewer_verifies_the_flags_staff_confirm(cast, as_user):
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(small_or_medium=True, foundation_model_developer=True)
    response = as_user(cast.reviewer).post(
        f"/api/v1/enterprises/{cast.enterprise.pk}/verify/",
        {"small_or_medium": True, "foundation_model_developer": False},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["small_or_medium"], body["small_or_medium_verified"]) == (True, True)
    assert (body["foundation_model_developer"], body["foundation_model_developer_verified"]) == (True, False)
    event = EnterpriseFlagsEvent.objects.get(enterprise=cast.enterprise)
    assert (event.action, event.flags, event.actor_id) == (
        "verified",
        {"small_or_medium": True, "foundation_model_developer": False},
        cast.reviewer.pk,
    )


def test_verify_without_a_body_still_verifies_a_pending_enterprise(cast, as_user):
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(status="pending")
    response = as_user(cast.reviewer).post(f"/api/v1/enterprises/{cast.enterprise.pk}/verify/")
    assert (response.status_code, response.json()["status"]) == (200, "verified")
    assert not EnterpriseFlagsEvent.objects.exists()


@pytest.mark.parametrize(
    "body", [{"small_or_medium": "yes"}, {"small_or_medium": 1}, {"small_or_medium": None}, {"rich": True}, []]
)
def test_verify_refuses_bad_types(cast, as_user, db_snapshot, body):
    before = db_snapshot()
    response = as_user(cast.reviewer).post(f"/api/v1/enterprises/{cast.enterprise.pk}/verify/", body, format="json")
    assert_problem(response, 400, "validation_error")
    assert db_snapshot() == before


@pytest.mark.parametrize("who", ["member", "approver", "clerk"])
def test_only_a_reviewer_verifies(cast, as_user, db_snapshot, who):
    before = db_snapshot()
    response = as_user(getattr(cast, who)).post(
        f"/api/v1/enterprises/{cast.enterprise.pk}/verify/", {"small_or_medium": True}, format="json"
    )
    assert response.status_code in (403, 404)
    assert db_snapshot() == before


# --- Flags the enterprise declares ----------------------------------------------------------------------


def test_members_declare_flags_which_wait_for_staff(cast, as_user):
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(small_or_medium=True, small_or_medium_verified=True)
    response = as_user(cast.member).post(
        f"/api/v1/enterprises/{cast.enterprise.pk}/flags/",
        {"has_registered_model": True, "model_filing_number": "Zhejiang-202401", "small_or_medium": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["has_registered_model"], body["has_registered_model_verified"], body["model_filing_number"]) == (
        True,
        False,
        "Zhejiang-202401",
    )
    assert (body["small_or_medium"], body["small_or_medium_verified"]) == (True, True)  # Unchanged: still confirmed.


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"small_or_medium": "yes"}, "small_or_medium"),
        ({"has_registered_model": True}, "model_filing_number"),
        ({"model_filing_number": 7}, "model_filing_number"),
        ({"small_or_medium_verified": True}, "small_or_medium_verified"),
    ],
)
def test_declaring_refuses_bad_input(cast, as_user, db_snapshot, body, field):
    before = db_snapshot()
    response = as_user(cast.member).post(f"/api/v1/enterprises/{cast.enterprise.pk}/flags/", body, format="json")
    assert field in assert_problem(response, 400, "validation_error")["errors"]
    assert db_snapshot() == before


def test_only_the_enterprises_members_declare(cast, as_user, db_snapshot):
    stranger, reviewer = as_user(UserFactory(enterprise=EnterpriseFactory())), as_user(cast.reviewer)
    before = db_snapshot()
    url = f"/api/v1/enterprises/{cast.enterprise.pk}/flags/"
    assert_problem(stranger.post(url, {"small_or_medium": True}, format="json"), 404, "not_found")
    assert_problem(reviewer.post(url, {"small_or_medium": True}, format="json"), 403, "permission_denied")
    assert db_snapshot() == before


# --- The model-filing register ---------------------------------------------------------------------------


def test_a_reviewer_records_and_verifies_a_filing_that_then_prices_an_application(cast, year, as_user):
    reviewer = as_user(cast.reviewer)
    recorded = reviewer.post(
        "/api/v1/model-filings/",
        {"filing_number": "Zhejiang-202401", "model_name": "Tongyi", "holder_name": "Third Party Ltd"},
        format="json",
    )
    assert recorded.status_code == 201, recorded.content
    filing = recorded.json()
    assert filing["verified_at"] is None and filing["recorded_by"] == cast.reviewer.pk
    # Not verified yet: the application is priced without the registered-model rule.
    first = as_user(cast.member).post(
        "/api/v1/applications/", submit_body(cast, model_filing_number="Zhejiang-202401"), format="json"
    )
    assert (first.status_code, first.json()["rate_bp"]) == (201, 2000)
    # Found from outside: one reviewer recorded and verified a filing alone. Four eyes now.
    assert_problem(reviewer.post(f"/api/v1/model-filings/{filing['id']}/verify/"), 403, "four_eyes")
    second_reviewer = UserFactory(roles=["reviewer"])
    verified = as_user(second_reviewer).post(f"/api/v1/model-filings/{filing['id']}/verify/")
    assert verified.status_code == 200 and verified.json()["verified_by"] == second_reviewer.pk
    second = as_user(cast.member).post(
        "/api/v1/applications/",
        submit_body(cast, contract_number="HZ-C-2", model_filing_number="Zhejiang-202401"),
        format="json",
    )
    assert second.status_code == 201, second.content
    assert (second.json()["rate_bp"], second.json()["model_filing_number"]) == (3000, "Zhejiang-202401")
    listed = reviewer.get("/api/v1/model-filings/").json()["results"]
    assert [item["filing_number"] for item in listed] == ["Zhejiang-202401"]


def test_the_register_is_staff_only(cast, as_user, db_snapshot):
    before = db_snapshot()
    body = {"filing_number": "Z-1", "model_name": "m", "holder_name": "h"}
    assert_problem(as_user(cast.member).post("/api/v1/model-filings/", body, format="json"), 403, "permission_denied")
    assert_problem(as_user(cast.approver).post("/api/v1/model-filings/", body, format="json"), 403, "permission_denied")
    assert as_user(cast.member).get("/api/v1/model-filings/").json()["results"] == []
    assert db_snapshot() == before


@pytest.mark.parametrize(
    "changes",
    [{"filing_number": ""}, {"model_name": 3}, {"holder_uscc": "not-a-code"}, {"verified_at": "2026-01-01"}],
)
def test_recording_a_filing_refuses_bad_input(cast, as_user, db_snapshot, changes):
    before = db_snapshot()
    body = {"filing_number": "Z-1", "model_name": "m", "holder_name": "h", **changes}
    assert_problem(as_user(cast.reviewer).post("/api/v1/model-filings/", body, format="json"), 400, "validation_error")
    assert db_snapshot() == before
    assert not ModelFiling.objects.exists()


# --- Region and the 403 refusals --------------------------------------------------------------------------


def test_registration_stays_open_outside_the_region_but_submission_refuses(cast, year, as_user, db_snapshot):
    registered = APIClient().post(
        "/api/v1/enterprises/register/",
        {"username": "bj", "password": PASSWORD, "enterprise": {"name": "Beijing AI", "uscc": valid_uscc("110105")}},
        format="json",
    )
    assert registered.status_code == 201, registered.content
    enterprise = Enterprise.objects.get(pk=registered.json()["enterprise"]["id"])
    Enterprise.objects.filter(pk=enterprise.pk).update(status="verified")
    member = UserFactory(enterprise=enterprise)
    submitted = submit_body(cast, member=member)
    before = db_snapshot()
    body = assert_problem(as_user(member).post("/api/v1/applications/", submitted, format="json"), 403, "not_eligible")
    assert "110105" in body["detail"]
    assert db_snapshot() == before


def test_a_sanctioned_enterprise_is_403_not_eligible(cast, year, as_user, db_snapshot):
    sanction_set(
        uscc=cast.enterprise.uscc,
        reason="false invoices",
        valid_from=dt.date(2000, 1, 1),
        valid_until=None,
        requested_by=cast.reviewer,
        actor=cast.approver,
    )
    submitted = submit_body(cast)
    before = db_snapshot()
    assert_problem(as_user(cast.member).post("/api/v1/applications/", submitted, format="json"), 403, "not_eligible")
    assert db_snapshot() == before


def test_an_affiliation_recorded_after_review_stops_approval_over_http(cast, year, as_user, db_snapshot):
    created = as_user(cast.member).post("/api/v1/applications/", submit_body(cast), format="json").json()
    as_user(cast.clerk).post(f"/api/v1/applications/{created['id']}/confirm/")
    as_user(cast.reviewer).post(
        f"/api/v1/applications/{created['id']}/review/",
        {"recommended_fen": 1000, **checked(created["id"])},
        format="json",
    )
    related_party_add(uscc_a=cast.enterprise.uscc, uscc_b=cast.provider.uscc, actor=cast.reviewer)
    before = db_snapshot()
    response = as_user(cast.approver).post(f"/api/v1/applications/{created['id']}/approve/")
    assert_problem(response, 409, "affiliated_provider")
    assert db_snapshot() == before
    assert Application.objects.get(pk=created["id"]).status == "reviewed"


def test_a_year_is_prepared_with_its_region(cast, as_user):
    admin = as_user(cast.admin)
    response = admin.post(
        "/api/v1/program-years/", {"year": 2031, "region_division_prefixes": ["3301", "330281"]}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["region_division_prefixes"] == ["3301", "330281"]
    assert admin.get("/api/v1/program-years/2031/").json()["region_division_prefixes"] == ["3301", "330281"]


@pytest.mark.parametrize("prefixes", [[], ["3"], "3301", [3301], ["33a1"], ["3301234"]])
def test_a_year_refuses_a_malformed_region(cast, as_user, db_snapshot, prefixes):
    before = db_snapshot()
    response = as_user(cast.admin).post(
        "/api/v1/program-years/", {"year": 2031, "region_division_prefixes": prefixes}, format="json"
    )
    assert_problem(response, 400, "validation_error")
    assert db_snapshot() == before


def test_each_flag_field_is_in_the_enterprise_shape(cast, as_user):
    shape = as_user(cast.member).get(f"/api/v1/enterprises/{cast.enterprise.pk}/").json()
    assert all(name in shape and f"{name}_verified" in shape for name in FLAGS)
