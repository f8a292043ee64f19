"""Uploads of the same bytes racing, on real PostgreSQL connections and the real file system: the
file is stored once and whole, every racer gets an answer, and each organisation gets one document."""

import hashlib

import pytest

from evidence.audit import stored_files_findings
from evidence.models import Document, StoredFile
from evidence.services import document_upload
from tests.concurrency import race
from tests.evidence.conftest import files_on_disk, sample, sha256_of, upload

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_uploads_of_the_same_bytes_at_once_over_the_api(people, documents_root):
    data = sample("delivery-proof.jpg")
    clients = [people.client(people.member), people.client(people.colleague)]
    responses = race([lambda c=c: upload(c, data, kind="delivery_proof", name="proof.jpg") for c in clients])
    assert sorted(r.status_code for r in responses) == [200, 201], [r.content for r in responses]
    assert responses[0].json()["id"] == responses[1].json()["id"]
    assert StoredFile.objects.count() == 1 and Document.objects.count() == 1
    (stored,) = files_on_disk(documents_root)
    assert sha256_of(stored) == hashlib.sha256(data).hexdigest()


def test_many_organisations_uploading_one_file_at_once_store_it_once(people, documents_root):
    data = sample("invoice.ofd")
    uploaders = [people.member, people.colleague, people.stranger, people.clerk] * 4
    results = race([lambda u=u: document_upload(actor=u, kind="invoice", data=data) for u in uploaders])
    assert not [r for r in results if isinstance(r, Exception)], results
    # One document per organisation (three), created once each; every racer got its organisation's.
    assert sum(r.created for r in results) == 3
    by_owner = {r.document.owner: r.document.pk for r in results}
    assert all(r.document.pk == by_owner[r.document.owner] for r in results)
    assert Document.objects.count() == 3 and StoredFile.objects.count() == 1
    (stored,) = files_on_disk(documents_root)
    assert sha256_of(stored) == hashlib.sha256(data).hexdigest()
    assert stored_files_findings(findings_max=50) == ([], 1)
