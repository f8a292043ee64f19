"""Refusals about people and organisations. Sign-in failures: the API maps them to 401
`authentication_failed` and 429 `throttled`; the portal and the admin say them on their sign-in
forms in the person's language. A provider change, a sanction or a role grant decided by the person
who asked for it is `config.errors.FourEyes`, the one four-eyes refusal of the service."""

from config.errors import ApplicationError, ErrorCode


class NotAuthenticated(ApplicationError):
    """No one is signed in where a person must be (`accounts.caller.caller`)."""

    code = ErrorCode.NOT_AUTHENTICATED
    http_status = 401
    title = "Authentication is required."


class SignInFailed(ApplicationError):
    """The username, the password or the second-factor code is wrong (never which one)."""

    code = ErrorCode.AUTHENTICATION_FAILED
    http_status = 401
    title = "The username, password or code is wrong."


class SignInThrottled(ApplicationError):
    """Too many failed sign-ins for this username from this address: locked for `wait_s`."""

    code = ErrorCode.THROTTLED
    http_status = 429
    title = "Too many failed sign-ins."

    def __init__(self, wait_s: int) -> None:
        super().__init__(f"Too many failed sign-ins; try again in {wait_s} seconds.", retry_after_s=wait_s)
        self.wait_s = wait_s
