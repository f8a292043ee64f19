"""Claims in the portal (enterprise reimbursement): the enterprise claims on its coupon's page with
the invoice and the proof of payment, a reviewer decides beside the documents, finance settles the
enterprise."""

from collections.abc import Callable

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from coupons.models import Claim, Grant, ProgramYear, Settlement
from coupons.services.claims import claim_approve, claim_submit
from coupons.services.years import program_year_create, program_year_open
from evidence.models import Document
from tests.claims import REIMBURSEMENT, evidence
from tests.coupons.conftest import CAP_FEN, POOL_FEN, Cast
from tests.evidence import invoice_number, pdf_bytes
from tests.factories import EnterpriseFactory, UserFactory
from tests.portal.conftest import this_year, walk_to_grant


@pytest.fixture
def year(cast: Cast) -> ProgramYear:
    """The current year, open, in enterprise reimbursement."""
    program_year_create(
        year=this_year(), actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN, redemption_mode=REIMBURSEMENT
    )
    return program_year_open(year=this_year(), actor=cast.admin)


@pytest.fixture
def grant(cast: Cast, year: ProgramYear) -> Grant:
    return walk_to_grant(cast)  # 3,000 yuan at 30% of a 10,000 yuan contract


def claim_form(**changes: object) -> dict[str, object]:
    return {
        "invoice_number": invoice_number(),
        "invoice_file": SimpleUploadedFile("invoice.pdf", pdf_bytes("invoice"), content_type="application/pdf"),
        "payment_proof_file": SimpleUploadedFile("slip.pdf", pdf_bytes("slip"), content_type="application/pdf"),
        "bill_amount": "1,000.00",
        "requested": "",
    } | changes


def submitted(cast: Cast, grant: Grant) -> Claim:
    return claim_submit(grant=grant, actor=cast.member, bill_amount_fen=100_000, **evidence(cast.member))


def test_the_enterprise_claims_on_its_coupons_page(cast: Cast, grant: Grant, as_user: Callable[..., Client]):
    member = as_user(cast.member, language="en")
    page = member.get(f"/grants/{grant.pk}/").content.decode()
    assert "Claim a paid bill" in page and 'enctype="multipart/form-data"' in page

    response = member.post(f"/grants/{grant.pk}/claim/", claim_form(), follow=True)

    made = Claim.objects.get()
    assert (made.status, made.bill_amount_fen, made.coupon_fen, made.created_by_id) == (
        "submitted",
        100_000,
        30_000,
        cast.member.pk,
    )
    assert (made.invoice_document.kind, made.payment_proof_document.kind) == ("invoice", "payment_proof")
    assert made.invoice_document.owner == f"enterprise:{cast.enterprise.pk}"
    body = response.content.decode()
    assert "Claim submitted" in body and made.invoice_number in body
    assert f"/api/v1/documents/{made.payment_proof_document_id}/content/" in body


def test_a_file_that_is_not_a_document_is_refused_and_no_claim_is_made(
    cast: Cast, grant: Grant, as_user: Callable[..., Client]
):
    member = as_user(cast.member, language="en")
    html = SimpleUploadedFile("invoice.pdf", b"<html>not a pdf</html>", content_type="application/pdf")
    body = member.post(f"/grants/{grant.pk}/claim/", claim_form(invoice_file=html), follow=True).content.decode()
    assert "PDF, OFD, JPEG or PNG" in body
    assert not Claim.objects.exists()
    body = member.post(f"/grants/{grant.pk}/claim/", claim_form(invoice_number="123"), follow=True).content.decode()
    assert not Claim.objects.exists() and "invoice" in body.lower()


def test_no_claim_form_in_a_provider_deduction_year_nor_for_the_center(cast: Cast, as_user: Callable[..., Client]):
    program_year_create(year=this_year(), actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN)
    program_year_open(year=this_year(), actor=cast.admin)
    grant = walk_to_grant(cast)
    assert "Claim a paid bill" not in as_user(cast.member, language="en").get(f"/grants/{grant.pk}/").content.decode()
    refused = as_user(cast.member, language="en").post(f"/grants/{grant.pk}/claim/", claim_form(), follow=True)
    assert "with enterprise reimbursement the enterprise pays in full and claims" in refused.content.decode()
    assert not Claim.objects.exists()
    assert as_user(cast.clerk).post(f"/grants/{grant.pk}/claim/", claim_form()).status_code == 403


