"""Middleware of the project's own: requests of a shape the service refuses before any view, and
Cache-Control for answers that carry secrets or personal figures."""

from collections.abc import Callable
from typing import Final

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import add_never_cache_headers

# Anonymous requests whose answer is itself a secret: the bearer token.
NO_STORE_ANONYMOUS_PATHS: Final = frozenset({"/api/v1/auth/token/"})


def _has_credentials(request: HttpRequest) -> bool:
    if "HTTP_AUTHORIZATION" in request.META:  # A bearer token or an API key.
        return True
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return False  # Nobody signed in: the public answer is not read from the session at all.
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)


class NoStoreMiddleware:
    """Every answer to a signed-in person or a credentialed API client, and the token answer, is
    `Cache-Control: no-store` (with Django's never-cache set: no-cache, must-revalidate, private,
    max-age=0), so a shared computer's cache or a proxy keeps no token, key, settlement, export,
    dashboard or figure. Answers built for anyone (the public notice, static files) are left alone.

    Broader than a list of views on purpose: a new page with someone's figures is covered without
    anyone remembering to mark it. Static files never reach it: WhiteNoise answers them first.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if request.path in NO_STORE_ANONYMOUS_PATHS or _has_credentials(request):
            add_never_cache_headers(response)
        return response


class LengthRequired(SuspiciousOperation):
    """A body sent chunked (no Content-Length): the WSGI server hands Django no length, so Django reads
    nothing, and the request would be judged on an empty body. Refused with 411 instead."""


class RequestShapeMiddleware:
    """Refuse, before any view, what would otherwise be misread: a chunked body (411), and a NUL in the
    query string (400), which PostgreSQL refuses in text and a response header may not carry. Raised as
    SuspiciousOperation, so the answer is Django's 400 handler: problem details under /api/ (see
    `api.problems.bad_request`), the plain error page elsewhere."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower() and not request.META.get(
            "CONTENT_LENGTH"
        ):
            raise LengthRequired("Send the body with a Content-Length, not chunked.")
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
            raise SuspiciousOperation("The query string carries a NUL character.")
        return self.get_response(request)
