"""Claims (enterprise reimbursement, 事后兑现): submitted against a grant with the invoice and proof
of payment, held on the grant, approved or rejected by a reviewer, settled and paid to the enterprise.
Every figure is checked to the fen in the ledger and against the rows."""

import csv
import datetime as dt
import io

import pytest

from accounts.models import Enterprise, Role
from config.errors import InvalidState, PermissionDenied, ValidationFailed
from coupons import books
from coupons.errors import (
    ContractExceeded,
    DuplicateInvoice,
    EnterpriseNotVerified,
    FourEyes,
    GrantExhausted,
    GrantExpired,
    GrantRevoked,
)
from coupons.invoices import InvalidInvoiceNumber
from coupons.models import Claim, Invoice, Settlement
from coupons.selectors import grant_figures, program_year_figures, program_year_figures_from_rows, settlement_lines_csv
from coupons.services.claims import claim_approve, claim_reject, claim_submit, settlement_create_for_enterprise
from coupons.services.grants import grant_expire
from coupons.services.redemptions import redemption_create
from coupons.services.settlements import settlement_create
from evidence.selectors import citations_of, documents_visible_to
from ledger.errors import AccountNotFound
from ledger.selectors import account_balance, account_get
from ledger.services import pending_transfers_expire
from tests.claims import claim, evidence, grant_in, open_reimbursement_year
from tests.controls import grant_revoke, settlement_pay
from tests.coupons.conftest import IN_YEAR, YEAR, grant_for, open_year
from tests.evidence import document, invoice
from tests.factories import EnterpriseFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def year(cast):
    return open_reimbursement_year(cast.admin)


@pytest.fixture
def grant(cast, year):
    return grant_in(cast)  # 300,000 fen at 30% of a 1,000,000 fen contract


def balance(code: str):
    return account_balance(account_id=account_get(code=code).pk)


def enterprise_account(cast):
    return balance(books.enterprise_code(cast.enterprise.pk))


def assert_figures_reconcile() -> None:
    assert program_year_figures(year=YEAR) == program_year_figures_from_rows(year=YEAR)


# --- Submit -------------------------------------------------------------------------------------


def test_a_claim_holds_its_coupon_on_the_grant(cast, grant):
    made = claim(cast, grant, 100_001)

    assert (made.status, made.coupon_fen, made.rate_bp) == ("submitted", 30_000, 3000)  # floor(100,001 × 30%)
    assert made.enterprise_id == cast.enterprise.pk and made.created_by_id == cast.member.pk
    # The grant's available balance drops at once, held for the enterprise.
    assert balance(grant.account.code).available_fen == 300_000 - 30_000
    assert balance(grant.account.code).debits_pending == 30_000
    assert (enterprise_account(cast).credits_pending, enterprise_account(cast).credits_posted) == (30_000, 0)
    assert program_year_figures(year=YEAR).held_fen == 30_000
    assert_figures_reconcile()
    # The invoice is in the register, used by this claim.
    use = Invoice.objects.get(claim=made)
    assert (use.number, use.amount_fen, use.released_at) == (made.invoice_number, 100_001, None)
    # Both documents are cited, readable by the enterprise and the center, by nobody else.
    citations = list(citations_of(f"claim:{made.pk}"))
    assert sorted(c.role for c in citations) == ["invoice", "payment_proof"]
    assert all(
        c.parties == sorted([f"enterprise:{cast.enterprise.pk}", f"provider:{cast.provider.pk}"]) for c in citations
    )
    assert documents_visible_to(cast.clerk).filter(pk=made.payment_proof_document_id).exists()
    outsider = UserFactory(enterprise=EnterpriseFactory())
    assert not documents_visible_to(outsider).filter(pk=made.payment_proof_document_id).exists()


def test_the_coupon_is_the_least_of_rate_balance_and_request(cast, year):
    grant = grant_in(cast, amount_fen=100_000)
    assert claim(cast, grant, 100_000, requested_fen=12_345).coupon_fen == 12_345
    assert claim(cast, grant, 800_000).coupon_fen == 100_000 - 12_345  # By rate 240,000; the rest of the grant.
    with pytest.raises(GrantExhausted):
        claim(cast, grant, 10_000)
    assert balance(grant.account.code).available_fen == 0
    assert_figures_reconcile()


def test_a_claims_bill_counts_against_the_contract_fee(cast, grant):
    claim(cast, grant, 600_000)
    with pytest.raises(ContractExceeded) as refused:
        claim(cast, grant, 400_001)
    assert refused.value.extra["remaining_fen"] == 400_000
    assert claim(cast, grant, 400_000).status == "submitted"


def test_a_rejected_claims_bill_no_longer_counts(cast, grant):
    rejected = claim(cast, grant, 1_000_000)
    claim_reject(claim=rejected, actor=cast.reviewer, reason="The invoice names another buyer.")
    assert claim(cast, grant, 1_000_000).coupon_fen == 300_000


