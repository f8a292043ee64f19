"""The invoice register: an invoice is subsidised once in the whole service, all programs and years,
whatever contract, center or claim names it (`coupons.models.Invoice`, docs/evidence.md).

A redemption or a claim calls `invoice_use` inside its own transaction, after its row exists. The
register's unique index over the numbers in use decides a race: of two uses of one number, the
second waits for the first to commit and is then refused with 409 `duplicate_invoice`; if the first
rolls back, the second goes through. A use is released (a hold voided or expired, a claim rejected),
never deleted, so the register keeps who used which invoice when.
"""

from collections.abc import Iterable

from django.db import IntegrityError, connection, transaction
from django.db.models import Value
from django.db.models.functions import Replace
from django.db.models.query import QuerySet
from django.utils import timezone

from config import db
from coupons.errors import DuplicateInvoice
from coupons.invoices import invoice_key
from coupons.models import Claim, Invoice, Redemption
from evidence.models import Document


def invoices_live_with_key(number: str) -> QuerySet[Invoice]:
    """Live uses of the invoice `number` names, however it was written (`coupons.invoices.invoice_key`)."""
    return Invoice.objects.annotate(key=Replace("number", Value("-"), Value(""))).filter(
        key=invoice_key(number), released_at__isnull=True
    )


def invoice_in_use(number: str) -> bool:
    return invoices_live_with_key(number).exists()


def invoice_file_lock(document: Document) -> None:
    """Take turns with every other use of the same file, until the transaction ends.

    One file stands behind one invoice: uses of the same bytes take turns here, so two numbers cannot
    both be given the same file by racing (found from outside: one uploaded PDF cited for five
    "different" invoices, all paid). Taken before any ledger account is locked (a redemption takes it
    right after its grant; `coupons/services/redemptions_fast.py` takes the same lock in SQL)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"invoice-file:{document.file_id}"])


def invoice_files_lock(documents: Iterable[Document]) -> None:
    """`invoice_file_lock` for several documents, in one order (by file) and one wait."""
    names = sorted({f"invoice-file:{document.file_id}" for document in documents})
    cursor = db.cursor()
    with db.pipeline():  # In this order; the server runs them one after another.
        for name in names:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name], prepare=True)


def invoice_use(
    *,
    number: str,
    document: Document,
    amount_fen: int,
    enterprise_id: int,
    redemption: Redemption | None = None,
    claim: Claim | None = None,
) -> Invoice:
    """Record that `number` (normalised: `coupons.invoices.invoice_number_normalise`) is used by the
    redemption or the claim, or raise `DuplicateInvoice` when another live use holds it."""
    assert (redemption is None) != (claim is None), "an invoice is used by one redemption or one claim"
    invoice_file_lock(document)
    if invoice_in_use(number):
        raise DuplicateInvoice(f"Invoice {number} was already used; an invoice is subsidised once.")
    other = (
        Invoice.objects.filter(document__file_id=document.file_id, released_at__isnull=True)
        .exclude(number=number)
        .values_list("number", "document__owner")
        .first()
    )
    if other is not None:
        # The number is named only to the organisation that used it (found from outside: uploading
        # the same bytes told another organisation which invoice number they stood behind).
        which = f"invoice {other[0]}" if other[1] == document.owner else "another invoice number"
        raise DuplicateInvoice(
            f"This invoice file already stands behind {which}; each invoice is its own file.",
            field="invoice_document",
        )
    try:
        with transaction.atomic():
            return Invoice.objects.create(
                number=number,
                document=document,
                amount_fen=amount_fen,
                enterprise_id=enterprise_id,
                redemption=redemption,
                claim=claim,
            )
    except IntegrityError as error:
        if "coupons_invoice_used_once" in str(error):
            raise DuplicateInvoice(f"Invoice {number} was already used; an invoice is subsidised once.") from None
        raise


def invoice_release(*, redemption: Redemption | None = None, claim: Claim | None = None) -> int:
    """Free the invoice of a hold that was voided or expired, or of a rejected claim; return how many
    uses were released (0 or 1). The caller holds the redemption's or claim's lock."""
    assert (redemption is None) != (claim is None)
    uses = Invoice.objects.filter(released_at__isnull=True)
    uses = uses.filter(redemption=redemption) if redemption is not None else uses.filter(claim=claim)
    return uses.update(released_at=timezone.now())
