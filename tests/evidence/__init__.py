"""Documents for tests of other things: a fresh, valid document per call, and the evidence keyword
arguments an application or a redemption needs (`contract(...)`, `invoice(...)`)."""

import datetime as dt
import itertools
import os
from typing import Any

from accounts.models import User
from evidence.models import Document
from evidence.selectors import citations_of
from evidence.services import document_upload
from tests.factories import UserFactory

_serial = itertools.count(1)


def pdf_bytes(label: str = "") -> bytes:
    """A small, whole PDF whose bytes differ on every call (so each is a new file)."""
    n = next(_serial)
    body = f"%PDF-1.4\n% test document {os.getpid()}-{n} {label}\n1 0 obj << /Type /Catalog >> endobj\n"
    return (body + "trailer << /Root 1 0 R >>\n%%EOF\n").encode()


def document(actor: User, kind: str = "invoice", data: bytes | None = None) -> Document:
    """A document of `kind` uploaded by `actor` for their organisation."""
    return document_upload(actor=actor, kind=kind, data=data if data is not None else pdf_bytes(kind)).document


def invoice_number() -> str:
    """A fresh 20-digit fully digital e-invoice number."""
    return f"26{os.getpid() % 100000:05d}{next(_serial):013d}"


def invoice(actor: User) -> dict[str, Any]:
    """The invoice a redemption needs, uploaded by the provider's `actor`."""
    return {"invoice_number": invoice_number(), "invoice_document": document(actor, "invoice")}


def checked(application: Any) -> dict[str, Any]:
    """What a reviewer says they checked: every document the application (or its id) cites."""
    pk = application if isinstance(application, int) else application.pk
    ids = citations_of(f"application:{pk}").values_list("document_id", flat=True)
    return {"evidence_checked": sorted(set(ids))}


def member_of(provider_id: int) -> User:
    """A member of the provider, to upload its documents."""
    return User.objects.filter(provider_id=provider_id).order_by("pk").first() or UserFactory(provider_id=provider_id)


def invoice_ids(actor: User) -> dict[str, Any]:
    """`invoice(actor)` as an API body names it: the document by id."""
    return {"invoice_number": invoice_number(), "invoice_document": document(actor, "invoice").pk}


def contract_ids(actor: User, year: int, *, term_months: int = 12) -> dict[str, Any]:
    """`contract(actor, year)` as an API body names it: the document by id, the date as text."""
    evidence = contract(actor, year, term_months=term_months)
    return {
        "contract_document": evidence["contract_document"].pk,
        "contract_signed_on": evidence["contract_signed_on"].isoformat(),
        "contract_term_months": term_months,
    }


def contract(actor: User, year: int, *, term_months: int = 12) -> dict[str, Any]:
    """The signed contract an application needs, uploaded by the enterprise's `actor`, signed on 1 January of `year`."""
    return {
        "contract_document": document(actor, "contract"),
        "contract_signed_on": dt.date(year, 1, 1),  # Never after today when `year` is this year.
        "contract_term_months": term_months,
    }


def pdf_file(label: str = "document") -> Any:
    """A fresh PDF as a browser uploads it in a form."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(f"{label}.pdf", pdf_bytes(label), content_type="application/pdf")


def contract_fields(year: int) -> dict[str, Any]:
    """The apply form's contract fields: a fresh file, signed on 1 January of `year`, for 12 months."""
    return {"contract_file": pdf_file("contract"), "contract_signed_on": f"{year}-01-01", "contract_term_months": "12"}


def invoice_fields() -> dict[str, Any]:
    """The redeem form's invoice fields: a fresh number and file."""
    return {"invoice_number": invoice_number(), "invoice_file": pdf_file("invoice")}