def test_the_invoice_number_is_checked_and_normalised(cast, grant):
    with pytest.raises(InvalidInvoiceNumber):
        claim(cast, grant, 10_000, invoice_number="12345")
    made = claim(cast, grant, 10_000, invoice_number="033002100611 / 12345678")
    assert made.invoice_number == "033002100611-12345678"


def test_an_invoice_is_claimed_once(cast, grant):
    made = claim(cast, grant, 10_000)
    with pytest.raises(DuplicateInvoice):
        claim(cast, grant, 20_000, invoice_number=made.invoice_number)
    assert Claim.objects.count() == 1
    assert balance(grant.account.code).debits_pending == made.coupon_fen  # The refused one held nothing.


def test_the_documents_must_be_the_enterprises_own_of_the_right_kind(cast, grant):
    other = UserFactory(enterprise=EnterpriseFactory())
    with pytest.raises(ValidationFailed) as refused:
        claim(cast, grant, 10_000, invoice_document=document(other, "invoice"))
    assert "invoice_document" in refused.value.errors
    with pytest.raises(ValidationFailed) as refused:
        claim(cast, grant, 10_000, payment_proof_document=document(cast.member, "invoice"))
    assert "payment_proof_document" in refused.value.errors
    with pytest.raises(ValidationFailed):
        claim(cast, grant, 10_000, invoice_document=document(cast.clerk, "invoice"))  # The center's upload.
    assert not Claim.objects.exists()


@pytest.mark.parametrize("bill", [0, -1, 10**13 + 1, "100", True, 1.5])
def test_a_bill_amount_is_whole_fen_in_range(cast, grant, bill):
    with pytest.raises(ValidationFailed):
        claim(cast, grant, bill)


def test_only_a_member_of_the_grants_enterprise_claims(cast, grant):
    with pytest.raises(PermissionDenied):
        claim(cast, grant, 10_000, actor=cast.clerk)  # The computing center.
    with pytest.raises(PermissionDenied):
        claim(cast, grant, 10_000, actor=UserFactory(enterprise=EnterpriseFactory()))
    with pytest.raises(PermissionDenied):
        claim(cast, grant, 10_000, actor=cast.reviewer)
    assert not Claim.objects.exists()


def test_a_suspended_enterprise_does_not_claim(cast, grant):
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(status=Enterprise.Status.SUSPENDED)
    with pytest.raises(EnterpriseNotVerified):
        claim(cast, grant, 10_000)


def test_an_expired_or_revoked_grant_takes_no_claim(cast, grant):
    with pytest.raises(GrantExpired):
        claim(cast, grant, 10_000, now=grant.expires_at)
    grant_revoke(grant=grant, actor=cast.approver, reason="cancelled")
    with pytest.raises(GrantRevoked):
        claim(cast, grant, 10_000)


def test_a_provider_deduction_year_takes_no_claim(cast):
    open_year(cast.admin)
    grant = grant_for(cast)
    with pytest.raises(InvalidState) as refused:
        claim(cast, grant, 10_000)
    assert refused.value.extra["reason"] == "redemption_mode"
    assert not Claim.objects.exists() and not Invoice.objects.exists()


def test_a_reimbursement_year_takes_no_redemption(cast, grant):
    with pytest.raises(InvalidState) as refused:
        redemption_create(
            grant=grant, bill_number="B1", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
        )
    assert refused.value.extra["reason"] == "redemption_mode"
    assert balance(grant.account.code).available_fen == 300_000


# --- Decide -------------------------------------------------------------------------------------


def test_approval_posts_the_coupon_to_the_enterprise(cast, grant):
    made = claim(cast, grant, 100_000)

    approved = claim_approve(claim=made, actor=cast.reviewer, reason="Invoice and bank slip match.")

    assert (approved.status, approved.decided_by_id, approved.decision_reason) == (
        "approved",
        cast.reviewer.pk,
        "Invoice and bank slip match.",
    )
    assert approved.decided_at is not None
    account = enterprise_account(cast)
    assert (account.credits_pending, account.credits_posted, account.debits_posted) == (0, 30_000, 0)
    grant_account = balance(grant.account.code)
    assert (grant_account.debits_pending, grant_account.debits_posted) == (0, 30_000)
    assert grant_figures(grant)["redeemed_fen"] == 30_000
    figures = program_year_figures(year=YEAR)
    assert (figures.held_fen, figures.redeemed_fen, figures.settled_fen) == (0, 30_000, 0)
    assert_figures_reconcile()


