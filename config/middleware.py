"""Cache-Control for answers that carry secrets or personal figures."""

from collections.abc import Callable
from typing import Final

from django.conf import settings
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
