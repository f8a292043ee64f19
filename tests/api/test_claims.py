"""/api/v1/claims/: an enterprise claims for a bill it paid in full, a reviewer approves or rejects,
finance settles the enterprise and pays it (enterprise reimbursement); scoping and idempotency."""

import itertools

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Role
from coupons import books
from coupons.models import Claim
from coupons.services.claims import claim_approve
from ledger.selectors import account_balance, account_get
from tests.api.conftest import approved, assert_problem
from tests.claims import claim, grant_in, open_reimbursement_year
from tests.coupons.conftest import YEAR, grant_for, open_year
from tests.evidence import document, invoice_number, pdf_bytes
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/claims/"
CLAIM_FIELDS = {
    "id",
    "grant",
    "status",
    "bill_amount_fen",
    "requested_fen",
    "coupon_fen",
    "invoice_number",
    "invoice_document",
    "payment_proof_document",
    "created_at",
    "decided_by",
    "decided_at",
    "reason",
    "settlement",
}
_keys = itertools.count(1)


def fresh_key() -> str:
    return f"claim-key-{next(_keys)}"


@pytest.fixture
def year(cast):
    return open_reimbursement_year(cast.admin)


@pytest.fixture
def grant(cast, year):
    return grant_in(cast)


def body(cast, grant, bill_amount_fen=100_000, **extra):
    return {
        "grant": grant.pk,
        "invoice_number": invoice_number(),
        "invoice_document": document(cast.member, "invoice").pk,
        "payment_proof_document": document(cast.member, "payment_proof").pk,
        "bill_amount_fen": bill_amount_fen,
        **extra,
    }


def post(client, data, key=None):
    return client.post(URL, data, format="json", HTTP_IDEMPOTENCY_KEY=fresh_key() if key is None else key)


def test_an_enterprise_claims_with_documents_it_uploaded(cast, grant, as_user):
    member = as_user(cast.member)
    uploaded = {}
    for kind, name in (("invoice", "invoice.pdf"), ("payment_proof", "bank-slip.pdf")):
        response = member.post(
            "/api/v1/documents/",
            {"kind": kind, "file": SimpleUploadedFile(name, pdf_bytes(kind), content_type="application/pdf")},
            format="multipart",
        )
        assert response.status_code == 201, response.content
        uploaded[kind] = response.json()["id"]

    response = post(
        member,
        {
            "grant": grant.pk,
            "invoice_number": "2433 2000 0000 1234 5678",
            "invoice_document": uploaded["invoice"],
            "payment_proof_document": uploaded["payment_proof"],
            "bill_amount_fen": 100_001,
            "requested_fen": 50_000,
        },
    )

    assert response.status_code == 201, response.content
    claimed = response.json()
    assert set(claimed) == CLAIM_FIELDS
    assert (claimed["status"], claimed["coupon_fen"], claimed["invoice_number"]) == (
        "submitted",
        30_000,
        "24332000000012345678",
    )
    assert (claimed["decided_by"], claimed["reason"], claimed["settlement"]) == (None, "", None)
    # The center sees the claim on its grant, and the enterprise's proof of payment with it.
    clerk = as_user(cast.clerk)
    assert clerk.get(f"{URL}{claimed['id']}/").status_code == 200
    assert clerk.get(f"/api/v1/documents/{uploaded['payment_proof']}/content/").status_code == 200
    grant_read = member.get(f"/api/v1/grants/{grant.pk}/").json()
    assert (grant_read["available_fen"], grant_read["held_fen"]) == (270_000, 30_000)


