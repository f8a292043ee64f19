"""The invoice register: an invoice is subsidised once in the whole service, all programs and years,
whatever contract, center or claim names it (`coupons.models.Invoice`, docs/evidence.md).

A redemption or a claim calls `invoice_use` inside its own transaction, after its row exists. The
register's unique index over the numbers in use decides a race: of two uses of one number, the
second waits for the first to commit and is then refused with 409 `duplicate_invoice`; if the first
rolls back, the second goes through. A use is released (a hold voided or expired, a claim rejected),
never deleted, so the register keeps who used which invoice when.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone

from coupons.errors import DuplicateInvoice
from coupons.models import Claim, Invoice, Redemption
from evidence.models import Document


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
    if Invoice.objects.filter(number=number, released_at__isnull=True).exists():
        raise DuplicateInvoice(f"Invoice {number} was already used; an invoice is subsidised once.")
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
