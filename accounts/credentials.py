"""Secrets for machines and sessions: issue, hash, look up and revoke tokens and API keys.

Secrets are 256 random bits; only their SHA-256 is stored (a fast hash is right for secrets this
long: there is nothing to guess). A lookup is by hash, so a stolen database holds no usable secret.
"""

import hashlib
import secrets
from datetime import timedelta
from typing import Final

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import AccessToken, ApiKey, Provider, User
from accounts.roles import require_provider_member
from config.errors import InvalidState, NotFound, PermissionDenied, ValidationFailed

TOKEN_PREFIX: Final = "hzt_"  # noqa: S105 - a visible prefix, not a secret
API_KEY_PREFIX: Final = "hzk_"
API_KEY_NAME_LENGTH_MAX: Final = 100
API_KEYS_PER_PROVIDER_MAX: Final = 50


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_issue(*, user: User) -> tuple[AccessToken, str]:
    """A new bearer token for a user who has just signed in (accounts.signin.sign_in_check).

    Returns the token and its secret, shown once. Changing the user's password revokes every
    token issued before (a database trigger on the user's password)."""
    secret = _new_secret(TOKEN_PREFIX)
    token = AccessToken.objects.create(
        user=user,
        key_hash=secret_hash(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        expires_at=timezone.now() + timedelta(seconds=settings.API_TOKEN_LIFETIME_S),
    )
    return token, secret


def token_revoke(*, token: AccessToken) -> None:
    AccessToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def token_lookup(secret: str) -> AccessToken | None:
    """The live token with this secret, or None (unknown, expired, revoked, or inactive user)."""
    token = AccessToken.objects.select_related("user").filter(key_hash=secret_hash(secret)).first()
    if token is None or token.revoked_at is not None or token.expires_at <= timezone.now():
        return None
    return token if token.user.is_active else None


def api_key_create(*, provider: Provider, name: str, actor: User) -> tuple[ApiKey, str]:
    """A provider's member creates an API key; the secret is returned once.

    Only its members: a key acts as the provider (it redeems, uploads invoices), so a superuser who
    made one could redeem fabricated bills alone (found from outside). A superuser may still list and
    revoke a provider's keys."""
    require_provider_member(actor, provider.pk)
    if hasattr(actor, "api_key"):
        raise PermissionDenied("An API key may not manage API keys.")
    name = (name or "").strip()
    if not 0 < len(name) <= API_KEY_NAME_LENGTH_MAX:
        raise ValidationFailed(f"name has 1 to {API_KEY_NAME_LENGTH_MAX} characters.", field="name")
    if ApiKey.objects.filter(provider=provider, revoked_at__isnull=True).count() >= API_KEYS_PER_PROVIDER_MAX:
        raise InvalidState(f"A provider has at most {API_KEYS_PER_PROVIDER_MAX} live API keys; revoke one first.")
    secret = _new_secret(API_KEY_PREFIX)
    prefix = secret[: len(API_KEY_PREFIX) + 8]
    with transaction.atomic():
        machine = User(username=f"apikey-{prefix}", provider=provider)
        machine.set_unusable_password()
        machine.save()
        key = ApiKey.objects.create(
            provider=provider, user=machine, name=name, prefix=prefix, key_hash=secret_hash(secret), created_by=actor
        )
    return key, secret


def api_key_revoke(*, key: ApiKey, actor: User) -> ApiKey:
    """Revoke a key: its very next request fails."""
    if not actor.is_superuser:
        require_provider_member(actor, key.provider_id)
    if hasattr(actor, "api_key"):
        raise PermissionDenied("An API key may not manage API keys.")
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
            User.objects.filter(pk=locked.user_id).update(is_active=False)
        return locked


def api_key_lookup(secret: str) -> ApiKey | None:
    """The live key with this secret, or None."""
    key = ApiKey.objects.select_related("user", "provider").filter(key_hash=secret_hash(secret)).first()
    if key is None or key.revoked_at is not None or not key.user.is_active:
        return None
    return key


def api_key_get(*, provider: Provider, key_id: int) -> ApiKey:
    try:
        return ApiKey.objects.get(provider=provider, pk=key_id)
    except ApiKey.DoesNotExist:
        raise NotFound("No such API key.") from None