def test_a_reviewer_sees_the_queue_with_the_documents_and_approves(
    cast: Cast, grant: Grant, as_user: Callable[..., Client]
):
    made = submitted(cast, grant)
    reviewer = as_user(cast.reviewer, language="en")
    queue = reviewer.get("/claims/").content.decode()
    assert f'id="claim-{made.pk}"' in queue and "Approve" in queue
    # The documents open from the queue, through the scoped download.
    document = reviewer.get(f"/api/v1/documents/{made.invoice_document_id}/content/")
    assert document.status_code == 200
    assert b"".join(document.streaming_content if document.streaming else [document.content]).startswith(b"%PDF")

    reviewer.post(f"/claims/{made.pk}/approve/", {"reason": "Matches the bank slip."})

    made.refresh_from_db()
    assert (made.status, made.decided_by_id, made.decision_reason) == (
        "approved",
        cast.reviewer.pk,
        "Matches the bank slip.",
    )
    assert f'id="claim-{made.pk}"' not in reviewer.get("/claims/").content.decode()  # No longer waiting.
    assert f'id="claim-{made.pk}"' in reviewer.get("/claims/?status=approved").content.decode()


def test_a_rejection_needs_a_reason_and_only_a_reviewer_decides(
    cast: Cast, grant: Grant, as_user: Callable[..., Client]
):
    made = submitted(cast, grant)
    for user in (cast.member, cast.clerk, cast.approver, cast.finance):
        assert as_user(user).post(f"/claims/{made.pk}/approve/", {}).status_code == 403
    reviewer = as_user(cast.reviewer, language="en")
    reviewer.post(f"/claims/{made.pk}/reject/", {"reason": ""})
    made.refresh_from_db()
    assert made.status == "submitted"
    reviewer.post(f"/claims/{made.pk}/reject/", {"reason": "The slip shows another amount."})
    made.refresh_from_db()
    assert (made.status, made.decision_reason) == ("rejected", "The slip shows another amount.")


def test_claims_are_shown_only_to_their_parties(cast: Cast, grant: Grant, as_user: Callable[..., Client]):
    made = submitted(cast, grant)
    marker = f'id="claim-{made.pk}"'
    assert marker in as_user(cast.member).get("/claims/").content.decode()
    assert marker in as_user(cast.clerk).get("/claims/").content.decode()
    stranger = UserFactory(enterprise=EnterpriseFactory())
    assert marker not in as_user(stranger).get("/claims/").content.decode()
    assert as_user(stranger).get(f"/api/v1/documents/{made.invoice_document_id}/content/").status_code == 404


def test_finance_settles_an_enterprises_approved_claims(cast: Cast, grant: Grant, as_user: Callable[..., Client]):
    claim_approve(claim=submitted(cast, grant), actor=cast.reviewer)
    finance = as_user(cast.finance, language="en")
    page = finance.get("/settlements/").content.decode()
    assert "Settle an enterprise's claims" in page
    assert cast.enterprise.name in page

    response = finance.post("/settlements/", {"payee": "enterprise", "enterprise": cast.enterprise.pk}, follow=True)

    settlement = Settlement.objects.get()
    assert (settlement.enterprise_id, settlement.total_fen) == (cast.enterprise.pk, 30_000)
    body = response.content.decode()
    assert "Enterprise (reimbursed)" in body and Claim.objects.get().invoice_number in body
    assert Document.objects.filter(kind="payment_proof").count() == 1


def test_the_admin_shows_claims_read_only(cast: Cast, grant: Grant, as_user: Callable[..., Client]):
    made = submitted(cast, grant)
    admin = as_user(cast.admin)
    assert made.invoice_number in admin.get("/admin/coupons/claim/").content.decode()
    page = admin.get(f"/admin/coupons/claim/{made.pk}/change/")
    assert page.status_code == 200 and "¥300.00" in page.content.decode()
    assert admin.post(f"/admin/coupons/claim/{made.pk}/delete/").status_code == 403
