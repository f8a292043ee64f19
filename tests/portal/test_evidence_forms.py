"""The portal's evidence: the contract uploaded on the apply form, the reviewer's checklist of documents
(with downloads and the shared-file warning), and the invoice uploaded on the bill form. A refused form
leaves no document row behind."""

from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from coupons.models import Application, Grant, ProgramYear, Redemption
from coupons.services.applications import application_confirm
from evidence.models import Citation, Document
from tests.coupons.conftest import Cast
from tests.evidence import contract, contract_fields, document, invoice_fields, invoice_number, pdf_bytes
from tests.factories import EnterpriseFactory, UserFactory
from tests.portal.conftest import this_year, walk_to_grant

AsUser = Callable[..., Client]


def files_stored() -> set[Path]:
    root = Path(settings.STORAGES["documents"]["OPTIONS"]["location"])
    return {path for path in root.rglob("*") if path.is_file()}


def apply_form(cast: Cast, **changes: object) -> dict[str, object]:
    return {
        "provider": str(cast.provider.pk),
        "contract_number": "HZ-DOC-1",
        "contract_fee": "10,000.00",
        "compute_source": "domestic",
        "purpose": "training",
        "requested": "",
        **contract_fields(this_year()),
        **changes,
    }


def redeem_form(grant: Grant, **changes: object) -> dict[str, object]:
    return {
        "grant_code": grant.code,
        "bill_number": "BILL-1",
        "bill_amount": "1,000.00",
        "requested": "",
        "capture": "on",
        **invoice_fields(),
        **changes,
    }


# --- The apply form -------------------------------------------------------------------------------------


def test_the_contract_is_uploaded_with_the_application_and_both_parties_may_download_it(
    cast: Cast, year: ProgramYear, as_user: AsUser
):
    data = pdf_bytes("signed contract")
    more = [SimpleUploadedFile("usage.pdf", pdf_bytes("usage")), SimpleUploadedFile("plan.pdf", pdf_bytes("plan"))]
    form = apply_form(
        cast,
        contract_file=SimpleUploadedFile("contract.pdf", data),
        contract_term_months="10",
        more_files=more,
    )

    response = as_user(cast.member).post("/apply/", form)

    assert response.status_code == 302, response.content.decode()[:500]
    application = Application.objects.get()
    assert (application.contract_term_months, application.contract_signed_on.isoformat()) == (
        10,
        f"{this_year()}-01-01",
    )
    roles = sorted(Citation.objects.filter(subject=f"application:{application.pk}").values_list("role", flat=True))
    assert roles == ["contract", "other", "other"]
    page = as_user(cast.clerk).get(f"/applications/{application.pk}/").content.decode()
    link = f"/api/v1/documents/{application.contract_document_id}/content/"
    assert link in page
    assert b"".join(as_user(cast.clerk).get(link).streaming_content) == data
    assert as_user(UserFactory(enterprise=EnterpriseFactory())).get(link).status_code == 404


def test_an_application_without_its_contract_file_is_refused_and_writes_nothing(
    cast: Cast, year: ProgramYear, as_user: AsUser, db_snapshot: Callable[[], object]
):
    client = as_user(cast.member, language="en")
    form = apply_form(cast)
    del form["contract_file"]
    before = db_snapshot()
    response = client.post("/apply/", form)
    assert response.status_code == 400
    assert 'id="id_contract_file_errors"' in response.content.decode()
    assert db_snapshot() == before and not Document.objects.exists()


def test_a_file_that_is_not_a_document_is_said_beside_it_and_nothing_is_stored(
    cast: Cast, year: ProgramYear, as_user: AsUser, db_snapshot: Callable[[], object]
):
    client = as_user(cast.member, language="en")
    renamed = SimpleUploadedFile("contract.pdf", b"<html><body>not a contract</body></html>", "application/pdf")
    before = db_snapshot()
    response = client.post("/apply/", apply_form(cast, contract_file=renamed))
    body = response.content.decode()
    assert response.status_code == 400
    assert (
        'id="id_contract_file_errors"' in body and "The file is not a complete PDF, OFD, JPEG or PNG document." in body
    )
    assert db_snapshot() == before and not Document.objects.exists()


def test_a_refused_application_leaves_no_document_row(
    cast: Cast, year: ProgramYear, as_user: AsUser, db_snapshot: Callable[[], object]
):
    client = as_user(cast.member, language="en")
    assert client.post("/apply/", apply_form(cast)).status_code == 302
    documents, files = Document.objects.count(), files_stored()
    before = db_snapshot()
    # The same contract number with the same center again, and a contract signed last year.
    for form in (
        apply_form(cast),
        apply_form(cast, contract_number="HZ-DOC-2", contract_signed_on=f"{this_year() - 1}-12-31"),
    ):
        response = client.post("/apply/", form)
        assert response.status_code == 400
    assert 'id="id_contract_signed_on_errors"' in response.content.decode()
    assert db_snapshot() == before and Document.objects.count() == documents
    # Nor a file: one no row names would fail the audit's storage check.
    assert files_stored() == files


