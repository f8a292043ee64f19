"""The root of the project's error hierarchy.

Every expected failure that a caller may see (an overdrawn account, an illegal state change, a
reused idempotency key) is an `ApplicationError` subclass with a stable machine `code` and the
HTTP status the API answers with. Apps define their own subclasses in their `errors.py`; one API
exception handler renders them all as RFC 9457 problem details. Bugs are not ApplicationErrors:
they are assertions, and they surface as 500s.
"""

from typing import ClassVar


class ApplicationError(Exception):
    """An expected failure with a stable code, safe to show to the caller."""

    code: ClassVar[str] = "application_error"
    http_status: ClassVar[int] = 400
    title: ClassVar[str] = "The request could not be carried out."

    def __init__(self, detail: str | None = None, **extra: object) -> None:
        self.detail = detail or self.title
        # Extra, machine-readable context (an account code, what is left); all JSON-serialisable.
        self.extra = extra
        super().__init__(self.detail)


class ValidationFailed(ApplicationError):
    """Bad input. `errors` maps each field to its messages; nothing was changed."""

    code = "validation_error"
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

    code = "already_exists"
    http_status = 409
    title = "It already exists."


class ReferenceNotFound(ValidationFailed):
    """A well-formed id in the input names nothing within the caller's reach (no such object, another
    organisation's, or not of the kind the field needs): 404 `not_found`, as a path id would be, with
    the field named. Input the schema allows is never a 400."""

    code = "not_found"
    http_status = 404
    title = "No such object within your reach."


class PermissionDenied(ApplicationError):
    """The caller's role may not take this action."""

    code = "permission_denied"
    http_status = 403
    title = "You may not take this action."


class NotFound(ApplicationError):
    """No such object within the caller's reach (never says whether it exists elsewhere)."""

    code = "not_found"
    http_status = 404
    title = "Not found."


class InvalidState(ApplicationError):
    """The object is not in a state that allows this action."""

    code = "invalid_state"
    http_status = 409
    title = "The action is not allowed in the object's current state."


class FourEyes(PermissionDenied):
    """One person on both sides of a control: the requester deciding, the reviewer approving, the
    creator of a settlement confirming its payment. One class for the whole service."""

    code = "four_eyes"
    http_status = 403
    title = "The same person may not take both steps."
