"""POST /documents/: what is accepted (judged from the bytes), and every refusal a problem with a
stable code and nothing written: no Document, no StoredFile, no file on disk."""

import hashlib
import io
import os
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from rest_framework.test import APIClient

from evidence.models import Document, StoredFile
from tests.api.conftest import assert_problem
from tests.evidence import pdf_bytes
from tests.evidence.conftest import DOCUMENTS, files_on_disk, nothing_stored, sample, sha256_of, upload

pytestmark = pytest.mark.django_db


SAMPLE_TYPES = {
    "contract.pdf": "application/pdf",
    "filing-certificate.pdf": "application/pdf",
    "invoice.pdf": "application/pdf",
    "invoice.ofd": "application/ofd",
    "delivery-proof.jpg": "image/jpeg",
    "payment-proof.png": "image/png",
}


def test_an_upload_answers_201_with_the_documented_shape(as_member, documents_root, people):
    data = sample("invoice.pdf")
    response = upload(as_member, data, kind="invoice", name="发票 2026-01.pdf")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "kind", "sha256", "size", "content_type", "uploaded_at", "original_name"}
    assert body["kind"] == "invoice" and body["content_type"] == "application/pdf"
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["size"] == len(data)
    assert body["original_name"] == "发票 2026-01.pdf"
    document = Document.objects.get(pk=body["id"])
    assert document.owner == f"enterprise:{people.cast.enterprise.pk}" and document.uploaded_by == people.member
    (stored,) = files_on_disk(documents_root)
    assert stored.relative_to(documents_root).as_posix() == document.file.storage_name
    assert sha256_of(stored) == body["sha256"]


@pytest.mark.parametrize("name", sorted(SAMPLE_TYPES))
def test_every_shipped_sample_is_accepted_with_its_type(as_member, name):
    response = upload(as_member, sample(name), kind="other", name=name, content_type="application/octet-stream")
    assert response.status_code == 201, response.content
    assert response.json()["content_type"] == SAMPLE_TYPES[name]


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script>%PDF-1.4 %%EOF</body></html>\n"
WINDOWS_EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(200) + b"PE\x00\x00"
ELF_EXECUTABLE = b"\x7fELF\x02\x01\x01" + bytes(300)

REFUSED = {
    "empty": (b"", "invoice.pdf", "application/pdf"),
    "a truncated PDF": (sample("invoice.pdf")[:-40], "invoice.pdf", "application/pdf"),
    "a truncated PNG": (sample("payment-proof.png")[:-12], "proof.png", "image/png"),
    "a truncated JPEG": (sample("delivery-proof.jpg")[:2000], "proof.jpg", "image/jpeg"),
    "a truncated OFD": (sample("invoice.ofd")[:-100], "invoice.ofd", "application/ofd"),
    "an OFD with one byte changed": (
        sample("invoice.ofd")[:60] + bytes([sample("invoice.ofd")[60] ^ 0xFF]) + sample("invoice.ofd")[61:],
        "invoice.ofd",
        "application/ofd",
    ),
    "an HTML page named .pdf": (HTML, "invoice.pdf", "application/pdf"),
    "a Windows executable renamed .png": (WINDOWS_EXECUTABLE, "proof.png", "image/png"),
    "an ELF executable renamed .pdf": (ELF_EXECUTABLE, "contract.pdf", "application/pdf"),
    "a ZIP renamed .png": (_zip({"readme.txt": b"hello"}), "proof.png", "image/png"),
    "a ZIP without OFD.xml named .ofd": (_zip({"Doc_0/Document.xml": b"<x/>"}), "invoice.ofd", "application/ofd"),
    "a PNG signature with nothing after it": (b"\x89PNG\r\n\x1a\n", "proof.png", "image/png"),
    "a PDF with text after its end": (sample("invoice.pdf") + b"\n" + bytes(2000), "invoice.pdf", "application/pdf"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_file_that_is_not_a_whole_document_is_refused_and_nothing_is_written(as_member, documents_root, case):
    data, name, content_type = REFUSED[case]
    response = upload(as_member, data, name=name, content_type=content_type)
    body = assert_problem(response, 400, "unsupported_document")
    assert "content" not in body
    assert nothing_stored(documents_root)


def test_an_upload_may_name_the_file_anything(as_member):
    # The name and the Content-Type it came with count for nothing: a PDF named .png is a PDF.
    response = upload(as_member, sample("contract.pdf"), kind="contract", name="photo.png", content_type="image/png")
    assert response.status_code == 201 and response.json()["content_type"] == "application/pdf"


@override_settings(DOCUMENT_SIZE_MAX_BYTES=1_000)
def test_a_file_over_the_size_limit_is_413_and_nothing_is_written(as_member, documents_root):
    big = pdf_bytes("x" * 1_200)
    assert len(big) > 1_000
    body = assert_problem(upload(as_member, big), 413, "document_too_large")
    assert body["size_max"] == 1_000
    assert nothing_stored(documents_root)
    # At the limit it is accepted.
    at_limit = pdf_bytes()
    at_limit = at_limit[:-6] + b" " * (1_000 - len(at_limit)) + at_limit[-6:]
    assert len(at_limit) == 1_000
    assert upload(as_member, at_limit).status_code == 201


@override_settings(DOCUMENT_SIZE_MAX_BYTES=1_000)
def test_a_request_announcing_more_than_the_limit_is_refused_before_its_body_is_read(as_member, documents_root):
    # The Content-Length alone decides: the body (a small, valid file) is never parsed.
    body = {"file": SimpleUploadedFile("a.pdf", pdf_bytes()), "kind": "invoice"}
    response = as_member.post(DOCUMENTS, body, format="multipart", CONTENT_LENGTH=str(1_000 + 64 * 1024 + 1))
    assert_problem(response, 413, "document_too_large")
    assert nothing_stored(documents_root)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kind": "receipt"}, "kind"),
        ({"kind": ""}, "kind"),
        ({"kind": None}, "kind"),
        ({"kind": ["invoice", "contract"]}, "kind"),
        ({"file": None}, "file"),
        ({"file": "two", "kind": "invoice"}, "file"),
        ({"note": "hello", "kind": "invoice"}, "note"),
        ({"sha256": "0" * 64, "kind": "invoice"}, "sha256"),
    ],
    ids=["unknown kind", "blank kind", "no kind", "two kinds", "no file", "two files", "extra field", "extra hash"],
)
def test_a_malformed_upload_is_a_validation_error_and_nothing_is_written(as_member, documents_root, body, field):
    parts = {"file": SimpleUploadedFile("a.pdf", pdf_bytes()), "kind": "invoice"}
    for name, value in body.items():
        if value is None:
            parts.pop(name)
        elif name == "file" and value == "two":
            parts["file"] = [SimpleUploadedFile("a.pdf", pdf_bytes()), SimpleUploadedFile("b.pdf", pdf_bytes())]
        else:
            parts[name] = value
    response = as_member.post(DOCUMENTS, parts, format="multipart")
    problem = assert_problem(response, 400, "validation_error")
    assert field in problem["errors"], problem
    assert nothing_stored(documents_root)


