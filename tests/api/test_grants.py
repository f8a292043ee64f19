"""/api/v1/grants/: live balances from the ledger, scoping, filters, bounded queries, revocation."""

import pytest

from coupons.models import Grant
from coupons.services.redemptions import redemption_create
from ledger.selectors import account_balance
from tests.api.conftest import approved, assert_problem
from tests.coupons.conftest import IN_YEAR, grant_for, make_cast
from tests.evidence import invoice
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

GRANT_FIELDS = {
    "id",
    "code",
    "enterprise",
    "provider",
    "application",
    "program",
    "year",
    "amount_fen",
    "available_fen",
    "held_fen",
    "redeemed_fen",
    "status",
    "expires_at",
    "rate_bp",
}
# A page of grants, whatever its size: the token, the staff caller's roles (one query per role today),
# the count and the page with its accounts and redeemed sums. A query per row would show at once.
LIST_QUERIES_MAX = 7


def redeem(cast, grant, bill_number, bill_amount_fen, *, capture):
    return redemption_create(
        grant=grant,
        bill_number=bill_number,
        bill_amount_fen=bill_amount_fen,
        actor=cast.clerk,
        capture=capture,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )


def test_a_grant_shows_its_live_balances(cast, year, as_user):
    # given: 30,000 granted; 3,000 captured and 6,000 held
    grant = grant_for(cast, fee_fen=100_000)
    redeem(cast, grant, "B1", 10_000, capture=True)
    redeem(cast, grant, "B2", 20_000, capture=False)

    # when
    body = as_user(cast.member).get(f"/api/v1/grants/{grant.pk}/").json()

    # then
    assert set(body) == GRANT_FIELDS
    assert (body["amount_fen"], body["available_fen"], body["held_fen"], body["redeemed_fen"]) == (
        30_000,
        21_000,
        6_000,
        3_000,
    )
    assert body["available_fen"] == account_balance(account_id=grant.account_id).available_fen
    assert (body["code"], body["status"], body["rate_bp"], body["year"]) == (grant.code, "active", 3000, year.year)
    assert (body["enterprise"], body["provider"], body["application"]) == (
        cast.enterprise.pk,
        cast.provider.pk,
        grant.application_id,
    )
    assert body["expires_at"].startswith("2027-01-01T00:00:00+08:00")
    listed = as_user(cast.member).get("/api/v1/grants/").json()["results"]
    assert listed == [body]


def test_lists_are_scoped_and_filtered(cast, year, as_user):
    grant = grant_for(cast, fee_fen=100_000)
    other = make_cast()
    other_grant = grant_for(other, fee_fen=100_000)
    staff = as_user(cast.reviewer)

    assert [g["id"] for g in staff.get("/api/v1/grants/").json()["results"]] == [grant.pk, other_grant.pk]
    assert [g["id"] for g in as_user(cast.member).get("/api/v1/grants/").json()["results"]] == [grant.pk]
    assert [g["id"] for g in as_user(cast.clerk).get("/api/v1/grants/").json()["results"]] == [grant.pk]
    assert [g["id"] for g in as_user(other.clerk).get("/api/v1/grants/").json()["results"]] == [other_grant.pk]
    assert as_user(UserFactory(enterprise=EnterpriseFactory())).get("/api/v1/grants/").json()["results"] == []

    def ids(query):
        return [g["id"] for g in staff.get(f"/api/v1/grants/?{query}").json()["results"]]

    assert ids(f"enterprise={other.enterprise.pk}") == [other_grant.pk]
    assert ids(f"provider={cast.provider.pk}") == [grant.pk]
    assert ids(f"year={year.year}") == [grant.pk, other_grant.pk]
    assert ids(f"year={year.year + 1}") == []
    assert ids("status=active") == [grant.pk, other_grant.pk]
    assert ids("status=revoked") == []


@pytest.mark.parametrize("count", [1, 20])
def test_the_list_makes_a_bounded_number_of_queries(count, cast, year, as_user, django_assert_max_num_queries):
    # given: grants that each carry a captured and a held redemption
    for number in range(count):
        grant = grant_for(cast, fee_fen=10_000)
        redeem(cast, grant, f"B{number}-1", 1_000, capture=True)
        redeem(cast, grant, f"B{number}-2", 2_000, capture=False)
    client = as_user(cast.reviewer)

    # when
    with django_assert_max_num_queries(LIST_QUERIES_MAX):
        response = client.get("/api/v1/grants/?page_size=50")

    # then
    results = response.json()["results"]
    assert len(results) == count
    assert all((g["redeemed_fen"], g["held_fen"], g["available_fen"]) == (300, 600, 2_100) for g in results)


