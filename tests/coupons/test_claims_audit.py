"""The audit over enterprise reimbursement: claims in every state pass every check, and tampering with
a claim, its ledger transfers or the enterprise's account is caught."""

import pytest

from approvals.services import approval_request_approve
from coupons.services.audit import audit_execute, audit_run_create
from coupons.services.claims import claim_approve, claim_reject, settlement_create_for_enterprise
from coupons.services.settlements import settlement_pay_request
from ledger.chain import ledger_seal
from tests.claims import claim, grant_in, open_reimbursement_year
from tests.coupons.test_audit import failed_checks, tamper
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def program(cast):
    """A reimbursement year with a submitted, a rejected, an approved and a paid claim, sealed."""
    open_reimbursement_year(cast.admin)
    grant = grant_in(cast)
    paid = claim_approve(claim=claim(cast, grant, 100_000), actor=cast.reviewer)
    settlement = settlement_create_for_enterprise(enterprise=cast.enterprise, actor=cast.finance)
    asked = settlement_pay_request(settlement=settlement, requester=cast.finance, bank_reference="B1")
    approval_request_approve(request_id=asked.pk, decider=UserFactory(roles=["finance"]))
    approved = claim_approve(claim=claim(cast, grant, 50_000), actor=cast.reviewer)
    claim_reject(claim=claim(cast, grant, 20_000), actor=cast.reviewer, reason="no bank slip")
    submitted = claim(cast, grant, 10_000, invoice_number="24332000000099999999")
    ledger_seal()
    return {"paid": paid, "approved": approved, "submitted": submitted}


def audit():
    return audit_execute(run_id=audit_run_create().pk)


def test_claims_in_every_state_pass_every_check(program):
    run = audit()
    assert run.status == "passed", [c for c in run.checks if not c["ok"]]
    examined = {c["name"]: c["details"]["examined"] for c in run.checks}
    assert examined["claims_match_ledger"] == 4


TAMPERING = {
    "a claim's coupon changed": (
        ["UPDATE coupons_claim SET coupon_fen = coupon_fen - 1 WHERE status = 'approved'"],
        {"claims_match_ledger", "grants_match_ledger"},
    ),
    "a submitted claim marked approved": (
        ["UPDATE coupons_claim SET status = 'approved' WHERE status = 'submitted'"],
        {"claims_match_ledger", "grants_match_ledger", "pool_figures_match_rows"},
    ),
    "a rejected claim marked approved": (
        ["UPDATE coupons_claim SET status = 'approved' WHERE status = 'rejected'"],
        {"claims_match_ledger"},
    ),
    "money put in an enterprise's account": (
        ["UPDATE ledger_account SET credits_posted = credits_posted + 100 WHERE code LIKE 'enterprise:%%'"],
        {"claims_match_ledger", "account_totals_equal_transfers"},
    ),
    "an approval transfer's amount changed": (
        [
            "UPDATE ledger_transfer SET amount_fen = amount_fen + 1 WHERE key LIKE 'claim:%%:approve' AND id = "
            "(SELECT min(id) FROM ledger_transfer WHERE key LIKE 'claim:%%:approve')"
        ],
        {"claims_match_ledger", "hash_chain_intact"},
    ),
    "a claim's bill past the contract fee": (
        ["UPDATE coupons_claim SET bill_amount_fen = 2000000 WHERE status = 'submitted'"],
        {"contract_bills_within_fee"},
    ),
    "a paid settlement's claim left unpaid": (
        ["UPDATE coupons_claim SET status = 'approved' WHERE status = 'paid'"],
        {"settlements_match_ledger", "claims_match_ledger"},
    ),
    "an enterprise settlement's total changed": (
        ["UPDATE coupons_settlement SET total_fen = total_fen + 1 WHERE enterprise_id IS NOT NULL"],
        {"settlements_match_ledger"},
    ),
}


@pytest.mark.parametrize("kind", list(TAMPERING), ids=list(TAMPERING))
def test_tampering_with_claims_is_detected(kind, program):
    statements, expected = TAMPERING[kind]
    tamper(*statements)
    run = audit()
    assert run.status == "failed"
    assert expected <= failed_checks(run), (kind, failed_checks(run))
