"""GET /approval-requests/, and approving or rejecting one: who may, what they see, what bad input does."""

import pytest

from accounts.models import Role
from approvals.models import ApprovalRequest
from coupons.models import Grant
from coupons.services.grants import grant_revoke_request
from tests.api.conftest import assert_problem
from tests.coupons.conftest import grant_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/approval-requests/"
FIELDS = {
    "id",
    "action",
    "target",
    "payload",
    "status",
    "requested_by",
    "requested_at",
    "decided_by",
    "decided_at",
    "reason",
    "decision_reason",
    "evidence",
}


@pytest.fixture
def asked(cast, year):
    grant = grant_for(cast)
    return grant_revoke_request(grant=grant, requester=cast.reviewer, reason="The contract was cancelled.")


def test_staff_list_pending_requests_and_filter_them(cast, asked, as_user):
    for user in (cast.approver, cast.reviewer, cast.finance, cast.admin, UserFactory(roles=[Role.AUDITOR])):
        body = as_user(user).get(f"{URL}?status=pending").json()
        assert [row["id"] for row in body["results"]] == [asked.pk]
        assert set(body["results"][0]) == FIELDS
    client = as_user(cast.approver)
    assert client.get(f"{URL}?status=approved").json()["results"] == []
    assert [row["id"] for row in client.get(f"{URL}?action=grant_revoke").json()["results"]] == [asked.pk]
    assert client.get(f"{URL}?action=settlement_pay").json()["results"] == []
    assert_problem(client.get(f"{URL}?status=maybe"), 400, "validation_error")
    assert client.get(f"{URL}{asked.pk}/").json()["target"] == f"grant:{asked.payload['grant']}"


def test_members_of_organisations_see_none(cast, asked, as_user):
    for user in (cast.member, cast.clerk):
        client = as_user(user)
        assert client.get(URL).json()["results"] == []
        assert_problem(client.get(f"{URL}{asked.pk}/"), 404, "not_found")


def test_no_credentials_is_401(asked, anonymous):
    assert_problem(anonymous.get(URL), 401, "not_authenticated")
    assert_problem(anonymous.post(f"{URL}{asked.pk}/approve/", {}, format="json"), 401, "not_authenticated")
    assert_problem(anonymous.post(f"{URL}{asked.pk}/reject/", {"reason": "x"}, format="json"), 401, "not_authenticated")


def test_the_requester_may_not_decide(cast, asked, as_user, db_snapshot):
    before = db_snapshot()
    client = as_user(cast.reviewer)
    assert_problem(client.post(f"{URL}{asked.pk}/approve/", {}, format="json"), 403, "four_eyes")
    assert_problem(client.post(f"{URL}{asked.pk}/reject/", {"reason": "no"}, format="json"), 403, "four_eyes")
    assert db_snapshot() == before


@pytest.mark.parametrize("role", ["finance", "auditor"])
def test_staff_without_the_role_may_not_decide(role, cast, asked, as_user, db_snapshot):
    user = getattr(cast, role, None) or UserFactory(roles=[role])
    before = db_snapshot()
    assert_problem(as_user(user).post(f"{URL}{asked.pk}/approve/", {}, format="json"), 403, "permission_denied")
    assert db_snapshot() == before


def test_an_approver_rejects_with_a_reason(cast, asked, as_user):
    response = as_user(cast.approver).post(f"{URL}{asked.pk}/reject/", {"reason": "No evidence"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["decided_by"], body["decision_reason"]) == (
        "rejected",
        cast.approver.pk,
        "No evidence",
    )
    assert Grant.objects.get(pk=asked.payload["grant"]).status == "active"
    assert_problem(as_user(cast.approver2).post(f"{URL}{asked.pk}/approve/", {}, format="json"), 409, "invalid_state")


@pytest.mark.parametrize(
    ("decision", "body", "field"),
    [
        ("reject", {}, "reason"),
        ("reject", {"reason": ""}, "reason"),
        ("reject", {"reason": "   "}, "reason"),
        ("reject", {"reason": 5}, "reason"),
        ("reject", {"reason": "x" * 2_001}, "reason"),
        ("approve", {"reason": 5}, "reason"),
        ("approve", {"reason": "x" * 2_001}, "reason"),
        ("approve", {"status": "approved"}, "status"),
        ("approve", {"decided_by": 1}, "decided_by"),
    ],
)
def test_bad_decision_input_is_400_and_writes_nothing(decision, body, field, cast, asked, as_user, db_snapshot):
    before = db_snapshot()
    problem = assert_problem(
        as_user(cast.approver).post(f"{URL}{asked.pk}/{decision}/", body, format="json"), 400, "validation_error"
    )
    assert field in problem["errors"], problem
    assert db_snapshot() == before


def test_an_unknown_request_is_404(cast, year, as_user):
    assert_problem(as_user(cast.approver).post(f"{URL}999999/approve/", {}, format="json"), 404, "not_found")
    assert_problem(as_user(cast.approver).get(f"{URL}999999/"), 404, "not_found")


def test_approve_honours_an_idempotency_key(cast, asked, as_user):
    client = as_user(cast.approver)
    first = client.post(f"{URL}{asked.pk}/approve/", {}, format="json", HTTP_IDEMPOTENCY_KEY="decide-1")
    again = client.post(f"{URL}{asked.pk}/approve/", {}, format="json", HTTP_IDEMPOTENCY_KEY="decide-1")
    assert first.status_code == again.status_code == 200, first.content
    assert first.json() == again.json() and again["Idempotent-Replayed"] == "true"
    assert Grant.objects.get(pk=asked.payload["grant"]).status == "revoked"
    assert ApprovalRequest.objects.get(pk=asked.pk).status == "approved"
