"""/api/v1/redemptions/{id}/acknowledge/, .../dispute/, .../resolve-dispute/: the enterprise's word on
its bills and the reviewer's on a dispute; scoping, roles, states, idempotency, the list filter, and
a settlement that takes only acknowledged bills."""

import pytest

from approvals.models import ApprovalRequest
from coupons.models import Redemption
from coupons.services.redemptions import redemption_create
from ledger.selectors import account_balance
from tests.api.conftest import assert_problem
from tests.coupons.conftest import grant_for, make_cast
from tests.evidence import invoice
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/redemptions/"


def captured(cast, grant, number: str = "B-1") -> Redemption:
    return redemption_create(
        grant=grant, bill_number=number, bill_amount_fen=100_000, actor=cast.clerk, capture=True, **invoice(cast.clerk)
    )


@pytest.fixture
def grant(cast, year):
    return grant_for(cast, fee_fen=1_000_000)


@pytest.fixture
def bill(cast, grant) -> Redemption:
    return captured(cast, grant)


def acknowledge(client, pk, **headers):
    return client.post(f"{URL}{pk}/acknowledge/", format="json", **headers)


def dispute(client, pk, reason="We never ran this job.", **headers):
    return client.post(f"{URL}{pk}/dispute/", {"reason": reason}, format="json", **headers)


def resolve(client, pk, decision="dismiss", note="Usage logs match.", **headers):
    return client.post(f"{URL}{pk}/resolve-dispute/", {"decision": decision, "note": note}, format="json", **headers)


def test_a_captured_bill_reads_as_awaiting_with_its_deadline(cast, bill, as_user):
    body = as_user(cast.member).get(f"{URL}{bill.pk}/").json()

    assert body["acknowledgement"] == "awaiting"
    assert body["acknowledge_by"] and body["dispute_reason"] == "" and body["acknowledged_at"] is None


def test_the_enterprise_acknowledges_its_bill(cast, bill, as_user):
    response = acknowledge(as_user(cast.member), bill.pk)

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["acknowledgement"], body["status"]) == (bill.pk, "confirmed", "captured")
    assert body["acknowledged_at"]
    # Again: answered unchanged.
    again = acknowledge(as_user(cast.member), bill.pk)
    assert again.status_code == 200 and again.json() == body


def test_the_enterprise_disputes_and_a_reviewer_upholds_the_dispute(cast, grant, bill, as_user):
    available_before = account_balance(account_id=grant.account_id).available_fen

    disputed = dispute(as_user(cast.member), bill.pk)
    assert disputed.status_code == 200, disputed.content
    assert (disputed.json()["acknowledgement"], disputed.json()["dispute_reason"]) == (
        "disputed",
        "We never ran this job.",
    )
    upheld = resolve(as_user(cast.reviewer), bill.pk, decision="uphold", note="No usage logs.")

    assert upheld.status_code == 200, upheld.content
    body = upheld.json()
    assert (body["acknowledgement"], body["status"], body["dispute_note"]) == ("upheld", "reversed", "No usage logs.")
    assert body["dispute_resolved_at"] and body["reversed_at"]
    assert account_balance(account_id=grant.account_id).available_fen == available_before + bill.coupon_fen
    assert not ApprovalRequest.objects.exists()


def test_a_dismissed_dispute_is_settled(cast, bill, as_user):
    dispute(as_user(cast.member), bill.pk)
    finance = as_user(cast.finance)
    assert_problem(
        finance.post("/api/v1/settlements/", {"provider": cast.provider.pk}, format="json"), 409, "invalid_state"
    )

    assert resolve(as_user(cast.approver), bill.pk).json()["acknowledgement"] == "dismissed"
    settled = finance.post("/api/v1/settlements/", {"provider": cast.provider.pk}, format="json")

    assert settled.status_code == 201, settled.content
    assert (settled.json()["redemptions_count"], settled.json()["total_fen"]) == (1, bill.coupon_fen)


def test_a_settlement_leaves_out_the_bills_awaiting_the_enterprise(cast, grant, as_user):
    confirmed, awaiting = captured(cast, grant, "B-1"), captured(cast, grant, "B-2")
    acknowledge(as_user(cast.member), confirmed.pk)

    settled = as_user(cast.finance).post("/api/v1/settlements/", {"provider": cast.provider.pk}, format="json")

    assert settled.status_code == 201, settled.content
    assert (settled.json()["redemptions_count"], settled.json()["total_fen"]) == (1, confirmed.coupon_fen)
    assert Redemption.objects.get(pk=awaiting.pk).settlement_id is None


def test_another_organisations_bill_is_not_found(cast, bill, as_user, db_snapshot):
    other = make_cast()
    stranger = as_user(other.member)
    before = db_snapshot()

    assert_problem(acknowledge(stranger, bill.pk), 404, "not_found")
    assert_problem(dispute(stranger, bill.pk), 404, "not_found")
    assert_problem(resolve(as_user(other.clerk), bill.pk), 404, "not_found")
    assert_problem(acknowledge(as_user(cast.member), 999_999), 404, "not_found")
    assert db_snapshot() == before