def test_rejection_releases_the_hold_and_the_invoice(cast, grant):
    made = claim(cast, grant, 100_000)

    rejected = claim_reject(claim=made, actor=cast.reviewer, reason="No bank slip.")

    assert (rejected.status, rejected.decision_reason) == ("rejected", "No bank slip.")
    assert balance(grant.account.code).available_fen == 300_000
    assert (enterprise_account(cast).credits_pending, enterprise_account(cast).credits_posted) == (0, 0)
    assert Invoice.objects.get(claim=made).released_at is not None
    again = claim(cast, grant, 100_000, invoice_number=made.invoice_number)  # The invoice is free again.
    assert again.status == "submitted"
    assert_figures_reconcile()


def test_a_rejection_needs_a_reason(cast, grant):
    made = claim(cast, grant, 100_000)
    with pytest.raises(ValidationFailed):
        claim_reject(claim=made, actor=cast.reviewer, reason="  ")
    assert Claim.objects.get(pk=made.pk).status == "submitted"


def test_only_a_reviewer_decides_and_never_the_claimant(cast, grant):
    made = claim(cast, grant, 100_000)
    for outsider in (cast.member, cast.clerk, cast.approver, cast.finance):
        with pytest.raises(PermissionDenied):
            claim_approve(claim=made, actor=outsider)
    # A reviewer who is somehow also the claimant is refused by the service and by the database.
    made.created_by = cast.reviewer
    with pytest.raises(FourEyes):
        claim_approve(claim=made, actor=cast.reviewer)
    assert Claim.objects.get(pk=made.pk).status == "submitted"


def test_only_a_submitted_claim_is_decided(cast, grant):
    made = claim(cast, grant, 100_000)
    claim_approve(claim=made, actor=cast.reviewer)
    with pytest.raises(InvalidState):
        claim_approve(claim=made, actor=cast.reviewer)
    with pytest.raises(InvalidState):
        claim_reject(claim=made, actor=cast.reviewer, reason="late")
    assert enterprise_account(cast).credits_posted == 30_000  # Posted once.


def test_a_claim_on_a_grant_past_expiry_is_not_approved(cast, grant):
    made = claim(cast, grant, 100_000)
    with pytest.raises(GrantExpired):
        claim_approve(claim=made, actor=cast.reviewer, now=grant.expires_at)
    assert enterprise_account(cast).credits_posted == 0


def test_expiry_releases_submitted_claims_and_lapses_the_rest(cast, grant):
    approved = claim_approve(claim=claim(cast, grant, 100_000), actor=cast.reviewer)
    submitted = claim(cast, grant, 200_000)

    lapsed_fen = grant_expire(grant_id=grant.pk, now=grant.expires_at)

    assert lapsed_fen == 300_000 - approved.coupon_fen  # The released hold lapses with the rest.
    submitted.refresh_from_db()
    assert (submitted.status, submitted.decided_by_id, submitted.decision_reason) == ("rejected", None, "grant_expired")
    assert Invoice.objects.get(claim=submitted).released_at is not None
    assert balance(grant.account.code).debits_pending == 0
    assert Claim.objects.get(pk=approved.pk).status == "approved"  # Approved stands, and is still paid.
    assert_figures_reconcile()


def test_revocation_releases_submitted_claims(cast, grant):
    submitted = claim(cast, grant, 200_000)
    grant_revoke(grant=grant, actor=cast.approver, reason="cancelled")
    submitted.refresh_from_db()
    assert (submitted.status, submitted.decision_reason) == ("rejected", "grant_revoked")
    assert balance(books.pool_code(YEAR)).credits_posted == 1_000_000 + 300_000  # All of it back to the pool.
    with pytest.raises(InvalidState):
        claim_approve(claim=submitted, actor=cast.reviewer)
    assert_figures_reconcile()


def test_a_lapsed_hold_is_refused_on_approval_and_rejected_cleanly(cast, grant):
    made = claim(cast, grant, 100_000)
    hold_expiry = made.hold_transfer.expires_at
    assert hold_expiry - IN_YEAR == dt.timedelta(days=400)  # The ledger's longest timeout.
    assert pending_transfers_expire(now=hold_expiry) == 1

    with pytest.raises(InvalidState) as refused:
        claim_approve(claim=made, actor=cast.reviewer, now=IN_YEAR)
    assert refused.value.extra["reason"] == "hold_expired"
    rejected = claim_reject(claim=made, actor=cast.reviewer, reason="The hold lapsed.")
    assert rejected.status == "rejected" and Invoice.objects.get(claim=made).released_at is not None
    assert balance(grant.account.code).available_fen == 300_000


# --- Settle and pay -----------------------------------------------------------------------------


