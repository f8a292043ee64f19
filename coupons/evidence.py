"""What the coupon program cites from the documents app: each application's contract and other
documents, each redemption's invoice (docs/evidence.md).

A citation names the enterprise the evidence is for (its principal) and both sides of the contract as
its parties: the computing center sees the contract it confirms, the enterprise sees the invoice billed
in its name, staff see everything, and nobody else sees either (`evidence.selectors.documents_visible_to`).
"""

from dataclasses import dataclass

from accounts.models import User
from config.errors import ValidationFailed
from evidence.models import Document
from evidence.selectors import citations_of, same_bytes_elsewhere
from evidence.services import citation_add, document_for_citation


def enterprise_key(enterprise_id: int) -> str:
    return f"enterprise:{enterprise_id}"


def provider_key(provider_id: int) -> str:
    return f"provider:{provider_id}"


def document_checked(*, value: object, kinds: list[str], actor: User, field: str) -> Document:
    """The document named by `value` (an id, or a Document), uploaded by the actor's organisation and of
    one of `kinds`; otherwise 400 `validation_error` on `field`."""
    if value is None:
        raise ValidationFailed(f"{field} is required: the id of a document your organisation uploaded.", field=field)
    document_id = value.pk if isinstance(value, Document) else value
    return document_for_citation(document_id=document_id, kinds=kinds, actor=actor, field=field)


def cite(*, document: Document, subject: str, role: str, enterprise_id: int, provider_id: int, actor: User) -> None:
    """Record that `subject` relies on `document` for the enterprise; both sides of its contract may read it."""
    citation_add(
        document=document,
        subject=subject,
        role=role,
        principal=enterprise_key(enterprise_id),
        parties=[enterprise_key(enterprise_id), provider_key(provider_id)],
        actor=actor,
    )


@dataclass(frozen=True)
class Cited:
    """A document as its reader sees it beside the figures it supports."""

    document: Document
    role: str
    # The same bytes are cited for another enterprise: a reviewer must look before accepting them.
    shared_with_other_enterprise: bool


def cited_documents(*, subject: str, enterprise_id: int) -> list[Cited]:
    """The documents `subject` cites, in the order they were cited, each with whether another
    enterprise offered the same bytes."""
    principal = enterprise_key(enterprise_id)
    shared: dict[str, bool] = {}
    cited = []
    for citation in citations_of(subject):
        sha256 = citation.document.file_id
        if sha256 not in shared:
            shared[sha256] = bool(same_bytes_elsewhere(sha256=sha256, principal=principal))
        cited.append(Cited(document=citation.document, role=citation.role, shared_with_other_enterprise=shared[sha256]))
    return cited
