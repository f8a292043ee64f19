"""Sanctions under maker-checker over HTTP: a reviewer or an approver asks (202, an approval request),
a different approver decides, and from then on the organisation is 403 `not_eligible`."""

import pytest

from accounts.models import Sanction
from approvals.models import ApprovalRequest
from tests.api.conftest import assert_problem
from tests.coupons.conftest import YEAR
from tests.evidence import contract_ids
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def sanction_body(cast, **changes):
    return {"uscc": cast.enterprise.uscc, "reason": "False invoices", "valid_from": "2000-01-01", **changes}


def submit_body(cast):
    return {
        "provider": cast.provider.pk,
        "contract_number": "HZ-S-1",
        "contract_fee_fen": 1_000_000,
        "compute_source": "domestic",
        "purpose": "training",
        **contract_ids(cast.member, YEAR),
    }


@pytest.mark.parametrize("requester", ["reviewer", "approver"])
def test_a_sanction_is_asked_for_then_decided_by_a_different_approver(cast, year, as_user, requester):
    # given a request
    asked = as_user(getattr(cast, requester)).post("/api/v1/sanctions/", sanction_body(cast), format="json")
    assert asked.status_code == 202, asked.content
    request = asked.json()
    assert (request["action"], request["status"], request["target"]) == (
        "sanction_set",
        "pending",
        f"sanction:{cast.enterprise.uscc}",
    )
    assert request["requested_by"] == getattr(cast, requester).pk
    assert not Sanction.objects.exists()
    # while pending, the enterprise still applies
    member = as_user(cast.member)
    assert member.post("/api/v1/applications/", submit_body(cast), format="json").status_code == 201
    # when a different approver decides
    decided = as_user(cast.approver2).post(
        f"/api/v1/approval-requests/{request['id']}/approve/", {"reason": "checked"}, format="json"
    )
    assert decided.status_code == 200, decided.content
    sanction = Sanction.objects.get()
    assert (sanction.uscc, sanction.requested_by_id, sanction.decided_by_id, sanction.valid_until) == (
        cast.enterprise.uscc,
        getattr(cast, requester).pk,
        cast.approver2.pk,
        None,
    )
    # then the enterprise is refused
    refused = member.post("/api/v1/applications/", {**submit_body(cast), "contract_number": "HZ-S-2"}, format="json")
    assert_problem(refused, 403, "not_eligible")
    listed = as_user(cast.reviewer).get("/api/v1/sanctions/").json()["results"]
    assert [item["uscc"] for item in listed] == [cast.enterprise.uscc]


def test_the_requester_may_not_decide_nor_may_a_reviewer(cast, year, as_user, db_snapshot):
    request = as_user(cast.approver).post("/api/v1/sanctions/", sanction_body(cast), format="json").json()
    own, reviewer = as_user(cast.approver), as_user(cast.reviewer)
    before = db_snapshot()
    url = f"/api/v1/approval-requests/{request['id']}/approve/"
    assert_problem(own.post(url, {"reason": "mine"}, format="json"), 403, "four_eyes")
    assert reviewer.post(url, {"reason": "x"}, format="json").status_code in (403, 404)
    assert db_snapshot() == before
    assert ApprovalRequest.objects.get().status == "pending"


def test_only_reviewers_and_approvers_ask(cast, year, as_user, db_snapshot):
    clients = [as_user(user) for user in (cast.member, cast.clerk, cast.finance, UserFactory(roles=["auditor"]))]
    before = db_snapshot()
    for client in clients:
        response = client.post("/api/v1/sanctions/", sanction_body(cast), format="json")
        assert_problem(response, 403, "permission_denied")
    assert db_snapshot() == before and not ApprovalRequest.objects.exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"uscc": "91330100MA0000000X"},
        {"reason": ""},
        {"valid_from": "yesterday"},
        {"valid_until": "1999-12-31"},
        {"valid_from": 20000101},
        {"decided_by": 1},
    ],
)
def test_a_bad_request_is_400_and_asks_nothing(cast, year, as_user, db_snapshot, changes):
    reviewer = as_user(cast.reviewer)
    before = db_snapshot()
    response = reviewer.post("/api/v1/sanctions/", sanction_body(cast, **changes), format="json")
    assert_problem(response, 400, "validation_error")
    assert db_snapshot() == before and not ApprovalRequest.objects.exists()


def test_one_pending_request_per_organisation(cast, year, as_user):
    reviewer = as_user(cast.reviewer)
    assert reviewer.post("/api/v1/sanctions/", sanction_body(cast), format="json").status_code == 202
    again = reviewer.post("/api/v1/sanctions/", sanction_body(cast, reason="again"), format="json")
    assert_problem(again, 409, "invalid_state")


def test_the_list_is_staff_only(cast, year, as_user):
    assert as_user(cast.member).get("/api/v1/sanctions/").json()["results"] == []