def test_the_idempotency_key_is_required_and_replays(cast, grant, as_user):
    member = as_user(cast.member)
    data = body(cast, grant)
    assert_problem(member.post(URL, data, format="json"), 400, "idempotency_key_required")
    first = post(member, data, key="k-1")
    again = post(member, data, key="k-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json() and again["Idempotent-Replayed"] == "true"
    assert Claim.objects.count() == 1
    assert_problem(post(member, {**data, "bill_amount_fen": 5}, key="k-1"), 409, "idempotency_key_reused")


def test_refusals_are_problem_details(cast, grant, as_user):
    member = as_user(cast.member)
    assert_problem(post(member, body(cast, grant, invoice_number="12345")), 400, "invalid_invoice_number")
    used = body(cast, grant)
    assert post(member, used).status_code == 201
    again = {**body(cast, grant), "invoice_number": used["invoice_number"]}
    assert_problem(post(member, again), 409, "duplicate_invoice")
    assert_problem(post(member, body(cast, grant, 1_000_001)), 409, "contract_exceeded")
    wrong_kind = {**body(cast, grant), "payment_proof_document": document(cast.member, "invoice").pk}
    assert_problem(post(member, wrong_kind), 404, "not_found")  # No proof of payment of that id.
    assert_problem(post(member, {**body(cast, grant), "extra": 1}), 400, "validation_error")
    assert Claim.objects.count() == 1


def test_a_provider_deduction_year_refuses_claims_and_a_reimbursement_year_redemptions(cast, as_user):
    open_year(cast.admin)
    grant = grant_for(cast)
    problem = assert_problem(post(as_user(cast.member), body(cast, grant)), 409, "invalid_state")
    assert problem["reason"] == "redemption_mode"


def test_a_reimbursement_year_refuses_redemptions(cast, grant, as_user):
    response = as_user(cast.clerk).post(
        "/api/v1/redemptions/",
        {
            "grant": grant.pk,
            "bill_number": "B1",
            "bill_amount_fen": 10_000,
            "invoice_number": invoice_number(),
            "invoice_document": document(cast.clerk, "invoice").pk,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=fresh_key(),
    )
    assert assert_problem(response, 409, "invalid_state")["reason"] == "redemption_mode"
    assert account_balance(account_id=grant.account_id).available_fen == 300_000


def test_only_the_grants_enterprise_claims(cast, grant, as_user):
    assert_problem(post(as_user(cast.clerk), body(cast, grant)), 403, "permission_denied")
    assert_problem(post(as_user(cast.reviewer), body(cast, grant)), 403, "permission_denied")
    stranger = UserFactory(enterprise=EnterpriseFactory())
    data = {**body(cast, grant)}
    data["invoice_document"] = document(stranger, "invoice").pk
    data["payment_proof_document"] = document(stranger, "payment_proof").pk
    assert_problem(post(as_user(stranger), data), 404, "not_found")  # Another enterprise's grant.
    assert not Claim.objects.exists()


def test_claims_are_scoped(cast, grant, as_user):
    made = claim(cast, grant, 100_000)
    url = f"{URL}{made.pk}/"
    for user in (cast.member, cast.clerk, cast.reviewer, cast.finance):
        client = as_user(user)
        assert client.get(url).status_code == 200
        assert [c["id"] for c in client.get(URL).json()["results"]] == [made.pk]
    for stranger in (UserFactory(enterprise=EnterpriseFactory()), UserFactory(provider=ProviderFactory())):
        client = as_user(stranger)
        assert_problem(client.get(url), 404, "not_found")
        assert client.get(URL).json()["results"] == []
        assert_problem(client.post(f"{url}approve/", {}, format="json"), 404, "not_found")
        assert_problem(client.post(f"{url}reject/", {"reason": "x"}, format="json"), 404, "not_found")
    assert as_user(cast.reviewer).get(URL, {"status": "approved"}).json()["results"] == []


def test_a_reviewer_approves_and_the_claimant_may_not(cast, grant, as_user):
    made = claim(cast, grant, 100_000)
    url = f"{URL}{made.pk}/approve/"
    for user in (cast.member, cast.clerk, cast.finance, cast.approver):
        assert_problem(as_user(user).post(url, {}, format="json"), 403, "permission_denied")

    response = as_user(cast.reviewer).post(url, {"reason": "Invoice and slip match."}, format="json")

    assert response.status_code == 200, response.content
    decided = response.json()
    assert (decided["status"], decided["decided_by"], decided["reason"]) == (
        "approved",
        cast.reviewer.pk,
        "Invoice and slip match.",
    )
    assert_problem(as_user(cast.reviewer).post(url, {}, format="json"), 409, "invalid_state")
    assert as_user(cast.member).get(f"/api/v1/grants/{grant.pk}/").json()["redeemed_fen"] == 30_000


def test_a_rejection_needs_its_reason(cast, grant, as_user):
    made = claim(cast, grant, 100_000)
    reviewer = as_user(cast.reviewer)
    url = f"{URL}{made.pk}/reject/"
    assert_problem(reviewer.post(url, {}, format="json"), 400, "validation_error")
    response = reviewer.post(url, {"reason": "No bank slip."}, format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["reason"]) == ("rejected", "No bank slip.")


def test_finance_settles_an_enterprise_and_pays_it_with_two_people(cast, grant, as_user):
    first = claim_approve(claim=claim(cast, grant, 100_000), actor=cast.reviewer)
    second = claim_approve(claim=claim(cast, grant, 50_000), actor=cast.reviewer)
    finance = as_user(cast.finance)

    created = finance.post("/api/v1/settlements/", {"enterprise": cast.enterprise.pk}, format="json")

    assert created.status_code == 201, created.content
    settlement = created.json()
    assert (settlement["enterprise"], settlement["provider"], settlement["total_fen"]) == (
        cast.enterprise.pk,
        None,
        45_000,
    )
    assert (settlement["claims_count"], settlement["redemptions_count"], settlement["status"]) == (2, 0, "open")
    assert as_user(cast.member).get(f"{URL}{first.pk}/").json()["settlement"] == settlement["id"]
    lines = finance.get(f"/api/v1/settlements/{settlement['id']}/lines.csv")
    assert lines.status_code == 200 and lines.content.decode().count("\r\n") == 4  # header, 2 claims, total

    asked = finance.post(f"/api/v1/settlements/{settlement['id']}/pay/", {"bank_reference": "ICBC-42"}, format="json")
    approved(asked, as_user(UserFactory(roles=[Role.FINANCE])))

    member = as_user(cast.member)
    assert {member.get(f"{URL}{c.pk}/").json()["status"] for c in (first, second)} == {"paid"}
    # The enterprise reads the settlement that paid it; another enterprise does not.
    paid = member.get(f"/api/v1/settlements/{settlement['id']}/").json()
    assert (paid["status"], paid["bank_reference"]) == ("paid", "ICBC-42")
    stranger = as_user(UserFactory(enterprise=EnterpriseFactory()))
    assert_problem(stranger.get(f"/api/v1/settlements/{settlement['id']}/"), 404, "not_found")
    disbursed = account_balance(account_id=account_get(code=books.disbursed_code(YEAR)).pk)
    assert disbursed.credits_posted == 45_000
    assert finance.get("/api/v1/settlements/", {"year": YEAR}).json()["results"][0]["id"] == settlement["id"]
    assert len(finance.get("/api/v1/settlements/", {"enterprise": cast.enterprise.pk}).json()["results"]) == 1


@pytest.mark.parametrize(
    "data",
    [{}, {"provider": 1, "enterprise": 1}],
    ids=["neither payee", "both payees"],
)
def test_a_settlement_names_exactly_one_payee(cast, grant, as_user, data):
    assert_problem(as_user(cast.finance).post("/api/v1/settlements/", data, format="json"), 400, "validation_error")


def test_an_enterprise_with_nothing_approved_has_nothing_to_settle(cast, grant, as_user):
    claim(cast, grant, 100_000)  # Submitted only.
    finance = as_user(cast.finance)
    response = finance.post("/api/v1/settlements/", {"enterprise": cast.enterprise.pk}, format="json")
    assert_problem(response, 409, "invalid_state")
    assert_problem(finance.post("/api/v1/settlements/", {"enterprise": 999_999}, format="json"), 404, "not_found")
    assert_problem(
        as_user(cast.reviewer).post("/api/v1/settlements/", {"enterprise": cast.enterprise.pk}, format="json"),
        403,
        "permission_denied",
    )


def test_pool_figures_and_breakdowns_count_approved_claims(cast, grant, as_user):
    claim_approve(claim=claim(cast, grant, 100_000), actor=cast.reviewer)
    claim(cast, grant, 50_000)  # Submitted: held, not redeemed.
    stats = as_user(cast.reviewer).get("/api/v1/stats/pool/", {"year": YEAR}).json()
    assert (stats["held_fen"], stats["redeemed_fen"]) == (15_000, 30_000)
    assert [row["redeemed_fen"] for row in stats["by_provider"]] == [30_000]
    assert [row["redeemed_fen"] for row in stats["by_compute_source"]] == [30_000]