def test_the_file_sent_as_a_text_field_is_refused(as_member, documents_root):
    response = as_member.post(DOCUMENTS, {"file": "%PDF-1.4 ... %%EOF", "kind": "invoice"}, format="multipart")
    assert_problem(response, 400, "validation_error")
    assert nothing_stored(documents_root)


def test_a_json_body_is_415_and_nothing_is_written(as_member, documents_root):
    response = as_member.post(DOCUMENTS, {"file": "JVBERi0xLjQ=", "kind": "invoice"}, format="json")
    problem = assert_problem(response, 415, "unsupported_media_type")
    assert "multipart/form-data" in problem["title"]
    assert nothing_stored(documents_root)


def test_an_anonymous_upload_is_401_and_nothing_is_written(documents_root):
    assert_problem(upload(APIClient(), pdf_bytes()), 401, "not_authenticated")
    assert nothing_stored(documents_root)


def test_the_same_bytes_twice_are_stored_once_and_are_the_same_document(as_member, documents_root, people):
    data = sample("invoice.ofd")
    first = upload(as_member, data, name="a.ofd")
    again = upload(people.client(people.colleague), data, name="b.ofd")  # Same organisation, same kind.
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert StoredFile.objects.count() == 1 and Document.objects.count() == 1
    assert len(files_on_disk(documents_root)) == 1


def test_the_same_bytes_as_another_kind_or_for_another_organisation_are_new_documents_on_one_file(
    as_member, documents_root, people
):
    data = sample("contract.pdf")
    mine = upload(as_member, data, kind="contract").json()
    other_kind = upload(as_member, data, kind="other")
    theirs = upload(people.client(people.stranger), data, kind="contract")
    center = upload(people.client(people.clerk), data, kind="contract")
    assert (other_kind.status_code, theirs.status_code, center.status_code) == (201, 201, 201)
    ids = {mine["id"], other_kind.json()["id"], theirs.json()["id"], center.json()["id"]}
    assert len(ids) == 4
    assert {row["sha256"] for row in (mine, theirs.json(), center.json())} == {mine["sha256"]}
    assert StoredFile.objects.count() == 1 and len(files_on_disk(documents_root)) == 1
    owners = set(Document.objects.values_list("owner", flat=True))
    assert owners == {
        f"enterprise:{people.cast.enterprise.pk}",
        f"enterprise:{people.stranger.enterprise_id}",
        f"provider:{people.cast.provider.pk}",
    }


def test_staff_upload_for_the_fund(people, documents_root):
    response = upload(people.client(people.reviewer), sample("invoice.pdf"), kind="other")
    assert response.status_code == 201
    assert Document.objects.get(pk=response.json()["id"]).owner == "staff"


@pytest.mark.parametrize(
    "name, kept",
    [
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("C:\\Users\\me\\合同.pdf", "合同.pdf"),
        ("in\u202evoice\x00.pdf\n", "invoice.pdf"),
        ("x" * 300 + ".pdf", "x" * 196 + ".pdf"),
        ("", ""),
    ],
)
def test_the_original_name_is_kept_only_for_people_to_read(as_member, name, kept):
    response = upload(as_member, pdf_bytes(), name=name or "upload")
    assert response.status_code == 201, response.content
    assert response.json()["original_name"] == (kept or "upload")


def test_a_file_of_several_megabytes_goes_through_and_comes_back_whole(as_member, documents_root):
    # Past Django's in-memory upload size (2.5 MB) and the 1 MiB limit on other request bodies.
    big = b"%PDF-1.7\n" + os.urandom(5 * 1000 * 1000) + b"\n%%EOF\n"
    created = upload(as_member, big, kind="delivery_proof")
    assert created.status_code == 201, created.content[:300]
    response = as_member.get(f"{DOCUMENTS}{created.json()['id']}/content/")
    assert response["Content-Length"] == str(len(big))
    assert b"".join(response.streaming_content) == big
