"""The root of the project's error hierarchy.

Every expected failure that a caller may see (an overdrawn account, an illegal state change, a
reused idempotency key) is an `ApplicationError` subclass with a stable machine `code` and the
HTTP status the API answers with. Apps define their own subclasses in their `errors.py`; one API
exception handler renders them all as RFC 9457 problem details. Bugs are not ApplicationErrors:
they are assertions, and they surface as 500s.

`ErrorCode` is the one list of those codes: every `ApplicationError` names a member (a class that
names anything else fails when it is defined), the API's problem details answer only members (the
schema's `Problem.code` enum is this list, api/schema.py), the portal keys its sentences by them
(portal/errors.py), and docs/api.md's error table documents each (tests/project/test_error_codes.py).
"""

from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    """The stable machine words of every refusal, in the order of the schema's enum."""

    VALIDATION_ERROR = "validation_error"
    NOT_AUTHENTICATED = "not_authenticated"
    AUTHENTICATION_FAILED = "authentication_failed"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    INVALID_STATE = "invalid_state"
    POOL_EXHAUSTED = "pool_exhausted"
    CAP_EXCEEDED = "cap_exceeded"
    GRANT_EXHAUSTED = "grant_exhausted"
    CONTRACT_EXCEEDED = "contract_exceeded"
    DUPLICATE_BILL = "duplicate_bill"
    PROVIDER_NOT_LISTED = "provider_not_listed"
    COMPUTE_SOURCE_NOT_OFFERED = "compute_source_not_offered"
    ENTERPRISE_NOT_VERIFIED = "enterprise_not_verified"
    PROGRAM_YEAR_CLOSED = "program_year_closed"
    PROGRAM_CLOSED = "program_closed"
    STACKING_CEILING = "stacking_ceiling"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    IDEMPOTENCY_KEY_REQUIRED = "idempotency_key_required"
    DUPLICATE_CONTRACT = "duplicate_contract"
    ALREADY_EXISTS = "already_exists"
    AFFILIATED_PROVIDER = "affiliated_provider"
    GRANT_EXPIRED = "grant_expired"
    GRANT_REVOKED = "grant_revoked"
    FOUR_EYES = "four_eyes"
    NOT_ELIGIBLE = "not_eligible"
    UNSUPPORTED_DOCUMENT = "unsupported_document"
    DOCUMENT_TOO_LARGE = "document_too_large"
    INVALID_INVOICE_NUMBER = "invalid_invoice_number"
    DUPLICATE_INVOICE = "duplicate_invoice"
    THROTTLED = "throttled"
    LENGTH_REQUIRED = "length_required"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    NOT_ACCEPTABLE = "not_acceptable"
    REQUEST_TOO_LARGE = "request_too_large"
    BAD_REQUEST = "bad_request"
    SERVER_ERROR = "server_error"
    # A refusal with no more specific code: the base classes, and a REST framework refusal the
    # problem handler does not know (api/problems.py). Services raise subclasses.
    APPLICATION_ERROR = "application_error"
    ERROR = "error"
    # The ledger's own refusals (ledger/errors.py). The coupon program turns those it expects into
    # its own codes (an overdrawn pool is `pool_exhausted`); one reaching a client is a bug's sign.
    LEDGER_ERROR = "ledger_error"
    ACCOUNT_NOT_FOUND = "account_not_found"
    ACCOUNT_EXISTS_WITH_DIFFERENT_FLAGS = "account_exists_with_different_flags"
    ACCOUNT_CLOSED = "account_closed"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"
    OVERFLOW = "overflow"
    TRANSFER_EXISTS_WITH_DIFFERENT_FIELDS = "transfer_exists_with_different_fields"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_ALREADY_RESOLVED = "pending_transfer_already_resolved"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"


class ApplicationError(Exception):
    """An expected failure with a stable code, safe to show to the caller."""

    code: ClassVar[ErrorCode] = ErrorCode.APPLICATION_ERROR
    http_status: ClassVar[int] = 400
    title: ClassVar[str] = "The request could not be carried out."

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = ErrorCode(cls.code)  # A code outside the list is a ValueError, at import.

    def __init__(self, detail: str | None = None, **extra: object) -> None:
        self.detail = detail or self.title
        # Extra, machine-readable context (an account code, what is left); all JSON-serialisable.
        self.extra = extra
        super().__init__(self.detail)


class ValidationFailed(ApplicationError):
    """Bad input. `errors` maps each field to its messages; nothing was changed."""

    code = ErrorCode.VALIDATION_ERROR
    http_status = 400
    title = "The input is not valid."

    def __init__(self, errors: dict[str, list[str]] | str, *, field: str | None = None) -> None:
        if isinstance(errors, str):
            errors = {field or "non_field_errors": [errors]}
        self.errors = errors
        detail = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items())
        super().__init__(detail, errors=errors)


class AlreadyExists(ValidationFailed):
    """The input names something unique that is already taken (a username, a credit code, a filing
    number, a rule set's name): well formed, but in conflict with what exists. A ValidationFailed with
    its field errors, answered 409 so that input the schema allows is never a 400."""

    code = ErrorCode.ALREADY_EXISTS
    http_status = 409
    title = "It already exists."


class ReferenceNotFound(ValidationFailed):
    """A well-formed id in the input names nothing within the caller's reach (no such object, another
    organisation's, or not of the kind the field needs): 404 `not_found`, as a path id would be, with
    the field named. Input the schema allows is never a 400."""

    code = ErrorCode.NOT_FOUND
    http_status = 404
    title = "No such object within your reach."


class PermissionDenied(ApplicationError):
    """The caller's role may not take this action."""

    code = ErrorCode.PERMISSION_DENIED
    http_status = 403
    title = "You may not take this action."


class NotFound(ApplicationError):
    """No such object within the caller's reach (never says whether it exists elsewhere)."""

    code = ErrorCode.NOT_FOUND
    http_status = 404
    title = "Not found."


class InvalidState(ApplicationError):
    """The object is not in a state that allows this action."""

    code = ErrorCode.INVALID_STATE
    http_status = 409
    title = "The action is not allowed in the object's current state."


class FourEyes(PermissionDenied):
    """One person on both sides of a control: the requester deciding, the reviewer approving, the
    creator of a settlement confirming its payment. One class for the whole service."""

    code = ErrorCode.FOUR_EYES
    http_status = 403
    title = "The same person may not take both steps."
