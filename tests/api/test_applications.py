"""/api/v1/applications/: the lifecycle over HTTP, with scoping, roles and problem details."""

import pytest

from coupons.models import Application, Grant
from tests.api.conftest import assert_problem
from tests.coupons.conftest import YEAR
from tests.evidence import checked, contract_ids
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db


def submit_body(cast, **changes):
    return {
        "provider": cast.provider.pk,
        "contract_number": "HZ-C-1",
        "contract_fee_fen": 1_000_000,
        "compute_source": "domestic",
        "purpose": "training",
        **contract_ids(cast.member, YEAR),
        **changes,
    }


def test_the_whole_lifecycle(cast, year, as_user, db_snapshot):
    member, clerk, reviewer, approver = (as_user(u) for u in (cast.member, cast.clerk, cast.reviewer, cast.approver))

    created = member.post("/api/v1/applications/", submit_body(cast), format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["status"], body["rate_bp"], body["eligible_fen"], body["requested_fen"]) == (
        "submitted",
        3000,
        300_000,
        300_000,
    )
    assert body["enterprise"] == cast.enterprise.pk and body["year"] == year.year and body["grant"] is None
    pk = body["id"]

    assert clerk.post(f"/api/v1/applications/{pk}/confirm/").json()["status"] == "confirmed"
    reviewed = reviewer.post(
        f"/api/v1/applications/{pk}/review/", {"recommended_fen": 250_000, "note": "ok", **checked(pk)}, format="json"
    )
    assert (reviewed.status_code, reviewed.json()["recommended_fen"]) == (200, 250_000)
    approved = approver.post(f"/api/v1/applications/{pk}/approve/", {"approved_fen": 200_000}, format="json")
    assert approved.status_code == 200, approved.content
    grant = Grant.objects.get(application_id=pk)
    assert approved.json()["grant"] == grant.pk and grant.amount_fen == 200_000
    assert approved.json()["status"] == "approved"


def test_lists_are_scoped_and_filtered(cast, year, as_user):
    as_user(cast.member).post("/api/v1/applications/", submit_body(cast), format="json")
    stranger_enterprise = EnterpriseFactory()
    stranger = UserFactory(enterprise=stranger_enterprise)
    assert as_user(stranger).get("/api/v1/applications/").json()["results"] == []
    assert len(as_user(cast.clerk).get("/api/v1/applications/").json()["results"]) == 1
    other_clerk = UserFactory(provider=ProviderFactory())
    assert as_user(other_clerk).get("/api/v1/applications/").json()["results"] == []
    staff = as_user(cast.reviewer)
    assert staff.get("/api/v1/applications/?status=submitted").json()["count"] == 1
    assert staff.get("/api/v1/applications/?status=approved").json()["count"] == 0
    assert staff.get(f"/api/v1/applications/?year={year.year}").json()["count"] == 1
    assert staff.get(f"/api/v1/applications/?enterprise={stranger_enterprise.pk}").json()["count"] == 0


def test_another_organisations_application_is_404(cast, year, as_user, db_snapshot):
    pk = as_user(cast.member).post("/api/v1/applications/", submit_body(cast), format="json").json()["id"]
    stranger = as_user(UserFactory(enterprise=EnterpriseFactory()))
    other_clerk = as_user(UserFactory(provider=ProviderFactory()))
    before = db_snapshot()
    assert_problem(stranger.get(f"/api/v1/applications/{pk}/"), 404, "not_found")
    assert_problem(stranger.post(f"/api/v1/applications/{pk}/withdraw/"), 404, "not_found")
    assert_problem(other_clerk.post(f"/api/v1/applications/{pk}/confirm/"), 404, "not_found")
    assert db_snapshot() == before


def test_a_role_that_may_not_is_403(cast, year, as_user, db_snapshot):
    pk = as_user(cast.member).post("/api/v1/applications/", submit_body(cast), format="json").json()["id"]
    as_user(cast.clerk).post(f"/api/v1/applications/{pk}/confirm/")
    before = db_snapshot()
    assert_problem(
        as_user(cast.finance).post(f"/api/v1/applications/{pk}/review/", {"recommended_fen": 1}, format="json"),
        403,
        "permission_denied",
    )
    assert_problem(
        as_user(cast.member).post(f"/api/v1/applications/{pk}/review/", {"recommended_fen": 1}, format="json"),
        403,
        "permission_denied",
    )
    assert db_snapshot() == before


