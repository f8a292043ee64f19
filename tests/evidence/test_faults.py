"""Faults between the two halves of an upload: the file (storage) and its rows (PostgreSQL).

A storage write that fails half-way leaves no row, and the next upload of the same bytes replaces
what it left; a row insert that fails after the file was written leaves a file no row names, which
nothing counts, which the audit reports, and which the next upload of those bytes adopts."""

import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import IntegrityError
from django.utils import timezone

from evidence.audit import stored_files_findings
from evidence.models import Document, StoredFile
from evidence.services import document_upload
from tests.evidence.conftest import documents_storage_settings, files_on_disk, sample, sha256_of, upload

pytestmark = pytest.mark.django_db


class DiskFullHalfway(FileSystemStorage):
    """A real file system write that stops half-way, as a full disk or a dropped mount does."""

    def _save(self, name: str, content: Any) -> str:
        path = Path(self.path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.read()
        with path.open("wb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            os.fsync(handle.fileno())
        raise OSError(28, "No space left on device", str(path))


FAILING = f"{__name__}.DiskFullHalfway"


def test_a_write_failing_half_way_leaves_no_row_and_the_next_upload_replaces_the_remains(
    people, settings, documents_root
):
    data = sample("delivery-proof.jpg")
    sha256 = hashlib.sha256(data).hexdigest()
    settings.STORAGES = {**settings.STORAGES, "documents": documents_storage_settings(documents_root, FAILING)}
    with pytest.raises(OSError, match="No space left"):
        document_upload(actor=people.member, kind="delivery_proof", data=data)
    assert not Document.objects.exists() and not StoredFile.objects.exists()
    (remains,) = files_on_disk(documents_root)
    assert remains.stat().st_size == len(data) // 2  # What the failed write left, which no row names.

    settings.STORAGES = {**settings.STORAGES, "documents": documents_storage_settings(documents_root)}
    uploaded = document_upload(actor=people.member, kind="delivery_proof", data=data)
    assert uploaded.created and uploaded.document.sha256 == sha256
    (stored,) = files_on_disk(documents_root)
    assert stored == remains and sha256_of(stored) == sha256
    assert stored_files_findings(findings_max=50) == ([], 1)


def test_over_the_api_a_failed_write_is_a_problem_500_and_nothing_is_recorded(people, settings, documents_root):
    settings.STORAGES = {**settings.STORAGES, "documents": documents_storage_settings(documents_root, FAILING)}
    client = people.client(people.member)
    client.raise_request_exception = False
    response = upload(client, sample("invoice.pdf"))
    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "server_error" and "No space" not in response.content.decode()
    assert not Document.objects.exists() and not StoredFile.objects.exists()


def test_a_row_insert_failing_after_the_write_leaves_an_orphan_nothing_counts_and_the_audit_reports(
    people, monkeypatch, documents_root
):
    data = sample("invoice.ofd")
    sha256 = hashlib.sha256(data).hexdigest()

    def insert_fails(**kwargs: Any) -> Document:
        raise IntegrityError('new row for relation "evidence_document" violates check constraint')

    with monkeypatch.context() as patched:
        patched.setattr(Document.objects, "create", insert_fails)
        with pytest.raises(IntegrityError):
            document_upload(actor=people.member, kind="invoice", data=data)
    assert not Document.objects.exists() and not StoredFile.objects.exists()
    (orphan,) = files_on_disk(documents_root)
    assert sha256_of(orphan) == sha256

    # Nothing counts it; the audit reports it once it is old enough not to be an upload in flight.
    assert stored_files_findings(findings_max=50) == ([], 0)
    later = timezone.now() + dt.timedelta(hours=2)
    findings, examined = stored_files_findings(findings_max=50, now=later)
    assert examined == 0
    assert findings == [{"name": orphan.relative_to(documents_root).as_posix(), "problem": "unreferenced"}]

    # The next upload of the same bytes adopts the file as it is.
    inode = orphan.stat().st_ino
    uploaded = document_upload(actor=people.member, kind="invoice", data=data)
    assert uploaded.created and files_on_disk(documents_root) == [orphan] and orphan.stat().st_ino == inode
    assert stored_files_findings(findings_max=50, now=later) == ([], 1)


def test_a_recorded_file_that_went_missing_is_written_again_by_the_next_upload_of_its_bytes(people, documents_root):
    data = sample("contract.pdf")
    first = document_upload(actor=people.member, kind="contract", data=data).document
    (path,) = files_on_disk(documents_root)
    path.unlink()
    assert stored_files_findings(findings_max=50)[0] == [
        {"sha256": first.sha256, "problem": "missing", "size": len(data)}
    ]
    again = document_upload(actor=people.stranger, kind="contract", data=data)
    assert again.created and again.document.file_id == first.file_id
    assert sha256_of(path) == first.sha256
    assert stored_files_findings(findings_max=50) == ([], 1)