def test_a_role_that_may_not_act_is_403(cast, bill, as_user, db_snapshot):
    before = db_snapshot()
    for user in (cast.clerk, cast.reviewer, cast.finance, cast.admin):
        assert_problem(acknowledge(as_user(user), bill.pk), 403, "permission_denied")
        assert_problem(dispute(as_user(user), bill.pk), 403, "permission_denied")
    dispute(as_user(cast.member), bill.pk)
    before = db_snapshot()
    for user in (cast.member, cast.clerk, cast.finance):
        assert_problem(resolve(as_user(user), bill.pk), 403, "permission_denied")
    assert db_snapshot() == before


def test_actions_in_the_wrong_state_are_409(cast, grant, bill, as_user, db_snapshot):
    held = redemption_create(
        grant=grant, bill_number="B-HELD", bill_amount_fen=100_000, actor=cast.clerk, **invoice(cast.clerk)
    )
    member = as_user(cast.member)
    acknowledge(member, bill.pk)
    before = db_snapshot()

    assert_problem(acknowledge(member, held.pk), 409, "invalid_state")
    assert_problem(dispute(member, held.pk), 409, "invalid_state")
    assert_problem(dispute(member, bill.pk), 409, "invalid_state")
    assert_problem(resolve(as_user(cast.reviewer), bill.pk), 409, "invalid_state")
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("dispute", {"reason": ""}, "reason"),
        ("dispute", {}, "reason"),
        ("dispute", {"reason": "x" * 2001}, "reason"),
        ("dispute", {"reason": "ok", "extra": 1}, "extra"),
        ("acknowledge", {"note": "no body here"}, "note"),
    ],
)
def test_bad_bodies_are_400(cast, bill, as_user, path, body, field):
    response = as_user(cast.member).post(f"{URL}{bill.pk}/{path}/", body, format="json")

    problem = assert_problem(response, 400, "validation_error")
    assert field in problem["errors"]
    assert Redemption.objects.get(pk=bill.pk).acknowledgement == "awaiting"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"decision": "accept", "note": "n"}, "decision"), ({"decision": "uphold", "note": ""}, "note"), ({}, "decision")],
)
def test_a_resolution_needs_a_decision_and_a_note(cast, bill, as_user, body, field):
    dispute(as_user(cast.member), bill.pk)

    response = as_user(cast.reviewer).post(f"{URL}{bill.pk}/resolve-dispute/", body, format="json")

    assert field in assert_problem(response, 400, "validation_error")["errors"]
    assert Redemption.objects.get(pk=bill.pk).acknowledgement == "disputed"


def test_actions_honour_an_idempotency_key(cast, bill, as_user):
    member = as_user(cast.member)
    first = dispute(member, bill.pk, HTTP_IDEMPOTENCY_KEY="dispute-1")
    again = dispute(member, bill.pk, HTTP_IDEMPOTENCY_KEY="dispute-1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and again["Idempotent-Replayed"] == "true"
    assert_problem(
        dispute(member, bill.pk, reason="another reason", HTTP_IDEMPOTENCY_KEY="dispute-1"),
        409,
        "idempotency_key_reused",
    )
    reviewer = as_user(cast.reviewer)
    upheld = resolve(reviewer, bill.pk, decision="uphold", HTTP_IDEMPOTENCY_KEY="resolve-1")
    replayed = resolve(reviewer, bill.pk, decision="uphold", HTTP_IDEMPOTENCY_KEY="resolve-1")
    assert upheld.status_code == replayed.status_code == 200 and replayed["Idempotent-Replayed"] == "true"
    assert Redemption.objects.get(pk=bill.pk).status == "reversed"


def test_the_list_filters_by_acknowledgement(cast, grant, as_user):
    confirmed, disputed, awaiting = (captured(cast, grant, n) for n in ("B-1", "B-2", "B-3"))
    member = as_user(cast.member)
    acknowledge(member, confirmed.pk)
    dispute(member, disputed.pk)

    def ids(client, word):
        return [r["id"] for r in client.get(f"{URL}?acknowledgement={word}").json()["results"]]

    assert ids(member, "disputed") == [disputed.pk]
    assert ids(as_user(cast.reviewer), "disputed") == [disputed.pk]
    assert ids(as_user(cast.clerk), "awaiting") == [awaiting.pk]
    assert ids(as_user(cast.finance), "confirmed") == [confirmed.pk]
    assert ids(as_user(make_cast().member), "disputed") == []
    assert as_user(cast.member).get(f"{URL}?acknowledgement=nonsense").status_code == 400


def test_a_second_member_of_the_enterprise_may_answer_too(cast, bill, as_user):
    colleague = UserFactory(enterprise=cast.enterprise)

    response = acknowledge(as_user(colleague), bill.pk)

    assert response.status_code == 200 and Redemption.objects.get(pk=bill.pk).acknowledged_by == colleague