# --- The reviewer's checklist ---------------------------------------------------------------------------


def confirmed_with(cast: Cast, **evidence: object) -> Application:
    from coupons.services.applications import application_submit

    application = application_submit(
        actor=cast.member,
        provider=cast.provider,
        contract_number=f"HZ-R-{Application.objects.count() + 1}",
        contract_fee_fen=1_000_000,
        compute_source="domestic",
        purpose="training",
        **{**contract(cast.member, this_year()), **evidence},
    )
    return application_confirm(application=application, actor=cast.clerk)


def test_the_reviewer_ticks_the_documents_checked_and_must_tick_the_contract(
    cast: Cast, year: ProgramYear, as_user: AsUser, db_snapshot: Callable[[], object]
):
    usage = document(cast.member, "delivery_proof")
    application = confirmed_with(cast, documents=[usage])
    url = f"/applications/{application.pk}/"
    client = as_user(cast.reviewer, language="en")
    page = client.get(url).content.decode()
    for pk in (application.contract_document_id, usage.pk):
        assert f'id="checked-{pk}"' in page and f"/api/v1/documents/{pk}/content/" in page
    assert 'id="shared-warning"' not in page

    before = db_snapshot()
    refused = client.post(url + "review/", {"recommended": "1,000", "evidence_checked": [usage.pk]})
    assert refused.status_code == 400
    assert "Tick the signed contract: a reviewer checks at least the contract." in refused.content.decode()
    assert client.post(url + "review/", {"recommended": "1,000"}).status_code == 400
    assert db_snapshot() == before

    done = client.post(
        url + "review/", {"recommended": "1,000", "evidence_checked": [application.contract_document_id]}
    )

    assert done.status_code == 302
    application.refresh_from_db()
    assert (application.status, application.evidence_checked) == ("reviewed", [application.contract_document_id])


def test_the_reviewer_is_warned_when_the_same_file_is_cited_for_another_enterprise(
    cast: Cast, year: ProgramYear, as_user: AsUser
):
    data = pdf_bytes("copied contract")
    other_member = UserFactory(enterprise=EnterpriseFactory())
    other = Cast(**{**cast.__dict__, "enterprise": other_member.enterprise, "member": other_member})
    confirmed_with(other, contract_document=document(other_member, "contract", data))
    application = confirmed_with(cast, contract_document=document(cast.member, "contract", data))

    page = as_user(cast.reviewer, language="en").get(f"/applications/{application.pk}/").content.decode()

    assert 'id="shared-warning"' in page and "The same file is cited for another enterprise." in page


# --- The bill form --------------------------------------------------------------------------------------


def test_a_bill_is_redeemed_with_its_invoice_and_the_enterprise_may_download_it(
    cast: Cast, year: ProgramYear, as_user: AsUser
):
    grant = walk_to_grant(cast)
    number = invoice_number()
    spaced = " ".join(number[i : i + 4] for i in range(0, 20, 4))
    form = redeem_form(grant, invoice_number=spaced, invoice_amount="1,200.00")

    response = as_user(cast.clerk).post("/redeem/", form)

    assert response.status_code == 302, response.content.decode()[:500]
    redemption = Redemption.objects.get()
    assert (redemption.invoice_number, redemption.invoice_amount_fen) == (number, 120_000)
    assert as_user(cast.member).get(f"/api/v1/documents/{redemption.invoice_document_id}/content/").status_code == 200


def test_bad_invoice_input_is_said_beside_the_field_and_leaves_no_document(
    cast: Cast, year: ProgramYear, as_user: AsUser, db_snapshot: Callable[[], object]
):
    grant = walk_to_grant(cast)
    clerk = as_user(cast.clerk, language="en")
    used = invoice_number()
    assert clerk.post("/redeem/", redeem_form(grant, invoice_number=used)).status_code == 302
    documents, files = Document.objects.count(), files_stored()
    before = db_snapshot()
    cases = [
        (
            redeem_form(grant, bill_number="B-2", invoice_number="12345"),
            "invoice_number",
            "not a Chinese invoice number",
        ),
        (redeem_form(grant, bill_number="B-2", invoice_number=used), "invoice_number", "This invoice was already used"),
        (
            redeem_form(grant, bill_number="B-2", invoice_amount="999.99"),
            "invoice_amount",
            "must cover the bill amount",
        ),
    ]
    for form, field, words in cases:
        response = clerk.post("/redeem/", form)
        body = response.content.decode()
        assert response.status_code == 400, body[:300]
        assert f'id="id_{field}_errors"' in body and words in body
    missing = redeem_form(grant, bill_number="B-2")
    del missing["invoice_file"]
    assert clerk.post("/redeem/", missing).status_code == 400
    assert db_snapshot() == before and Document.objects.count() == documents
    assert files_stored() == files
