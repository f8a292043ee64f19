"""A service's refusal, said in the person's language.

Services raise `ApplicationError`s with a stable `code` and English detail for the API. The portal
says the same thing by code, with the figures the error carries (what is left) in yuan.
"""

from django.utils.translation import gettext as _

from config.errors import ApplicationError, ValidationFailed
from portal.formatting import yuan_text


def _left(error: ApplicationError, name: str = "available_fen") -> str:
    value = error.extra.get(name)
    return yuan_text(value) if isinstance(value, int) else "—"


def describe(error: ApplicationError) -> str:
    """One sentence for a person. Unknown codes fall back to the service's own words."""
    code = error.code
    if code == "pool_exhausted":
        return _("The pool has only %(left)s left. Approve a smaller amount.") % {"left": _left(error)}
    if code == "cap_exceeded":
        return _("The enterprise has only %(left)s of its annual cap left. Approve a smaller amount.") % {
            "left": _left(error)
        }
    if code == "grant_exhausted":
        return _("Nothing is left on this coupon.")
    if code == "contract_exceeded":
        return _("The bills of this contract would pass its fee: bills of %(left)s remain.") % {
            "left": _left(error, "remaining_fen")
        }
    reason = error.extra.get("reason")
    if reason == "redemption_mode":
        return _(
            "This program year does not work this way: with provider deduction the computing center deducts the "
            "coupon from its bill; with enterprise reimbursement the enterprise pays in full and claims."
        )
    if reason == "hold_expired" and "claim" in error.extra:
        return _("The claim's hold lapsed; reject the claim, and the enterprise may claim the invoice again.")
    if reason == "hold_expired":
        return _("The hold expired before it was captured; the amount is back on the coupon. Redeem the bill again.")
    if reason == "settlement_unpaid":
        return _("This redemption is in settlement #%(settlement)s, which is not paid yet; pay it first.") % {
            "settlement": error.extra.get("settlement", "—")
        }
    sentences = {
        "duplicate_bill": _("This bill number was already redeemed under this contract."),
        "duplicate_invoice": _(
            "This invoice was already used: an invoice is subsidised once, whatever contract or computing center "
            "names it."
        ),
        "invalid_invoice_number": _(
            "This is not a Chinese invoice number: enter the 20 digits of a fully digital e-invoice, or the 10 or "
            "12-digit invoice code and the 8-digit number."
        ),
        "unsupported_document": _("The file is not a complete PDF, OFD, JPEG or PNG document."),
        "document_too_large": _("The file is too large."),
        "provider_not_listed": _("The computing center is suspended or not listed and takes no part."),
        "compute_source_not_offered": _(
            "The computing center offers no facility of this compute source today. Choose the compute source "
            "it offers, or another computing center."
        ),
        "enterprise_not_verified": _("The enterprise is not verified yet, or is suspended."),
        "program_year_closed": _("The program year is closed."),
        "duplicate_contract": _("This contract with this computing center already has an application."),
        "affiliated_provider": _("The computing center is the enterprise itself or a related party."),
        "grant_expired": _("The coupon has expired."),
        "grant_revoked": _("The coupon was revoked."),
        "four_eyes": _("Four eyes: the approver may not be the reviewer (or the requester)."),
        "invalid_state": _("This action is not allowed in the current state."),
        "permission_denied": _("Your role may not take this action."),
        "not_found": _("Not found."),
    }
    if code in sentences:
        return sentences[code]
    if isinstance(error, ValidationFailed):
        return _("The input is not valid: %(detail)s") % {"detail": error.detail}
    return error.detail


def describe_with_detail(error: ApplicationError) -> str:
    """`describe`, and for a generic refusal the service's own words after it (English)."""
    sentence = describe(error)
    if error.code == "invalid_state" and "reason" not in error.extra and sentence != error.detail:
        return f"{sentence} ({error.detail})"
    return sentence
