"""The coupon program's refusals, each with the stable code the API answers with (listed in the schema's `Problem`)."""

from approvals.errors import FourEyes
from config.errors import ApplicationError, ErrorCode

__all__ = ["FourEyes"]  # Re-exported: one four-eyes refusal for the whole service.


class CouponError(ApplicationError):
    http_status = 409


class PoolExhausted(CouponError):
    code = ErrorCode.POOL_EXHAUSTED
    title = "The program year's pool cannot cover the amount."


class CapExceeded(CouponError):
    code = ErrorCode.CAP_EXCEEDED
    title = "The enterprise's cap for the year cannot cover the amount."


class GrantExhausted(CouponError):
    code = ErrorCode.GRANT_EXHAUSTED
    title = "Nothing is left on the grant."


class ContractExceeded(CouponError):
    code = ErrorCode.CONTRACT_EXCEEDED
    title = "The bills of the contract would add up past its fee."


class DuplicateBill(CouponError):
    code = ErrorCode.DUPLICATE_BILL
    title = "This bill number was already redeemed on the contract."


class DuplicateInvoice(CouponError):
    code = ErrorCode.DUPLICATE_INVOICE
    title = "This invoice was already used: an invoice is subsidised once in the whole service."


class ProviderNotListed(CouponError):
    code = ErrorCode.PROVIDER_NOT_LISTED
    title = "The provider is suspended, or not listed by the city on this day."


class ComputeSourceNotOffered(CouponError):
    code = ErrorCode.COMPUTE_SOURCE_NOT_OFFERED
    title = "The computing center offers no facility of this compute source on this day."


class EnterpriseNotVerified(CouponError):
    code = ErrorCode.ENTERPRISE_NOT_VERIFIED
    title = "The enterprise is not verified."


class ProgramYearClosed(CouponError):
    code = ErrorCode.PROGRAM_YEAR_CLOSED
    title = "The program year is not open."


class ProgramClosed(CouponError):
    code = ErrorCode.PROGRAM_CLOSED
    title = "The program is closed."


class StackingCeiling(CouponError):
    code = ErrorCode.STACKING_CEILING
    title = "The contract's subsidies from programs that stack have reached their combined ceiling."


class DuplicateContract(CouponError):
    code = ErrorCode.DUPLICATE_CONTRACT
    title = "This contract already has an application."


class AffiliatedProvider(CouponError):
    code = ErrorCode.AFFILIATED_PROVIDER
    title = "The provider is the enterprise itself or a related party."


class GrantExpired(CouponError):
    code = ErrorCode.GRANT_EXPIRED
    title = "The grant has expired."


class GrantRevoked(CouponError):
    code = ErrorCode.GRANT_REVOKED
    title = "The grant was revoked."


class NotEligible(CouponError):
    """The enterprise may not take part in what it asks: outside the program's region, sanctioned,
    not confirmed by staff for the flag it relies on, or already applied to a one-time program."""

    code = ErrorCode.NOT_ELIGIBLE
    http_status = 403
    title = "The enterprise is not eligible for this."
