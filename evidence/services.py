"""Uploading documents and citing them. The owning apps (coupons) call these; nothing here knows
what an application or a redemption is."""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from accounts.models import User
from config.errors import ReferenceNotFound, ValidationFailed
from evidence import sniff, storage
from evidence.errors import DocumentTooLarge, UnsupportedDocument
from evidence.models import ORIGINAL_NAME_LENGTH_MAX, Citation, Document, Kind, StoredFile
from evidence.selectors import organisation_key


def document_size_max() -> int:
    """The largest file accepted, in bytes (`DOCUMENT_SIZE_MAX_BYTES`, default 20 MB)."""
    return int(settings.DOCUMENT_SIZE_MAX_BYTES)


def _original_name(name: str | None) -> str:
    """The uploaded file's name, kept only to show people: printable, at most 200 characters, no path."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[-ORIGINAL_NAME_LENGTH_MAX:]


@dataclass(frozen=True)
class Uploaded:
    document: Document
    created: bool  # False: the same bytes of the same kind were already uploaded for this organisation.


def document_upload(*, actor: User, kind: str, data: bytes, name: str | None = None) -> Uploaded:
    """Store `data` as a document of `kind` for the actor's organisation.

    Refused, with nothing stored, when the kind is unknown (400 `validation_error`), the file is empty
    or not a whole PDF, OFD, JPEG or PNG judged from its bytes (400 `unsupported_document`), or larger
    than `document_size_max()` (413 `document_too_large`). The same bytes are stored once: the file
    is content-addressed, and uploading it again as the same kind for the same organisation answers
    with the document already there.
    """
    if kind not in Kind.values:
        raise ValidationFailed(f"kind is one of {', '.join(Kind.values)}.", field="kind")
    if len(data) > document_size_max():
        raise DocumentTooLarge(
            f"The file has {len(data)} bytes; at most {document_size_max()} are accepted.",
            size_max=document_size_max(),
        )
    if not data:
        raise UnsupportedDocument("The file is empty.")
    content_type = sniff.detect(data)
    if content_type is None:
        raise UnsupportedDocument(
            "The file is not a complete PDF, OFD, JPEG or PNG document (judged from its bytes, not its name)."
        )
    sha256 = hashlib.sha256(data).hexdigest()
    owner = organisation_key(actor)
    with transaction.atomic():
        # Uploads of the same bytes take turns (a transaction-scoped advisory lock on the hash), so
        # one writes the file and the others find it whole.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"evidence:{sha256}"])
        stored = StoredFile.objects.filter(pk=sha256).first()
        recorded = stored is not None
        if stored is None:
            stored = StoredFile(sha256=sha256, size=len(data), content_type=content_type)
        # Written (or found whole) before the row commits: a row never names a missing file. A write
        # that fails raises, and the transaction leaves no row; a row insert that fails leaves a file
        # no row names, which nothing counts (the audit reports it as unreferenced, and the next
        # upload of the same bytes adopts it).
        storage.store(stored.storage_name, data, sha256, recorded=recorded)
        if not recorded:
            stored.save(force_insert=True)
        existing = Document.objects.filter(owner=owner, kind=kind, file=stored).first()
        if existing is not None:
            return Uploaded(existing, created=False)
        document = Document.objects.create(
            kind=kind,
            file=stored,
            size=len(data),
            content_type=content_type,
            original_name=_original_name(name),
            owner=owner,
            uploaded_by=actor,
        )
        return Uploaded(document, created=True)


def _document_pk(document_id: object) -> int | None:
    """A document named by a caller: its id as JSON gives it, as a form gives it (digits), or the
    Document a service already holds. Anything else names no document."""
    if isinstance(document_id, Document):
        return document_id.pk
    if isinstance(document_id, str) and document_id.isascii() and document_id.isdigit() and len(document_id) <= 18:
        document_id = int(document_id)
    if isinstance(document_id, int) and not isinstance(document_id, bool) and 0 < document_id < 2**63:
        return document_id
    return None


def document_for_citation(*, document_id: object, kinds: Iterable[str], actor: User, field: str) -> Document:
    """The document a caller names in a write, checked: it exists, the caller's organisation uploaded
    it (or the caller is staff), and it is of one of `kinds`. Otherwise 404 (ReferenceNotFound) on
    `field`, with the same words whether the document does not exist or is another organisation's
    (ids reveal nothing); 400 only for what is not an id at all.

    `document_id` is an id (int, or digits from a form) or a Document; a Document is read again from
    the database, so what is checked is what was stored, not what the caller's object says."""
    kinds = list(kinds)
    pk = _document_pk(document_id)
    if pk is None:
        raise ValidationFailed("Give the id of a document your organisation uploaded.", field=field)
    document = Document.objects.filter(pk=pk).select_related("file").first()
    if document is None or (document.owner != organisation_key(actor) and not actor.is_staff_member):
        raise ReferenceNotFound(f"No document {pk} uploaded by your organisation.", field=field)
    if document.kind not in kinds:
        raise ReferenceNotFound(f"Document {pk} is a {document.kind}; this needs a {' or '.join(kinds)}.", field=field)
    return document


def citation_add(
    *, document: Document, subject: str, role: str, principal: str, parties: Iterable[str], actor: User
) -> Citation:
    """Record that `subject` relies on `document` as `role`, for `principal`; `parties` may read it."""
    citation, _ = Citation.objects.get_or_create(
        document=document,
        subject=subject,
        role=role,
        defaults={
            "principal": principal,
            "parties": sorted(set(parties)),
            "sha256": document.file_id,
            "cited_by": actor,
        },
    )
    return citation


def files_discard_unreferenced(sha256s: Iterable[str]) -> int:
    """Remove from storage the files of `sha256s` that no row names: what an upload wrote inside a
    transaction that then rolled back (a refused portal form). Left there, the audit's storage check
    would report each as unreferenced. Under the upload's own advisory lock, so a concurrent upload
    of the same bytes either committed its row (the file is kept) or waits and writes it again.
    Call it after the transaction ended. Returns how many files were removed."""
    removed = 0
    for sha256 in sorted(set(sha256s)):
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"evidence:{sha256}"])
            if StoredFile.objects.filter(pk=sha256).exists():
                continue
            name = StoredFile(sha256=sha256).storage_name
            if storage.documents_storage().exists(name):
                storage.documents_storage().delete(name)
                removed += 1
    return removed
