"""The coupon program's refusals, each with the stable code the API answers with (listed in the schema's `Problem`)."""

from approvals.errors import FourEyes
from config.errors import ApplicationError

__all__ = ["FourEyes"]  # Re-exported: one four-eyes refusal for the whole service.


class CouponError(ApplicationError):
    http_status = 409


class PoolExhausted(CouponError):
    code = "pool_exhausted"
    title = "The program year's pool cannot cover the amount."


class CapExceeded(CouponError):
    code = "cap_exceeded"
    title = "The enterprise's cap for the year cannot cover the amount."


class GrantExhausted(CouponError):
    code = "grant_exhausted"
    title = "Nothing is left on the grant."


class ContractExceeded(CouponError):
    code = "contract_exceeded"
    title = "The bills of the contract would add up past its fee."


class DuplicateBill(CouponError):
    code = "duplicate_bill"
    title = "This bill number was already redeemed on the contract."


class DuplicateInvoice(CouponError):
    code = "duplicate_invoice"
    title = "This invoice was already used: an invoice is subsidised once in the whole service."


class ProviderNotListed(CouponError):
    code = "provider_not_listed"
    title = "The provider is suspended, or not listed by the city on this day."


class ComputeSourceNotOffered(CouponError):
    code = "compute_source_not_offered"
    title = "The computing center offers no facility of this compute source on this day."


class EnterpriseNotVerified(CouponError):
    code = "enterprise_not_verified"
    title = "The enterprise is not verified."


class ProgramYearClosed(CouponError):
    code = "program_year_closed"
    title = "The program year is not open."


class DuplicateContract(CouponError):
    code = "duplicate_contract"
    title = "This contract already has an application."


class AffiliatedProvider(CouponError):
    code = "affiliated_provider"
    title = "The provider is the enterprise itself or a related party."


class GrantExpired(CouponError):
    code = "grant_expired"
    title = "The grant has expired."


class GrantRevoked(CouponError):
    code = "grant_revoked"
    title = "The grant was revoked."


class NotEligible(CouponError):
    """The enterprise may not take part in what it asks: outside the program's region, sanctioned, or
    not confirmed by staff for the flag it relies on."""

    code = "not_eligible"
    http_status = 403
    title = "The enterprise is not eligible for this."
