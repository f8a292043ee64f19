"""DRF authentication: `Authorization: Bearer <token>` for people, `Api-Key <key>` for machines.

A header that names a scheme but carries a wrong, expired or revoked secret fails with
`authentication_failed` (401); no header at all is `not_authenticated` (401). Every failure is
logged with the scheme, the client address and the path, never the secret.
"""

import logging

from django.http import HttpRequest
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.credentials import api_key_lookup, token_lookup
from accounts.models import AccessToken, ApiKey, User
from config import addresses

security_log = logging.getLogger("coupons.security")


def client_address(request: HttpRequest) -> str:
    return addresses.client_address(request) or "-"


class _SchemeAuthentication(authentication.BaseAuthentication):
    scheme = ""

    def _secret(self, request: Request) -> str | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != self.scheme.lower():
            return None
        secret = secret.strip()
        if not secret or " " in secret:
            self._fail(request, "malformed credentials")
        return secret

    def _fail(self, request: Request, what: str) -> None:
        security_log.warning(
            "authentication failed: scheme=%s reason=%s address=%s path=%s",
            self.scheme,
            what,
            client_address(request),
            request.path,
        )
        raise exceptions.AuthenticationFailed(f"The {self.scheme} credentials are wrong, expired or revoked.")

    def authenticate_header(self, request: Request) -> str:
        return self.scheme


class BearerTokenAuthentication(_SchemeAuthentication):
    scheme = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, AccessToken] | None:
        secret = self._secret(request)
        if secret is None:
            return None
        token = token_lookup(secret)
        if token is None:
            self._fail(request, "unknown, expired or revoked token")
            raise AssertionError("unreachable")
        return token.user, token


class ApiKeyAuthentication(_SchemeAuthentication):
    scheme = "Api-Key"

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        secret = self._secret(request)
        if secret is None:
            return None
        key = api_key_lookup(secret)
        if key is None:
            self._fail(request, "unknown or revoked API key")
            raise AssertionError("unreachable")
        return key.user, key
