"""Changing a listed computing center is maker-checker: a superuser asks (`POST /providers/{id}/
suspend/`, `.../reinstate/`, `.../facilities/` answer 202 with an approval request) and a different
person, an approver or another superuser, approves it at `/approval-requests/{id}/approve/`; only
then the change is applied and recorded in the provider's insert-only history."""

import datetime as dt

import pytest
from rest_framework.test import APIClient

from accounts.models import Facility, Provider, ProviderChange
from approvals.models import ApprovalRequest
from tests.api.conftest import assert_problem, signed_in
from tests.factories import ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

APPROVAL_FIELDS = {"id", "action", "target", "payload", "status", "requested_by", "requested_at", "decided_by"}
DOMESTIC = {"compute_source": "domestic", "description": "Ascend 910B cluster", "listed_from": "2024-01-01"}


def ask(client, provider, change, body=None):
    body = {"reason": "audit finding"} if body is None else body
    return client.post(f"/api/v1/providers/{provider.pk}/{change}/", body, format="json")


def approve(client, approval_id):
    return client.post(f"/api/v1/approval-requests/{approval_id}/approve/", {}, format="json")


def facilities_of(provider):
    return list(Facility.objects.filter(provider=provider).values_list("compute_source", "listed_from", "listed_until"))


def test_a_suspension_is_asked_for_and_applied_only_on_approval(cast, db_snapshot):
    admin = signed_in(cast.admin)

    response = ask(admin, cast.provider, "suspend", {"reason": "Left the planning layout."})

    assert response.status_code == 202, response.content
    answer = response.json()
    assert set(answer) >= APPROVAL_FIELDS
    assert (answer["action"], answer["target"], answer["payload"], answer["status"]) == (
        "provider_change",
        f"provider:{cast.provider.pk}",
        {"status": "suspended"},
        "pending",
    )
    assert (answer["requested_by"], answer["reason"]) == (cast.admin.pk, "Left the planning layout.")
    cast.provider.refresh_from_db()
    assert cast.provider.status == "active" and not ProviderChange.objects.filter(kind="changed").exists()

    decided = approve(signed_in(cast.approver), answer["id"])

    assert decided.status_code == 200, decided.content
    assert (decided.json()["status"], decided.json()["decided_by"]) == ("approved", cast.approver.pk)
    cast.provider.refresh_from_db()
    assert cast.provider.status == "suspended"
    change = ProviderChange.objects.get(provider=cast.provider, kind="changed")
    assert (change.requested_by, change.decided_by, change.reason) == (
        cast.admin,
        cast.approver,
        "Left the planning layout.",
    )
    assert (change.before["status"], change.after["status"]) == ("active", "suspended")


def test_a_reinstatement_goes_the_same_way(cast):
    Provider.objects.filter(pk=cast.provider.pk).update(status=Provider.Status.SUSPENDED)
    response = ask(signed_in(cast.admin), cast.provider, "reinstate")
    assert response.status_code == 202, response.content
    assert response.json()["payload"] == {"status": "active"}

    second_superuser = UserFactory(is_superuser=True, is_staff=True)
    assert approve(signed_in(second_superuser), response.json()["id"]).status_code == 200

    cast.provider.refresh_from_db()
    assert cast.provider.status == "active"


def test_new_facilities_are_asked_for_and_replace_the_old_on_approval(cast):
    old = facilities_of(cast.provider)
    body = {"facilities": [DOMESTIC], "reason": "The GPU cloud left the listing."}

    response = ask(signed_in(cast.admin), cast.provider, "facilities", body)

    assert response.status_code == 202, response.content
    assert response.json()["payload"] == {"facilities": [{**DOMESTIC, "listed_until": None}]}
    assert facilities_of(cast.provider) == old
    assert approve(signed_in(cast.approver), response.json()["id"]).status_code == 200
    assert facilities_of(cast.provider) == [("domestic", dt.date(2024, 1, 1), None)]
    shown = signed_in(cast.member).get(f"/api/v1/providers/{cast.provider.pk}/").json()
    assert shown["facilities"] == [{**DOMESTIC, "listed_until": None}]


