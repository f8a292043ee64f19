"""Writes about people and organisations: registration, verification (with the flags staff
confirm), declared flags, listing, users, related parties, the register of model filings, sanctions."""

import datetime as dt
from collections.abc import Mapping, Sequence

from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.errors import FourEyes
from accounts.models import (
    ENTERPRISE_FLAGS,
    Enterprise,
    EnterpriseFlagsEvent,
    ModelFiling,
    Provider,
    RelatedParty,
    Role,
    Sanction,
    User,
)
from accounts.roles import require_enterprise_member, require_role, require_superuser
from accounts.uscc import validate_uscc
from config.errors import InvalidState, ValidationFailed

NAME_LENGTH_MAX = 200
FILING_NUMBER_LENGTH_MAX = 100
REASON_LENGTH_MAX = 2_000


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
            declared = {name: getattr(enterprise, name) for name in ENTERPRISE_FLAGS if getattr(enterprise, name)}
            if declared:
                EnterpriseFlagsEvent.objects.create(
                    enterprise=enterprise, action=EnterpriseFlagsEvent.Action.DECLARED, flags=declared, actor=user
                )
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


def _check_flags(flags: Mapping[str, object]) -> dict[str, bool]:
    unknown = sorted(set(flags) - set(ENTERPRISE_FLAGS))
    if unknown:
        raise ValidationFailed(f"Unknown flag {', '.join(unknown)}; flags are {', '.join(ENTERPRISE_FLAGS)}.")
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ValidationFailed("true or false is required.", field=name)
    return {name: bool(value) for name, value in flags.items()}


def enterprise_verify(*, enterprise: Enterprise, actor: User, flags: Mapping[str, bool] | None = None) -> Enterprise:
    """A reviewer verifies a pending (or reinstates a suspended) enterprise, confirming (true) or
    not (false) each flag named in `flags`; a flag not named keeps what staff last said of it.

    Verifying an already verified enterprise only records the flags. Each call that names flags
    is recorded in the enterprise's flags history.
    """
    require_role(actor, Role.REVIEWER)
    flags = _check_flags(flags or {})
    with transaction.atomic():
        locked = Enterprise.objects.select_for_update().get(pk=enterprise.pk)
        fields = []
        if locked.status != Enterprise.Status.VERIFIED:
            locked.status = Enterprise.Status.VERIFIED
            locked.verified_at = timezone.now()
            fields += ["status", "verified_at"]
        for name, value in flags.items():
            setattr(locked, f"{name}_verified", value)
            fields.append(f"{name}_verified")
        if fields:
            locked.save(update_fields=fields)
        if flags:
            EnterpriseFlagsEvent.objects.create(
                enterprise=locked, action=EnterpriseFlagsEvent.Action.VERIFIED, flags=flags, actor=actor
            )
        return locked


def enterprise_flags_declare(
    *,
    enterprise: Enterprise,
    actor: User,
    has_registered_model: bool | None = None,
    model_filing_number: str | None = None,
    foundation_model_developer: bool | None = None,
    small_or_medium: bool | None = None,
) -> Enterprise:
    """A member of the enterprise updates what it declares (None: unchanged).

    A changed flag (or a changed filing number) loses its staff confirmation: it counts only once
    a reviewer verifies it again. Grants already issued keep the rate they were priced at.
    """
    require_enterprise_member(actor, enterprise.pk)
    given = _check_flags(
        {
            name: value
            for name, value in (
                ("has_registered_model", has_registered_model),
                ("foundation_model_developer", foundation_model_developer),
                ("small_or_medium", small_or_medium),
            )
            if value is not None
        }
    )
    if model_filing_number is not None and not isinstance(model_filing_number, str):
        raise ValidationFailed("A string is required.", field="model_filing_number")
    with transaction.atomic():
        locked = Enterprise.objects.select_for_update().get(pk=enterprise.pk)
        declared = {name: getattr(locked, name) for name in ENTERPRISE_FLAGS} | given
        number = locked.model_filing_number if model_filing_number is None else model_filing_number.strip()
        if len(number) > FILING_NUMBER_LENGTH_MAX:
            raise ValidationFailed(
                f"model_filing_number has at most {FILING_NUMBER_LENGTH_MAX} characters.", field="model_filing_number"
            )
        if not declared["has_registered_model"]:
            number = ""
        elif not number:
            raise ValidationFailed("A registered model needs its CAC filing number.", field="model_filing_number")
        fields = []
        changes: dict[str, object] = {}
        for name in ENTERPRISE_FLAGS:
            changed = declared[name] != getattr(locked, name)
            if name == "has_registered_model":
                changed = changed or number != locked.model_filing_number
            if changed:
                setattr(locked, name, declared[name])
                setattr(locked, f"{name}_verified", False)
                fields += [name, f"{name}_verified"]
                changes[name] = declared[name]
        if number != locked.model_filing_number:
            locked.model_filing_number = number
            fields.append("model_filing_number")
            changes["model_filing_number"] = number
        if fields:
            locked.save(update_fields=fields)
            EnterpriseFlagsEvent.objects.create(
                enterprise=locked, action=EnterpriseFlagsEvent.Action.DECLARED, flags=changes, actor=actor
            )
        return locked


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


