"""Reading documents: GET /documents/, /documents/{id}/ and /documents/{id}/content/ are scoped to
the uploader's organisation, staff, and the parties of an object that cites the document; anyone
else gets 404 (never a hint that it exists), and nobody signed out gets anything."""

import pytest
from rest_framework.test import APIClient

from evidence.models import Document
from evidence.selectors import organisation_key
from evidence.services import citation_add, document_upload
from tests.api.conftest import assert_problem
from tests.evidence.conftest import DOCUMENTS, People, sample
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice(people: People) -> Document:
    """An invoice the computing center uploaded (a PNG: a type a browser would render if let)."""
    return document_upload(
        actor=people.clerk, kind="invoice", data=sample("payment-proof.png"), name="inv.png"
    ).document


def _cite(document: Document, people: People, *, parties: list[str]) -> None:
    citation_add(
        document=document,
        subject="redemption:1",
        role="invoice",
        principal=organisation_key(people.member),
        parties=parties,
        actor=people.clerk,
    )


def test_the_content_is_the_bytes_as_an_attachment_with_its_detected_type(people, invoice):
    response = people.client(people.clerk).get(f"{DOCUMENTS}{invoice.pk}/content/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == sample("payment-proof.png")
    assert response["Content-Type"] == "image/png"
    assert response["Content-Length"] == str(invoice.size)
    assert response["Content-Disposition"] == f'attachment; filename="document-{invoice.pk}.png"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert (
        "sandbox" in response["Content-Security-Policy"] and "default-src 'none'" in response["Content-Security-Policy"]
    )


@pytest.mark.parametrize("accept", ["application/octet-stream", "image/png", "application/json", "text/html", "*/*"])
def test_the_content_is_served_whatever_the_client_accepts(people, invoice, accept):
    response = people.client(people.clerk).get(f"{DOCUMENTS}{invoice.pk}/content/", HTTP_ACCEPT=accept)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == sample("payment-proof.png")


def _reads(client: APIClient, document: Document) -> tuple[int, int, int, bool]:
    metadata = client.get(f"{DOCUMENTS}{document.pk}/")
    content = client.get(f"{DOCUMENTS}{document.pk}/content/")
    listed = client.get(DOCUMENTS)
    ids = [row["id"] for row in listed.json()["results"]] if listed.status_code == 200 else []
    for response in (metadata, content):
        if response.status_code == 404:
            assert_problem(response, 404, "not_found")
    return metadata.status_code, content.status_code, listed.status_code, document.pk in ids


SEES = (200, 200, 200, True)
NOT = (404, 404, 200, False)


def test_the_uploaders_organisation_and_staff_read_it(people, invoice):
    other_clerk = UserFactory(provider=people.clerk.provider)
    assert _reads(people.client(people.clerk), invoice) == SEES
    assert _reads(APIClient(), invoice)[:2] == (401, 401)
    assert _reads(people.client(other_clerk), invoice) == SEES
    assert _reads(people.client(people.reviewer), invoice) == SEES
    assert _reads(people.client(people.cast.finance), invoice) == SEES
    assert _reads(people.client(people.cast.admin), invoice) == SEES


def test_anyone_else_gets_404_until_a_citation_makes_them_a_party(people, invoice):
    assert _reads(people.client(people.member), invoice) == NOT
    assert _reads(people.client(people.stranger), invoice) == NOT
    _cite(invoice, people, parties=[organisation_key(people.member), organisation_key(people.clerk)])
    # The enterprise the bill is for now reads the invoice; a stranger still does not.
    assert _reads(people.client(people.member), invoice) == SEES
    assert _reads(people.client(people.colleague), invoice) == SEES
    assert _reads(people.client(people.stranger), invoice) == NOT


def test_a_citation_for_other_parties_grants_nothing_to_the_principal(people, invoice):
    _cite(invoice, people, parties=[organisation_key(people.clerk)])
    assert _reads(people.client(people.member), invoice) == NOT


def test_an_unknown_id_is_404_as_another_organisations_document_is(people, invoice):
    client = people.client(people.stranger)
    missing = client.get(f"{DOCUMENTS}{invoice.pk + 1000}/content/")
    theirs = client.get(f"{DOCUMENTS}{invoice.pk}/content/")
    assert_problem(missing, 404, "not_found")
    assert_problem(theirs, 404, "not_found")
    assert missing.json()["title"] == theirs.json()["title"]


def test_a_user_of_no_organisation_and_no_role_sees_nothing(people, invoice):
    nobody = UserFactory()
    assert _reads(people.client(nobody), invoice) == NOT


def test_the_list_is_newest_first_and_only_what_the_caller_may_see(people, invoice):
    mine = document_upload(actor=people.member, kind="contract", data=sample("contract.pdf")).document
    document_upload(actor=people.stranger, kind="contract", data=sample("filing-certificate.pdf"))
    listed = people.client(people.member).get(DOCUMENTS).json()
    assert [row["id"] for row in listed["results"]] == [mine.pk]
    _cite(invoice, people, parties=[organisation_key(people.member)])
    listed = people.client(people.member).get(DOCUMENTS).json()
    assert [row["id"] for row in listed["results"]] == [mine.pk, invoice.pk]
    assert len(people.client(people.reviewer).get(DOCUMENTS).json()["results"]) == 3