def test_four_eyes_is_403(cast, year, as_user, db_snapshot):
    both = UserFactory(roles=["reviewer", "approver"])
    pk = as_user(cast.member).post("/api/v1/applications/", submit_body(cast), format="json").json()["id"]
    as_user(cast.clerk).post(f"/api/v1/applications/{pk}/confirm/")
    client = as_user(both)
    client.post(f"/api/v1/applications/{pk}/review/", {"recommended_fen": 1_000, **checked(pk)}, format="json")
    before = db_snapshot()
    assert_problem(client.post(f"/api/v1/applications/{pk}/approve/"), 403, "four_eyes")
    assert db_snapshot() == before


def test_no_credentials_is_401(cast, year, anonymous):
    assert_problem(anonymous.get("/api/v1/applications/"), 401, "not_authenticated")
    assert_problem(anonymous.post("/api/v1/applications/", submit_body(cast), format="json"), 401, "not_authenticated")
    bad = anonymous
    bad.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert_problem(bad.get("/api/v1/applications/"), 401, "authentication_failed")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"contract_fee_fen": -1}, "contract_fee_fen"),
        ({"contract_fee_fen": 0}, "contract_fee_fen"),
        ({"contract_fee_fen": "1000000"}, "contract_fee_fen"),
        ({"contract_fee_fen": 1000000.0}, "contract_fee_fen"),
        ({"contract_fee_fen": 10.5}, "contract_fee_fen"),
        ({"contract_fee_fen": 10**30}, "contract_fee_fen"),
        ({"contract_fee_fen": True}, "contract_fee_fen"),
        ({"contract_fee_fen": None}, "contract_fee_fen"),
        ({"requested_fen": 300_001}, "requested_fen"),
        ({"requested_fen": -5}, "requested_fen"),
        ({"purpose": "mining"}, "purpose"),
        ({"status": "approved"}, "status"),
        ({"rate_bp": 5000}, "rate_bp"),
        ({"enterprise": 1}, "enterprise"),
        ({"eligible_fen": 1}, "eligible_fen"),
        ({"provider": "x"}, "provider"),
    ],
)
def test_bad_input_is_400_and_writes_nothing(changes, field, cast, year, as_user, db_snapshot):
    client = as_user(cast.member)
    before = db_snapshot()
    body = assert_problem(
        client.post("/api/v1/applications/", submit_body(cast, **changes), format="json"), 400, "validation_error"
    )
    assert field in body["errors"], body
    assert db_snapshot() == before
    assert Application.objects.count() == 0


def test_business_refusals_are_409_with_their_code(cast, year, as_user, db_snapshot):
    client = as_user(cast.member)
    client.post("/api/v1/applications/", submit_body(cast), format="json")
    before = db_snapshot()
    assert_problem(client.post("/api/v1/applications/", submit_body(cast), format="json"), 409, "duplicate_contract")
    assert db_snapshot() == before


def test_a_body_that_is_not_a_json_object_is_400(cast, year, as_user):
    client = as_user(cast.member)
    assert_problem(client.post("/api/v1/applications/", [1, 2], format="json"), 400, "validation_error")
    response = client.post("/api/v1/applications/", "{not json", content_type="application/json")
    assert_problem(response, 400, "validation_error")


def test_actions_without_input_refuse_input(cast, year, as_user):
    pk = as_user(cast.member).post("/api/v1/applications/", submit_body(cast), format="json").json()["id"]
    body = assert_problem(
        as_user(cast.clerk).post(f"/api/v1/applications/{pk}/confirm/", {"status": "x"}, format="json"),
        400,
        "validation_error",
    )
    assert "status" in body["errors"]


def test_approve_honours_an_idempotency_key(cast, year, as_user):
    pk = as_user(cast.member).post("/api/v1/applications/", submit_body(cast), format="json").json()["id"]
    as_user(cast.clerk).post(f"/api/v1/applications/{pk}/confirm/")
    as_user(cast.reviewer).post(
        f"/api/v1/applications/{pk}/review/", {"recommended_fen": 100_000, **checked(pk)}, format="json"
    )
    approver = as_user(cast.approver)
    first = approver.post(f"/api/v1/applications/{pk}/approve/", {}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = approver.post(f"/api/v1/applications/{pk}/approve/", {}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and again["Idempotent-Replayed"] == "true"
    assert Grant.objects.count() == 1
    assert_problem(
        approver.post(
            f"/api/v1/applications/{pk}/approve/", {"approved_fen": 5}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
        ),
        409,
        "idempotency_key_reused",
    )