def model_filing_record(
    *, filing_number: str, model_name: str, holder_name: str, holder_uscc: str = "", actor: User
) -> ModelFiling:
    """A reviewer records a filed model in the register (unverified until checked)."""
    require_role(actor, Role.REVIEWER)
    filing_number = (filing_number or "").strip() if isinstance(filing_number, str) else ""
    if not 0 < len(filing_number) <= FILING_NUMBER_LENGTH_MAX:
        raise ValidationFailed(f"filing_number has 1 to {FILING_NUMBER_LENGTH_MAX} characters.", field="filing_number")
    model_name = _check_name(model_name) if model_name else ""
    if not model_name:
        raise ValidationFailed(f"A name has 1 to {NAME_LENGTH_MAX} characters.", field="model_name")
    try:
        holder_name = _check_name(holder_name)
    except ValidationFailed:
        raise ValidationFailed(f"A name has 1 to {NAME_LENGTH_MAX} characters.", field="holder_name") from None
    holder_uscc = _check_uscc(holder_uscc, "holder_uscc") if (holder_uscc or "").strip() else ""
    if ModelFiling.objects.filter(filing_number=filing_number).exists():
        raise ValidationFailed("This filing number is already in the register.", field="filing_number")
    try:
        with transaction.atomic():
            return ModelFiling.objects.create(
                filing_number=filing_number,
                model_name=model_name,
                holder_name=holder_name,
                holder_uscc=holder_uscc,
                recorded_by=actor,
            )
    except IntegrityError:
        raise ValidationFailed("This filing number was just recorded.", field="filing_number") from None


def model_filing_verify(*, filing: ModelFiling, actor: User) -> ModelFiling:
    """A reviewer verifies a recorded filing (checked against the CAC's list); idempotent."""
    require_role(actor, Role.REVIEWER)
    with transaction.atomic():
        locked = ModelFiling.objects.select_for_update().get(pk=filing.pk)
        if locked.verified_at is None:
            locked.verified_by = actor
            locked.verified_at = timezone.now()
            locked.save(update_fields=["verified_by", "verified_at"])
        return locked


def sanction_check_request(
    *, uscc: str, reason: str, valid_from: dt.date, valid_until: dt.date | None
) -> tuple[str, str, dt.date, dt.date | None]:
    """The normalised terms of a sanction, or ValidationFailed: checked when it is requested and
    again when it is decided."""
    uscc = _check_uscc(uscc)
    reason = (reason or "").strip() if isinstance(reason, str) else ""
    if not 0 < len(reason) <= REASON_LENGTH_MAX:
        raise ValidationFailed(f"reason has 1 to {REASON_LENGTH_MAX} characters.", field="reason")
    if not isinstance(valid_from, dt.date):
        raise ValidationFailed("valid_from is a date.", field="valid_from")
    if valid_until is not None and (not isinstance(valid_until, dt.date) or valid_until < valid_from):
        raise ValidationFailed("valid_until is a date on or after valid_from.", field="valid_until")
    return uscc, reason, valid_from, valid_until


def sanction_set(
    *, uscc: str, reason: str, valid_from: dt.date, valid_until: dt.date | None, requested_by: User, actor: User
) -> Sanction:
    """An approver decides a sanction that a reviewer or another approver asked for (four eyes).

    From `valid_from` to `valid_until` (inclusive; None: until further notice) the organisation
    with this code is refused everywhere the program checks eligibility.
    """
    require_role(requested_by, Role.REVIEWER, Role.APPROVER)
    require_role(actor, Role.APPROVER)
    if requested_by.pk == actor.pk:
        raise FourEyes("The approver who decides a sanction may not be the one who asked for it.")
    uscc, reason, valid_from, valid_until = sanction_check_request(
        uscc=uscc, reason=reason, valid_from=valid_from, valid_until=valid_until
    )
    return Sanction.objects.create(
        uscc=uscc,
        reason=reason,
        valid_from=valid_from,
        valid_until=valid_until,
        requested_by=requested_by,
        decided_by=actor,
    )