def test_an_enterprise_settlement_pays_its_approved_claims(cast, grant):
    first = claim_approve(claim=claim(cast, grant, 100_000), actor=cast.reviewer)
    second = claim_approve(claim=claim(cast, grant, 50_001), actor=cast.reviewer)
    claim(cast, grant, 10_000)  # Submitted, not approved: not settled.

    settlement = settlement_create_for_enterprise(enterprise=cast.enterprise, actor=cast.finance)

    assert (settlement.enterprise_id, settlement.provider_id, settlement.status) == (cast.enterprise.pk, None, "open")
    assert (settlement.total_fen, settlement.redemptions_count) == (30_000 + 15_000, 0)
    assert set(settlement.claims.values_list("pk", flat=True)) == {first.pk, second.pk}
    assert program_year_figures(year=YEAR).settled_fen == 0

    paid = settlement_pay(settlement=settlement, actor=cast.finance, bank_reference="ICBC-2026-0042")

    assert (paid.status, paid.bank_reference) == ("paid", "ICBC-2026-0042")
    assert paid.paid_by_id not in (paid.created_by_id, paid.payment_requested_by_id)
    assert set(Claim.objects.filter(settlement=paid).values_list("status", flat=True)) == {"paid"}
    account = enterprise_account(cast)
    assert (account.credits_posted, account.debits_posted, account.credits_pending) == (45_000, 45_000, 3_000)
    assert balance(books.disbursed_code(YEAR)).credits_posted == 45_000
    figures = program_year_figures(year=YEAR)
    assert (figures.held_fen, figures.redeemed_fen, figures.settled_fen) == (3_000, 45_000, 45_000)
    assert_figures_reconcile()
    lines = list(csv.reader(io.StringIO(settlement_lines_csv(paid))))
    assert [(row[1], row[2], row[8]) for row in lines[1:]] == [
        ("claim", str(first.pk), "30000"),
        ("claim", str(second.pk), "15000"),
        ("total", "", "45000"),
    ]


def test_a_claim_is_settled_at_most_once(cast, grant):
    claim_approve(claim=claim(cast, grant, 100_000), actor=cast.reviewer)
    settlement_create_for_enterprise(enterprise=cast.enterprise, actor=cast.finance)
    with pytest.raises(InvalidState):
        settlement_create_for_enterprise(enterprise=cast.enterprise, actor=cast.finance)
    assert Settlement.objects.count() == 1


def test_only_finance_settles_and_a_provider_settlement_takes_no_claim(cast, grant):
    claim_approve(claim=claim(cast, grant, 100_000), actor=cast.reviewer)
    with pytest.raises(PermissionDenied):
        settlement_create_for_enterprise(enterprise=cast.enterprise, actor=cast.reviewer)
    with pytest.raises(InvalidState):  # The center has nothing to settle: the fund pays the enterprise.
        settlement_create(provider=cast.provider, actor=cast.finance)
    assert not Settlement.objects.exists()


def test_the_payer_of_an_enterprise_settlement_is_a_third_finance_user(cast, grant):
    from coupons.services.settlements import settlement_pay as pay

    claim_approve(claim=claim(cast, grant, 100_000), actor=cast.reviewer)
    settlement = settlement_create_for_enterprise(enterprise=cast.enterprise, actor=cast.finance)
    other = UserFactory(roles=[Role.FINANCE])
    with pytest.raises(FourEyes):
        pay(settlement=settlement, actor=cast.finance, requested_by=other, bank_reference="B1")
    assert enterprise_account(cast).debits_posted == 0


def test_claims_of_several_grants_settle_together(cast, year):
    grants = [grant_in(cast, fee_fen=400_000), grant_in(cast, fee_fen=400_000)]  # 120,000 fen each
    for g in grants:
        claim_approve(claim=claim(cast, g, 400_000), actor=cast.reviewer)
    settlement = settlement_create_for_enterprise(enterprise=cast.enterprise, actor=cast.finance)
    assert settlement.total_fen == 240_000
    settlement_pay(settlement=settlement, actor=cast.finance, bank_reference="B2")
    assert balance(books.disbursed_code(YEAR)).credits_posted == 240_000
    assert enterprise_account(cast).credit_balance_fen == 0
    assert_figures_reconcile()


def test_the_enterprise_account_is_made_when_the_grant_is_issued(cast, year):
    with pytest.raises(AccountNotFound):
        account_get(code=books.enterprise_code(cast.enterprise.pk))
    grant_in(cast)
    assert enterprise_account(cast).credits_posted == 0


def test_claim_submit_with_ids_as_the_api_sends_them(cast, grant):
    documents = evidence(cast.member)
    made = claim_submit(
        grant=grant,
        actor=cast.member,
        invoice_number=documents["invoice_number"],
        invoice_document=documents["invoice_document"].pk,
        payment_proof_document=documents["payment_proof_document"].pk,
        bill_amount_fen=10_000,
        now=IN_YEAR,
    )
    assert made.invoice_document_id == documents["invoice_document"].pk