def test_another_organisations_grant_is_404(cast, year, as_user, db_snapshot):
    grant = grant_for(cast, fee_fen=100_000)
    stranger = as_user(UserFactory(enterprise=EnterpriseFactory()))
    other_clerk = as_user(UserFactory(provider=ProviderFactory()))
    before = db_snapshot()
    assert_problem(stranger.get(f"/api/v1/grants/{grant.pk}/"), 404, "not_found")
    assert_problem(other_clerk.get(f"/api/v1/grants/{grant.pk}/"), 404, "not_found")
    assert_problem(
        stranger.post(f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "x"}, format="json"), 404, "not_found"
    )
    assert_problem(as_user(cast.reviewer).get("/api/v1/grants/999999/"), 404, "not_found")
    assert db_snapshot() == before


def test_no_credentials_is_401(cast, year, anonymous):
    grant = grant_for(cast, fee_fen=100_000)
    assert_problem(anonymous.get("/api/v1/grants/"), 401, "not_authenticated")
    assert_problem(anonymous.get(f"/api/v1/grants/{grant.pk}/"), 401, "not_authenticated")
    assert_problem(
        anonymous.post(f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "x"}, format="json"), 401, "not_authenticated"
    )


def test_a_revocation_asked_by_one_approver_is_done_when_another_approves(cast, year, as_user, db_snapshot):
    # given: 30,000 granted, 3,000 captured, 6,000 held
    grant = grant_for(cast, fee_fen=100_000)
    redeem(cast, grant, "B1", 10_000, capture=True)
    redeem(cast, grant, "B2", 20_000, capture=False)

    # when: one approver asks
    asked = as_user(cast.approver).post(
        f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "The contract was cancelled."}, format="json"
    )

    # then: a pending request, and the grant untouched
    assert asked.status_code == 202, asked.content
    request = asked.json()
    assert (request["action"], request["target"], request["status"]) == ("grant_revoke", f"grant:{grant.pk}", "pending")
    assert request["requested_by"] == cast.approver.pk and request["decided_by"] is None
    assert Grant.objects.get(pk=grant.pk).status == "active"

    # when: a different approver approves
    approved(asked, as_user(cast.approver2))

    # then: the hold is voided and the unused 27,000 goes back; the captured coupon stands
    body = as_user(cast.approver).get(f"/api/v1/grants/{grant.pk}/").json()
    assert set(body) == GRANT_FIELDS
    assert (body["status"], body["available_fen"], body["held_fen"], body["redeemed_fen"]) == ("revoked", 0, 0, 3_000)
    grant.refresh_from_db()
    assert (grant.status, grant.revoked_fen) == ("revoked", 27_000)
    assert (grant.revocation_requested_by, grant.revoked_by) == (cast.approver, cast.approver2)
    assert account_balance(account_id=grant.account_id).available_fen == 0


def test_revoking_twice_is_409(cast, year, as_user, db_snapshot):
    grant = grant_for(cast, fee_fen=100_000)
    approver = as_user(cast.approver)
    approver.post(f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "once"}, format="json")
    before = db_snapshot()
    assert_problem(
        approver.post(f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "twice"}, format="json"), 409, "invalid_state"
    )
    assert db_snapshot() == before


def test_revoke_honours_an_idempotency_key(cast, year, as_user):
    grant = grant_for(cast, fee_fen=100_000)
    approver = as_user(cast.approver)
    url = f"/api/v1/grants/{grant.pk}/revoke/"
    first = approver.post(url, {"reason": "once"}, format="json", HTTP_IDEMPOTENCY_KEY="rv-1")
    again = approver.post(url, {"reason": "once"}, format="json", HTTP_IDEMPOTENCY_KEY="rv-1")
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() and again["Idempotent-Replayed"] == "true"
    assert_problem(
        approver.post(url, {"reason": "other"}, format="json", HTTP_IDEMPOTENCY_KEY="rv-1"),
        409,
        "idempotency_key_reused",
    )


@pytest.mark.parametrize("role", ["finance", "member", "clerk"])
def test_a_role_that_may_not_revoke_is_403(role, cast, year, as_user, db_snapshot):
    grant = grant_for(cast, fee_fen=100_000)
    before = db_snapshot()
    assert_problem(
        as_user(getattr(cast, role)).post(f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "x"}, format="json"),
        403,
        "permission_denied",
    )
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": 5}, "reason"),
        ({"reason": None}, "reason"),
        ({"reason": "x" * 2_001}, "reason"),
        ({"reason": "x", "status": "active"}, "status"),
        ({"reason": "x", "available_fen": 1}, "available_fen"),
    ],
)
def test_bad_revoke_input_is_400_and_writes_nothing(body, field, cast, year, as_user, db_snapshot):
    grant = grant_for(cast, fee_fen=100_000)
    before = db_snapshot()
    problem = assert_problem(
        as_user(cast.approver).post(f"/api/v1/grants/{grant.pk}/revoke/", body, format="json"),
        400,
        "validation_error",
    )
    assert field in problem["errors"], problem
    assert db_snapshot() == before
    assert Grant.objects.get(pk=grant.pk).status == "active"
