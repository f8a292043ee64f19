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
