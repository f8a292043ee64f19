"""Documents: the files that stand behind a figure (a signed contract, an invoice, a proof of
payment or delivery, a model filing certificate), and where each is cited.

This app knows nothing of coupons, as the ledger does not. A `Document` is one upload: what it is
(`kind`), who uploaded it and for which organisation (`owner`), when, and the file's size, type
(judged from its bytes, `evidence/sniff.py`) and SHA-256. Files are stored content-addressed
(`evidence/storage.py`): the same bytes are stored once, however often they are uploaded.

A `Citation` records that some object of another app (an application, a redemption, a claim: the
`subject`, a plain string such as `redemption:7`) relies on a document, for which organisation
(`principal`), and which organisations are parties to it (`parties`): they, the uploader's
organisation and staff may read the document, and nobody else (`evidence/selectors.py`).

Both tables are insert-only: what was uploaded and cited is history.
"""

import pgtrigger
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

ORGANISATION_KEY_LENGTH_MAX = 32
SUBJECT_LENGTH_MAX = 64
ORIGINAL_NAME_LENGTH_MAX = 200


class Kind(models.TextChoices):
    CONTRACT = "contract", "signed contract"
    INVOICE = "invoice", "invoice"
    PAYMENT_PROOF = "payment_proof", "proof of payment"
    DELIVERY_PROOF = "delivery_proof", "proof of delivery or usage"
    FILING_CERTIFICATE = "filing_certificate", "model filing certificate"
    OTHER = "other", "other"


class StoredFile(models.Model):
    """One file in storage, by its SHA-256: written before any document row names it, never changed."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=32)
    stored_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="evidence_file_sha256_hex"),
            models.CheckConstraint(condition=Q(size__gt=0), name="evidence_file_size_positive"),
        ]
        triggers = [pgtrigger.Protect(name="stored_file_insert_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return self.sha256

    @property
    def storage_name(self) -> str:
        """Where the bytes are: `documents/ab/cd/abcd…` (content-addressed)."""
        return f"documents/{self.sha256[:2]}/{self.sha256[2:4]}/{self.sha256}"


class Document(models.Model):
    """One upload of a file: what it is, who uploaded it for which organisation, and when."""

    kind = models.CharField(max_length=24, choices=Kind.choices)
    file = models.ForeignKey(StoredFile, on_delete=models.PROTECT, related_name="documents", db_column="sha256")
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=32)
    original_name = models.CharField(max_length=ORIGINAL_NAME_LENGTH_MAX, blank=True)
    # The uploader's organisation when they uploaded it: "enterprise:5", "provider:3" or "staff".
    owner = models.CharField(max_length=ORGANISATION_KEY_LENGTH_MAX)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [
            # The same bytes uploaded again by the same organisation as the same kind are the same
            # document: the second upload answers with the first.
            models.UniqueConstraint(fields=["owner", "kind", "file"], name="evidence_document_once_per_owner"),
            models.CheckConstraint(
                condition=Q(
                    kind__in=["contract", "invoice", "payment_proof", "delivery_proof", "filing_certificate", "other"]
                ),
                name="evidence_document_kind_valid",
            ),
            models.CheckConstraint(condition=Q(size__gt=0), name="evidence_document_size_positive"),
        ]
        triggers = [pgtrigger.Protect(name="document_insert_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"{self.kind} {self.pk} ({self.file_id[:12]})"

    @property
    def sha256(self) -> str:
        return self.file_id


class Citation(models.Model):
    """A document relied on by an object of another app, for one organisation, read by its parties."""

    document = models.ForeignKey(Document, on_delete=models.PROTECT, related_name="citations")
    subject = models.CharField(max_length=SUBJECT_LENGTH_MAX, help_text='What cites it: "application:12", ...')
    role = models.CharField(max_length=24, help_text="What the document proves there (contract, invoice, ...).")
    principal = models.CharField(
        max_length=ORGANISATION_KEY_LENGTH_MAX, help_text='Whose evidence it is: "enterprise:5".'
    )
    parties = ArrayField(
        models.CharField(max_length=ORGANISATION_KEY_LENGTH_MAX),
        help_text="The organisations that may read the document because of this citation.",
    )
    # Denormalised from the document, so "the same bytes cited for another enterprise" is one index scan.
    sha256 = models.CharField(max_length=64)
    cited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    cited_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "subject", "role"], name="evidence_citation_once"),
        ]
        indexes = [
            models.Index(fields=["sha256"], name="evidence_citation_sha256"),
            models.Index(fields=["subject"], name="evidence_citation_subject"),
        ]
        triggers = [pgtrigger.Protect(name="citation_insert_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"{self.subject} cites document {self.document_id} as {self.role}"
