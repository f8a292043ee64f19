"""The coupon program's refusals, each with the stable code the API answers with (DESIGN.md §6)."""

from config.errors import ApplicationError


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


class ProviderNotListed(CouponError):
    code = "provider_not_listed"
    title = "The provider is suspended or not listed by the city."


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


class FourEyes(CouponError):
    code = "four_eyes"
    http_status = 403
    title = "The same person may not take both steps."


class NotEligible(CouponError):
    """Outside the program's region by its credit code, sanctioned, or not flagged by staff for
    what it asks; `detail` says which."""

    code = "not_eligible"
    http_status = 403
    title = "The organisation is not eligible for the program."