@pytest.mark.parametrize("change", ["suspend", "reinstate", "facilities"])
def test_only_a_superuser_asks(cast, db_snapshot, change):
    body = {"facilities": [DOMESTIC], "reason": "why"} if change == "facilities" else None
    other_clerk = UserFactory(provider=ProviderFactory())
    before = db_snapshot()
    for user in (cast.reviewer, cast.approver, cast.finance, cast.clerk, other_clerk):
        assert_problem(ask(signed_in(user), cast.provider, change, body), 403, "permission_denied")
    assert_problem(ask(APIClient(), cast.provider, change, body), 401, "not_authenticated")
    assert_problem(ask(signed_in(cast.admin), ProviderFactory.build(pk=999_999), change, body), 404, "not_found")
    assert db_snapshot() == before
    assert not ApprovalRequest.objects.exists()


@pytest.mark.parametrize(
    ("change", "body", "field"),
    [
        ("suspend", {}, "reason"),
        ("suspend", {"reason": ""}, "reason"),
        ("suspend", {"reason": "why", "status": "active"}, "status"),
        ("facilities", {"reason": "why"}, "facilities"),
        ("facilities", {"facilities": [], "reason": "why"}, "facilities"),
        ("facilities", {"facilities": [DOMESTIC]}, "reason"),
        ("facilities", {"facilities": [{**DOMESTIC, "listed_until": "2023-01-01"}], "reason": "why"}, "facilities"),
    ],
)
def test_bad_input_is_400_and_asks_nothing(cast, db_snapshot, change, body, field):
    before = db_snapshot()
    problem = assert_problem(ask(signed_in(cast.admin), cast.provider, change, body), 400, "validation_error")
    assert any(name.startswith(field) for name in problem["errors"]), problem["errors"]
    assert db_snapshot() == before
    assert not ApprovalRequest.objects.exists()


def test_a_change_that_changes_nothing_or_a_second_pending_one_is_409(cast):
    admin = signed_in(cast.admin)
    assert_problem(ask(admin, cast.provider, "reinstate"), 409, "invalid_state")
    assert ask(admin, cast.provider, "suspend").status_code == 202
    assert_problem(
        ask(admin, cast.provider, "facilities", {"facilities": [DOMESTIC], "reason": "r"}), 409, "invalid_state"
    )
    assert ApprovalRequest.objects.count() == 1


def test_the_requester_may_not_approve_and_only_an_approver_or_superuser_decides(cast, db_snapshot):
    approval_id = ask(signed_in(cast.admin), cast.provider, "suspend").json()["id"]
    before = db_snapshot()

    assert_problem(approve(signed_in(cast.admin), approval_id), 403, "four_eyes")
    for user in (cast.reviewer, cast.finance):
        assert_problem(approve(signed_in(user), approval_id), 403, "permission_denied")

    assert db_snapshot() == before
    assert ApprovalRequest.objects.get(pk=approval_id).status == "pending"


def test_a_rejected_change_changes_nothing(cast, db_snapshot):
    approval_id = ask(signed_in(cast.admin), cast.provider, "suspend").json()["id"]
    before = db_snapshot()
    response = signed_in(cast.approver).post(
        f"/api/v1/approval-requests/{approval_id}/reject/", {"reason": "Not proven."}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "rejected"
    after = db_snapshot()
    assert {table: rows for table, rows in after.items() if not table.startswith("approvals_")} == {
        table: rows for table, rows in before.items() if not table.startswith("approvals_")
    }


def test_a_change_overtaken_before_its_approval_is_refused_and_stays_pending(cast, db_snapshot):
    approval_id = ask(signed_in(cast.admin), cast.provider, "suspend").json()["id"]
    # The center is suspended some other way before the decision: approving would change nothing.
    Provider.objects.filter(pk=cast.provider.pk).update(status=Provider.Status.SUSPENDED)
    before = db_snapshot()

    assert_problem(approve(signed_in(cast.approver), approval_id), 409, "invalid_state")

    assert db_snapshot() == before
    assert ApprovalRequest.objects.get(pk=approval_id).status == "pending"
