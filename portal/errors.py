"""A service's refusal, said in the person's language.

Services raise `ApplicationError`s with a stable `code` and English detail for the API. The portal
says the same thing by code, with the figures the error carries (what is left) in yuan.
"""

from typing import Final

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.errors import ApplicationError, ErrorCode, ValidationFailed
from config.money import yuan_text

# What each refusal means, in the person's language, by its code.
SENTENCES: Final[dict[ErrorCode, Promise]] = {
    ErrorCode.DUPLICATE_BILL: gettext_lazy("This bill number was already redeemed under this contract."),
    ErrorCode.DUPLICATE_INVOICE: gettext_lazy(
        "This invoice was already used: an invoice is subsidised once, whatever contract or computing center names it."
    ),
    ErrorCode.INVALID_INVOICE_NUMBER: gettext_lazy(
        "This is not a Chinese invoice number: enter the 20 digits of a fully digital e-invoice, or the 10 or "
        "12-digit invoice code and the 8-digit number."
    ),
    ErrorCode.UNSUPPORTED_DOCUMENT: gettext_lazy("The file is not a complete PDF, OFD, JPEG or PNG document."),
    ErrorCode.DOCUMENT_TOO_LARGE: gettext_lazy("The file is too large."),
    ErrorCode.PROVIDER_NOT_LISTED: gettext_lazy("The computing center is suspended or not listed and takes no part."),
    ErrorCode.COMPUTE_SOURCE_NOT_OFFERED: gettext_lazy(
        "The computing center offers no facility of this compute source today. Choose the compute source "
        "it offers, or another computing center."
    ),
    ErrorCode.ENTERPRISE_NOT_VERIFIED: gettext_lazy("The enterprise is not verified yet, or is suspended."),
    ErrorCode.PROGRAM_YEAR_CLOSED: gettext_lazy("The program year is closed."),
    ErrorCode.PROGRAM_CLOSED: gettext_lazy("The program is closed."),
    ErrorCode.STACKING_CEILING: gettext_lazy(
        "The contract's subsidies from programs that stack have reached their combined ceiling."
    ),
    ErrorCode.DUPLICATE_CONTRACT: gettext_lazy("This contract with this computing center already has an application."),
    ErrorCode.AFFILIATED_PROVIDER: gettext_lazy("The computing center is the enterprise itself or a related party."),
    ErrorCode.GRANT_EXPIRED: gettext_lazy("The coupon has expired."),
    ErrorCode.GRANT_REVOKED: gettext_lazy("The coupon was revoked."),
    ErrorCode.FOUR_EYES: gettext_lazy("Four eyes: the approver may not be the reviewer (or the requester)."),
    ErrorCode.INVALID_STATE: gettext_lazy("This action is not allowed in the current state."),
    ErrorCode.PERMISSION_DENIED: gettext_lazy("Your role may not take this action."),
    ErrorCode.NOT_FOUND: gettext_lazy("Not found."),
}


def _left(error: ApplicationError, name: str = "available_fen") -> str:
    value = error.extra.get(name)
    return yuan_text(value) if isinstance(value, int) else "—"


def describe(error: ApplicationError) -> str:
    """One sentence for a person. Unknown codes fall back to the service's own words."""
    code = error.code
    if code == ErrorCode.POOL_EXHAUSTED:
        return _("The pool has only %(left)s left. Approve a smaller amount.") % {"left": _left(error)}
    if code == ErrorCode.CAP_EXCEEDED:
        return _("The enterprise has only %(left)s of its annual cap left. Approve a smaller amount.") % {
            "left": _left(error)
        }
    if code == ErrorCode.GRANT_EXHAUSTED:
        return _("Nothing is left on this coupon.")
    if code == ErrorCode.CONTRACT_EXCEEDED:
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
    if code in SENTENCES:
        return str(SENTENCES[code])
    if isinstance(error, ValidationFailed):
        return _("The input is not valid: %(detail)s") % {"detail": error.detail}
    return error.detail


def describe_with_detail(error: ApplicationError) -> str:
    """`describe`, and for a generic refusal the service's own words after it (English)."""
    sentence = describe(error)
    if error.code == ErrorCode.INVALID_STATE and "reason" not in error.extra and sentence != error.detail:
        return f"{sentence} ({error.detail})"
    return sentence
