"""Writes about people and organisations: registration, verification, listing, users, related parties."""

from collections.abc import Sequence

from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Enterprise, Provider, RelatedParty, Role, User
from accounts.roles import require_role, require_superuser
from accounts.uscc import validate_uscc
from config.errors import InvalidState, ValidationFailed

NAME_LENGTH_MAX = 200


def _check_uscc(uscc: str, field: str = "uscc") -> str:
    uscc = (uscc or "").strip().upper()
    try:
        validate_uscc(uscc)
    except ValidationError as error:
        raise ValidationFailed({field: list(error.messages)}) from None
    return uscc


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not 0 < len(name) <= NAME_LENGTH_MAX:
        raise ValidationFailed(f"A name has 1 to {NAME_LENGTH_MAX} characters.", field="name")
    return name


def _check_username(username: str) -> None:
    try:
        User.username_validator(username)
    except ValidationError as error:
        raise ValidationFailed({"username": list(error.messages)}) from None
    if not username or User.objects.filter(username=username).exists():
        raise ValidationFailed("This username is taken or empty.", field="username")


def _check_password(password: str, user: User) -> None:
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise ValidationFailed({"password": list(error.messages)}) from None


def enterprise_register(
    *,
    username: str,
    password: str,
    email: str,
    name: str,
    uscc: str,
    has_registered_model: bool = False,
    model_filing_number: str = "",
    foundation_model_developer: bool = False,
    small_or_medium: bool = False,
) -> tuple[User, Enterprise]:
    """Register an enterprise, pending verification, with its first member."""
    name = _check_name(name)
    uscc = _check_uscc(uscc)
    model_filing_number = (model_filing_number or "").strip()
    if has_registered_model and not model_filing_number:
        raise ValidationFailed("A registered model needs its CAC filing number.", field="model_filing_number")
    if not has_registered_model:
        model_filing_number = ""
    _check_username(username)
    if Enterprise.objects.filter(uscc=uscc).exists() or Provider.objects.filter(uscc=uscc).exists():
        raise ValidationFailed("An organisation with this credit code is already registered.", field="uscc")
    user = User(username=username, email=email)
    _check_password(password, user)
    try:
        with transaction.atomic():
            enterprise = Enterprise.objects.create(
                name=name,
                uscc=uscc,
                has_registered_model=has_registered_model,
                model_filing_number=model_filing_number,
                foundation_model_developer=foundation_model_developer,
                small_or_medium=small_or_medium,
            )
            user.enterprise = enterprise
            user.set_password(password)
            user.save()
    except IntegrityError:
        # A concurrent registration took the username or the code between the check and here.
        raise ValidationFailed("This username or credit code was just registered.", field="uscc") from None
    return user, enterprise


def _enterprise_set_status(*, enterprise: Enterprise, actor: User, to: str, allowed_from: Sequence[str]) -> Enterprise:
    require_role(actor, Role.REVIEWER)
    with transaction.atomic():
        locked = Enterprise.objects.select_for_update().get(pk=enterprise.pk)
        if locked.status == to:
            return locked
        if locked.status not in allowed_from:
            raise InvalidState(f"A {locked.status} enterprise cannot become {to}.")
        locked.status = to
        if to == Enterprise.Status.VERIFIED:
            locked.verified_at = timezone.now()
        locked.save(update_fields=["status", "verified_at"])
        return locked


def enterprise_verify(*, enterprise: Enterprise, actor: User) -> Enterprise:
    """A reviewer verifies a pending (or reinstates a suspended) enterprise."""
    return _enterprise_set_status(
        enterprise=enterprise,
        actor=actor,
        to=Enterprise.Status.VERIFIED,
        allowed_from=[Enterprise.Status.PENDING, Enterprise.Status.SUSPENDED],
    )


def enterprise_suspend(*, enterprise: Enterprise, actor: User) -> Enterprise:
    return _enterprise_set_status(
        enterprise=enterprise,
        actor=actor,
        to=Enterprise.Status.SUSPENDED,
        allowed_from=[Enterprise.Status.PENDING, Enterprise.Status.VERIFIED],
    )


def provider_create(*, name: str, uscc: str, listing: str, actor: User) -> Provider:
    """A superuser lists a computing center."""
    require_superuser(actor)
    name = _check_name(name)
    uscc = _check_uscc(uscc)
    if listing not in Provider.Listing.values:
        raise ValidationFailed(f"listing is one of {', '.join(Provider.Listing.values)}.", field="listing")
    if Provider.objects.filter(uscc=uscc).exists() or Enterprise.objects.filter(uscc=uscc).exists():
        raise ValidationFailed("An organisation with this credit code is already registered.", field="uscc")
    return Provider.objects.create(name=name, uscc=uscc, listing=listing)


def provider_set_status(*, provider: Provider, status: str, actor: User) -> Provider:
    """A superuser suspends or reinstates a computing center."""
    require_superuser(actor)
    if status not in Provider.Status.values:
        raise ValidationFailed(f"status is one of {', '.join(Provider.Status.values)}.", field="status")
    with transaction.atomic():
        locked = Provider.objects.select_for_update().get(pk=provider.pk)
        if locked.status != status:
            locked.status = status
            locked.save(update_fields=["status"])
        return locked


def user_create(
    *,
    username: str,
    password: str,
    email: str = "",
    roles: Sequence[str] = (),
    enterprise: Enterprise | None = None,
    provider: Provider | None = None,
    actor: User,
) -> User:
    """A superuser creates a staff user with roles, or a member of one enterprise or provider."""
    require_superuser(actor)
    unknown = sorted(set(roles) - set(Role.values))
    if unknown:
        raise ValidationFailed(f"Unknown role {', '.join(unknown)}; roles are {', '.join(Role.values)}.", field="roles")
    if enterprise is not None and provider is not None:
        raise ValidationFailed("A user belongs to one organisation at most.", field="enterprise")
    if roles and (enterprise is not None or provider is not None):
        raise ValidationFailed("Members of an organisation hold no platform roles.", field="roles")
    _check_username(username)
    user = User(username=username, email=email, enterprise=enterprise, provider=provider)
    _check_password(password, user)
    user.set_password(password)
    with transaction.atomic():
        user.save()
        for role in roles:
            group, _ = Group.objects.get_or_create(name=role)
            user.groups.add(group)
    return user


def related_party_add(*, uscc_a: str, uscc_b: str, note: str = "", actor: User) -> RelatedParty:
    """List two credit codes as related parties (idempotent)."""
    require_role(actor, Role.REVIEWER, Role.APPROVER)
    a = _check_uscc(uscc_a, "uscc_a")
    b = _check_uscc(uscc_b, "uscc_b")
    if a == b:
        raise ValidationFailed("A pair needs two different codes.", field="uscc_b")
    low, high = sorted((a, b))
    party, _ = RelatedParty.objects.get_or_create(
        uscc_low=low, uscc_high=high, defaults={"note": note, "created_by": actor}
    )
    return party
