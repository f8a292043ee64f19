"""The services other apps call: a document named in a write is checked, citations make parties
readers, and the same bytes offered for another organisation are found."""

import pytest

from config.errors import ValidationFailed
from evidence.errors import DocumentTooLarge, UnsupportedDocument
from evidence.models import Citation
from evidence.selectors import documents_visible_to, organisation_key, same_bytes_elsewhere
from evidence.services import citation_add, document_for_citation, document_upload
from tests.evidence import document, pdf_bytes
from tests.evidence.conftest import nothing_stored, sample

pytestmark = pytest.mark.django_db


def test_a_document_is_named_by_id_by_digits_or_as_the_document_itself(people):
    contract = document(people.member, "contract")
    for named in (contract.pk, str(contract.pk), contract):
        found = document_for_citation(document_id=named, kinds=["contract"], actor=people.colleague, field="f")
        assert found.pk == contract.pk


@pytest.mark.parametrize("named", [None, True, 0, -1, "", "1.0", "١", 2**63, [1], {"id": 1}, 1.0])
def test_anything_else_names_no_document(people, named):
    with pytest.raises(ValidationFailed) as refused:
        document_for_citation(document_id=named, kinds=["contract"], actor=people.member, field="contract_document")
    assert "contract_document" in refused.value.extra["errors"]


def test_another_organisations_document_is_refused_in_the_words_of_a_missing_one(people):
    theirs = document(people.stranger, "contract")
    with pytest.raises(ValidationFailed) as refused:
        document_for_citation(document_id=theirs.pk, kinds=["contract"], actor=people.member, field="f")
    with pytest.raises(ValidationFailed) as missing:
        document_for_citation(document_id=theirs.pk + 1000, kinds=["contract"], actor=people.member, field="f")
    assert refused.value.detail.replace(str(theirs.pk), "N") == missing.value.detail.replace(str(theirs.pk + 1000), "N")
    # Staff may cite it (a reviewer attaching what an enterprise sent by other means).
    assert document_for_citation(document_id=theirs.pk, kinds=["contract"], actor=people.reviewer, field="f") == theirs


def test_a_document_of_another_kind_is_refused(people):
    invoice = document(people.member, "invoice")
    with pytest.raises(ValidationFailed, match="is a invoice; this needs a contract"):
        document_for_citation(document_id=invoice.pk, kinds=["contract"], actor=people.member, field="f")
    assert document_for_citation(document_id=invoice.pk, kinds=["contract", "invoice"], actor=people.member, field="f")


def test_a_citation_is_recorded_once_and_makes_its_parties_readers(people):
    invoice = document(people.clerk, "invoice")
    parties = [organisation_key(people.member), organisation_key(people.clerk), organisation_key(people.member)]
    first = citation_add(
        document=invoice, subject="redemption:9", role="invoice", principal="x", parties=parties, actor=people.clerk
    )
    again = citation_add(
        document=invoice, subject="redemption:9", role="invoice", principal="x", parties=[], actor=people.clerk
    )
    assert first.pk == again.pk and Citation.objects.count() == 1
    assert first.parties == sorted(set(parties)) and first.sha256 == invoice.sha256
    assert documents_visible_to(people.member).filter(pk=invoice.pk).exists()
    assert not documents_visible_to(people.stranger).filter(pk=invoice.pk).exists()


def test_the_same_bytes_cited_for_another_enterprise_are_found(people):
    data = sample("invoice.pdf")
    mine = document_upload(actor=people.member, kind="invoice", data=data).document
    theirs = document_upload(actor=people.stranger, kind="invoice", data=data).document
    me, them = organisation_key(people.member), organisation_key(people.stranger)
    citation_add(document=mine, subject="claim:1", role="invoice", principal=me, parties=[me], actor=people.member)
    assert same_bytes_elsewhere(sha256=mine.sha256, principal=me) == []
    cited = citation_add(
        document=theirs, subject="claim:2", role="invoice", principal=them, parties=[them], actor=people.stranger
    )
    assert same_bytes_elsewhere(sha256=mine.sha256, principal=me) == [cited]


def test_the_service_refuses_as_the_api_does_and_stores_nothing(people, settings, documents_root):
    settings.DOCUMENT_SIZE_MAX_BYTES = 100
    with pytest.raises(DocumentTooLarge):
        document_upload(actor=people.member, kind="invoice", data=pdf_bytes("x" * 200))
    with pytest.raises(UnsupportedDocument):
        document_upload(actor=people.member, kind="invoice", data=b"")
    with pytest.raises(ValidationFailed):
        document_upload(actor=people.member, kind="receipt", data=pdf_bytes())
    assert nothing_stored(documents_root)
