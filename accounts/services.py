"""Writes about people and organisations: registration, verification (with the flags staff
confirm), declared flags, listing, users, related parties, the register of model filings, sanctions."""

import contextlib
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import (
    ENTERPRISE_FLAGS,
    FACILITY_DESCRIPTION_LENGTH_MAX,
    USER_PROGRAMS_COUNT_MAX,
    USERNAME_LENGTH_MAX,
    ComputeSource,
    Enterprise,
    EnterpriseFlagsEvent,
    Facility,
    ModelFiling,
    Provider,
    ProviderChange,
    RelatedParty,
    Role,
    Sanction,
    User,
    username_normal,
)
from accounts.programs import program_slugs_unknown
from accounts.roles import require_enterprise_member, require_role, require_superuser
from accounts.selectors import PROVIDER_CHANGE_ACTION
from accounts.uscc import validate_uscc
from approvals.models import ApprovalRequest
from approvals.services import approval_request_create
from config.errors import (
    AlreadyExists,
    FourEyes,
    InvalidState,
    PermissionDenied,
    ReferenceNotFound,
    ValidationFailed,
)
from config.limits import REASON_LENGTH_MAX

NAME_LENGTH_MAX = 200
FACILITIES_COUNT_MAX: Final = 20
# Listing windows are program days; these bound them to the years a program year may have.
LISTING_DAY_MIN: Final = dt.date(2000, 1, 1)
LISTING_DAY_MAX: Final = dt.date(2999, 12, 31)
PROVIDER_CHANGE_KEYS: Final = frozenset({"status", "facilities"})
_FACILITY_KEYS: Final = frozenset({"compute_source", "description", "listed_from", "listed_until"})
FILING_NUMBER_LENGTH_MAX = 100


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


def _check_username(username: str) -> str:
    """The username as kept, or why not: every path that makes a user (registration, POST /users/,
    `seed_demo`) checks here. NFKC-normalised (`ａｄｍｉｎ` is `admin`), then only ASCII letters,
    digits and @ . + - _ (no Cyrillic `а` passing for `a`), and taken when a user has it in any
    case (`ADMIN` is `admin`); the database holds the last two too (accounts/migrations/0012)."""
    if not isinstance(username, str) or not username:
        raise ValidationFailed("A username is required.", field="username")
    username = username_normal(username)
    if len(username) > USERNAME_LENGTH_MAX:
        raise ValidationFailed(f"A username has at most {USERNAME_LENGTH_MAX} characters.", field="username")
    try:
        User.username_validator(username)
    except ValidationError as error:
        raise ValidationFailed({"username": list(error.messages)}) from None
    if User.objects.filter(username__iexact=username).exists():
        raise AlreadyExists("This username is taken (usernames are the same whatever their case).", field="username")
    return username


def _username_clash(error: IntegrityError) -> bool:
    """Whether a write failed on a username taken meanwhile (by a concurrent request)."""
    return "username" in str(error)


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
    username = _check_username(username)
    if Enterprise.objects.filter(uscc=uscc).exists() or Provider.objects.filter(uscc=uscc).exists():
        raise AlreadyExists("An organisation with this credit code is already registered.", field="uscc")
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


def _require_every_program(actor: User, action: str) -> None:
    """The registers every program prices by (an enterprise's status and flags, the model filings) are
    kept by staff whose roles reach every program: one limited to a district would change the city's
    rates and eligibility too (found in review)."""
    if actor.program_limit is not None:
        raise PermissionDenied(f"{action} changes what every program reads; your roles are limited to some.")


def enterprise_verify(*, enterprise: Enterprise, actor: User, flags: Mapping[str, bool] | None = None) -> Enterprise:
    """A reviewer verifies a pending (or reinstates a suspended) enterprise, confirming (true) or
    not (false) each flag named in `flags`; a flag not named keeps what staff last said of it.

    Verifying an already verified enterprise only records the flags. Each call that names flags
    is recorded in the enterprise's flags history.
    """
    require_role(actor, Role.REVIEWER)
    _require_every_program(actor, "Verifying an enterprise")
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


def _check_day(value: object, field: str, *, optional: bool = False) -> dt.date | None:
    if value is None and optional:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # Not a date: refused just below.
            value = dt.date.fromisoformat(value)
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise ValidationFailed(f"{field} is a date, YYYY-MM-DD.", field=field)
    if not LISTING_DAY_MIN <= value <= LISTING_DAY_MAX:
        raise ValidationFailed(
            f"{field} is from {LISTING_DAY_MIN.isoformat()} to {LISTING_DAY_MAX.isoformat()}.", field=field
        )
    return value


def facilities_clean(facilities: object) -> list[dict[str, Any]]:
    """Check a provider's facilities as given (dates as `date`s or ISO strings) and return them
    in one canonical shape, dates as ISO strings (the shape of approval payloads and the history).

    At least one, at most FACILITIES_COUNT_MAX; each a known compute source, a description, and a
    window whose last day (when given) is not before its first.
    """
    if not isinstance(facilities, list) or not 0 < len(facilities) <= FACILITIES_COUNT_MAX:
        raise ValidationFailed(f"A computing center has 1 to {FACILITIES_COUNT_MAX} facilities.", field="facilities")
    cleaned = []
    for index, facility in enumerate(facilities):
        where = f"facilities.{index}"
        if not isinstance(facility, dict) or set(facility) - _FACILITY_KEYS:
            raise ValidationFailed(
                "A facility is {compute_source, description, listed_from, listed_until}.", field=where
            )
        compute_source = facility.get("compute_source")
        if compute_source not in ComputeSource.values:
            raise ValidationFailed(
                f"compute_source is one of {', '.join(ComputeSource.values)}.", field=f"{where}.compute_source"
            )
        description = facility.get("description")
        description = description.strip() if isinstance(description, str) else ""
        if not 0 < len(description) <= FACILITY_DESCRIPTION_LENGTH_MAX or not description.isprintable():
            raise ValidationFailed(
                f"description has 1 to {FACILITY_DESCRIPTION_LENGTH_MAX} printable characters.",
                field=f"{where}.description",
            )
        listed_from = _check_day(facility.get("listed_from"), f"{where}.listed_from")
        listed_until = _check_day(facility.get("listed_until"), f"{where}.listed_until", optional=True)
        assert listed_from is not None
        if listed_until is not None and listed_until < listed_from:
            raise ValidationFailed("listed_until may not be before listed_from.", field=f"{where}.listed_until")
        cleaned.append(
            {
                "compute_source": compute_source,
                "description": description,
                "listed_from": listed_from.isoformat(),
                "listed_until": listed_until.isoformat() if listed_until else None,
            }
        )
    return cleaned


def provider_snapshot(provider: Provider) -> dict[str, Any]:
    """A provider's status, listing and facilities, as the history records them (JSON)."""
    return {
        "status": provider.status,
        "listing": provider.listing,
        "facilities": [
            {
                "compute_source": facility.compute_source,
                "description": facility.description,
                "listed_from": facility.listed_from.isoformat(),
                "listed_until": facility.listed_until.isoformat() if facility.listed_until else None,
            }
            for facility in Facility.objects.filter(provider=provider).order_by("listed_from", "compute_source", "id")
        ],
    }


def _facilities_write(provider: Provider, facilities: list[dict[str, Any]]) -> None:
    """Replace the provider's facilities with `facilities` (cleaned). The caller holds its lock."""
    Facility.objects.filter(provider=provider).delete()
    Facility.objects.bulk_create(
        Facility(
            provider=provider,
            compute_source=facility["compute_source"],
            description=facility["description"],
            listed_from=dt.date.fromisoformat(facility["listed_from"]),
            listed_until=dt.date.fromisoformat(facility["listed_until"]) if facility["listed_until"] else None,
        )
        for facility in facilities
    )


def provider_create(*, name: str, uscc: str, listing: str, facilities: list[dict[str, Any]], actor: User) -> Provider:
    """A superuser lists a computing center with its facilities (what it offers, and when).

    The listing is recorded in the provider's history as a change the superuser asked for and
    decided (there is nothing yet for a second person to check against).
    """
    require_superuser(actor)
    name = _check_name(name)
    uscc = _check_uscc(uscc)
    if listing not in Provider.Listing.values:
        raise ValidationFailed(f"listing is one of {', '.join(Provider.Listing.values)}.", field="listing")
    cleaned = facilities_clean(facilities)
    if Provider.objects.filter(uscc=uscc).exists() or Enterprise.objects.filter(uscc=uscc).exists():
        raise AlreadyExists("An organisation with this credit code is already registered.", field="uscc")
    try:
        with transaction.atomic():
            provider = Provider.objects.create(name=name, uscc=uscc, listing=listing)
            _facilities_write(provider, cleaned)
            ProviderChange.objects.create(
                provider=provider,
                kind=ProviderChange.Kind.LISTED,
                requested_by=actor,
                decided_by=actor,
                before=None,
                after=provider_snapshot(provider),
            )
    except IntegrityError:
        # A concurrent listing took the code between the check and here.
        raise ValidationFailed("An organisation with this credit code was just registered.", field="uscc") from None
    return provider


def provider_change_check(*, provider: Provider, changes: object) -> dict[str, Any]:
    """Check a change to a provider's status or facilities before anyone is asked to approve it,
    and return it in its canonical shape (the approval request's payload).

    `changes` holds `status` (a provider status word), `facilities` (the whole new list), or both.
    Refuses a change that would change nothing (409 invalid_state).
    """
    if not isinstance(changes, dict) or not changes or set(changes) - PROVIDER_CHANGE_KEYS:
        raise ValidationFailed("A provider change sets status, facilities or both.", field="changes")
    cleaned: dict[str, Any] = {}
    if "status" in changes:
        if changes["status"] not in Provider.Status.values:
            raise ValidationFailed(f"status is one of {', '.join(Provider.Status.values)}.", field="status")
        cleaned["status"] = changes["status"]
    if "facilities" in changes:
        cleaned["facilities"] = facilities_clean(changes["facilities"])
    current = provider_snapshot(provider)
    if all(current[key] == value for key, value in cleaned.items()):
        raise InvalidState(f"{provider.name} already has this {' and '.join(sorted(cleaned))}: nothing would change.")
    return cleaned


def provider_change_request(
    *, provider: Provider, changes: dict[str, Any], reason: str, requester: User
) -> ApprovalRequest:
    """A superuser asks for a change to a listed provider's status or facilities; nothing changes
    until someone else approves it (an approver, or another superuser): then `provider_change_apply`.

    One pending change per provider (a second is 409 invalid_state), and a change that would change
    nothing is refused now rather than on approval.
    """
    require_superuser(requester)
    payload = provider_change_check(provider=provider, changes=changes)
    return approval_request_create(
        action=PROVIDER_CHANGE_ACTION,
        target=provider_change_target(provider.pk),
        payload=payload,
        reason=reason,
        requester=requester,
    )


def provider_change_target(provider_id: int) -> str:
    """The approval request's target for a provider: `provider:<id>`."""
    return f"provider:{provider_id}"


def provider_change_apply(
    *, provider_id: int, changes: dict[str, Any], requested_by: User, decided_by: User, reason: str = ""
) -> Provider:
    """Apply an approved change to a provider's status or facilities, and record it in the history.

    Maker-checker: a superuser asked for it (`requested_by`), and another person with the approver
    role (a superuser holds every role) decided it. The change is checked again here, against the
    provider as it is now.
    """
    if not (requested_by.is_active and requested_by.is_superuser):
        raise PermissionDenied("A provider change is asked for by a superuser.")
    require_role(decided_by, Role.APPROVER)
    if decided_by.pk == requested_by.pk:
        raise FourEyes("The person who asked for a provider change may not also decide it.")
    reason = (reason or "").strip()
    if len(reason) > REASON_LENGTH_MAX:
        raise ValidationFailed(f"reason has at most {REASON_LENGTH_MAX} characters.", field="reason")
    with transaction.atomic():
        provider = Provider.objects.select_for_update().get(pk=provider_id)
        cleaned = provider_change_check(provider=provider, changes=changes)
        before = provider_snapshot(provider)
        if "status" in cleaned and cleaned["status"] != provider.status:
            provider.status = cleaned["status"]
            provider.save(update_fields=["status"])
        if "facilities" in cleaned:
            _facilities_write(provider, cleaned["facilities"])
        ProviderChange.objects.create(
            provider=provider,
            kind=ProviderChange.Kind.CHANGED,
            requested_by=requested_by,
            decided_by=decided_by,
            reason=reason,
            before=before,
            after=provider_snapshot(provider),
        )
        return provider


ROLE_GRANT_ACTION: Final = "role_grant"


def user_create(
    *,
    username: str,
    password: str,
    email: str = "",
    roles: Sequence[str] = (),
    enterprise: Enterprise | None = None,
    provider: Provider | None = None,
    programs: Sequence[str] = (),
    actor: User,
) -> tuple[User, ApprovalRequest | None]:
    """A superuser creates a staff user, or a member of one enterprise or provider.

    Platform roles are power over the fund's money, so they are granted by two people: the new
    user starts with none, and the roles asked for wait in an approval request (`role_grant`) that a
    different superuser decides. Otherwise one superuser could create a second account, give it a
    role, and approve their own requests with it. `programs` limits the staff user's roles to those
    programs from the start (empty: every program), so roles granted later never reach further.
    Returns the user and that request (None when no role was asked for)."""
    require_superuser(actor)
    unknown = sorted(set(roles) - set(Role.values))
    if unknown:
        raise ValidationFailed(f"Unknown role {', '.join(unknown)}; roles are {', '.join(Role.values)}.", field="roles")
    if enterprise is not None and provider is not None:
        raise ValidationFailed("A user belongs to one organisation at most.", field="enterprise")
    if roles and (enterprise is not None or provider is not None):
        raise ValidationFailed("Members of an organisation hold no platform roles.", field="roles")
    username = _check_username(username)
    user = User(username=username, email=email, enterprise=enterprise, provider=provider)
    user.programs = user_programs_clean(user=user, programs=list(programs))
    _check_password(password, user)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
            request = None
            if roles:
                request = role_grant_request(user=user, roles=roles, requester=actor)
    except IntegrityError as error:
        if _username_clash(error):
            raise AlreadyExists("This username was just taken.", field="username") from None
        raise
    return user, request


def user_programs_clean(*, user: User, programs: object) -> list[str]:
    """The programs (slugs) a staff member's roles may be limited to, checked: a list of at most
    `USER_PROGRAMS_COUNT_MAX` slugs that each name a program, for a user who is neither a superuser
    (who holds every role everywhere) nor a member of an organisation. Sorted, each once."""
    if not isinstance(programs, list | tuple) or not all(isinstance(slug, str) for slug in programs):
        raise ValidationFailed("programs is a list of program slugs.", field="programs")
    wanted = sorted(set(programs))
    if len(wanted) > USER_PROGRAMS_COUNT_MAX:
        raise ValidationFailed(f"At most {USER_PROGRAMS_COUNT_MAX} programs.", field="programs")
    if wanted and (user.is_superuser or user.enterprise_id is not None or user.provider_id is not None):
        raise InvalidState(
            "Only platform staff are limited to programs: a superuser acts in every program, and a member of "
            "an organisation sees what names it."
        )
    unknown = program_slugs_unknown(wanted)
    if unknown:
        # A well-formed slug that names nothing: 404 with the field named, as any unknown reference.
        raise ReferenceNotFound(f"No program {', '.join(unknown)}.", field="programs")
    return wanted


USER_PROGRAMS_WIDEN_ACTION: Final = "user_programs_widen"


def _reach_widens(before: Sequence[str], after: Sequence[str]) -> bool:
    """Whether a staff member limited to `before` would reach more with `after` (empty: every program)."""
    if not before:
        return False  # Every program already: nothing is wider.
    return not after or bool(set(after) - set(before))


def user_programs_set(
    *, user: User, programs: Sequence[str], actor: User, reason: str = ""
) -> tuple[User, ApprovalRequest | None]:
    """A superuser changes the programs a staff member's roles reach (empty: every program).

    Narrowing, or leaving the reach as it is, holds at once: it takes power away. Widening (a program
    added, or the limit lifted) gives the person's roles power over another program's money, as a
    role grant does, so it waits in an approval request (`user_programs_widen`) that a different
    superuser, who is not that person, decides (`user_programs_widen_apply`); the user is returned
    unchanged beside it. From then on every read and write of that person reaches only those
    programs' applications, grants, redemptions, claims, program years, figures and approval
    requests (docs/programs.md, "Roles limited to programs"); the change holds from their next request."""
    require_superuser(actor)
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        wanted = user_programs_clean(user=locked, programs=list(programs))
        before = sorted(locked.programs)
        if not _reach_widens(before, wanted):
            locked.programs = wanted
            locked.save(update_fields=["programs"])
            return locked, None
        if actor.pk == locked.pk:  # Unreachable today (a superuser is never limited); kept for the rule.
            raise FourEyes("Nobody widens their own reach.")
        reach = ", ".join(wanted) if wanted else "every program"
        request = approval_request_create(
            action=USER_PROGRAMS_WIDEN_ACTION,
            target=f"user:{locked.pk}",
            payload={"user": locked.pk, "username": locked.username, "programs": wanted, "from": before},
            reason=reason or f"Let {locked.username}'s roles reach {reach} (now {', '.join(before)}).",
            requester=actor,
        )
        return locked, request


def _request_user_locked(request: ApprovalRequest) -> User:
    """The user an approved request acts on, locked; 409 `invalid_state` if they were deleted since it
    was asked (found from outside: the approval answered 500, on every retry). Reject the request."""
    user = User.objects.select_for_update().filter(pk=request.payload["user"]).first()
    if user is None:
        raise InvalidState(
            f"User {request.payload.get('username', request.payload['user'])} no longer exists; reject this request."
        )
    return user


def user_programs_widen_apply(*, request: ApprovalRequest, decider: User) -> None:
    """Carry out an approved widening (called by `approvals` inside the decision's transaction). The
    reach must still be what the requester saw: a change since (another request, a narrowing) makes
    this one stale, 409 `invalid_state`, to be asked again."""
    require_superuser(decider)
    user = _request_user_locked(request)
    if decider.pk == user.pk:
        raise FourEyes("Nobody approves a wider reach for themselves.")
    if sorted(user.programs) != request.payload["from"]:
        raise InvalidState(
            f"{user.username}'s programs changed since this was asked "
            f"(now {', '.join(sorted(user.programs)) or 'every program'}); ask again."
        )
    user.programs = user_programs_clean(user=user, programs=list(request.payload["programs"]))
    user.save(update_fields=["programs"])


def user_programs_widen_conflict(request: ApprovalRequest, decider: User) -> str | None:
    if decider.pk == request.payload.get("user"):
        return "Nobody approves a wider reach for themselves."
    return None


def staff_user_create_bootstrap(*, username: str, password: str, email: str, roles: Sequence[str]) -> User:
    """A staff user holding `roles` at once, for management commands only (`seed_demo`): whoever can
    run them can already run Django's `createsuperuser`, so this is no weaker. The API and the admin
    never call it; there, roles wait for a second superuser (`user_create`)."""
    assert roles and not set(roles) - set(Role.values), roles
    username = _check_username(username)
    user = User(username=username, email=email)
    _check_password(password, user)
    user.set_password(password)
    with transaction.atomic():
        user.save()
        for role in roles:
            group, _ = Group.objects.get_or_create(name=role)
            user.groups.add(group)
    return user


def role_grant_request(*, user: User, roles: Sequence[str], requester: User) -> ApprovalRequest:
    """A superuser asks for platform roles for a user; a different superuser, who is not that user, decides."""
    require_superuser(requester)
    wanted = sorted(set(roles))
    if not wanted or set(wanted) - set(Role.values):
        raise ValidationFailed(f"roles are some of {', '.join(Role.values)}.", field="roles")
    if user.enterprise_id is not None or user.provider_id is not None:
        raise ValidationFailed("Members of an organisation hold no platform roles.", field="roles")
    return approval_request_create(
        action=ROLE_GRANT_ACTION,
        target=f"user:{user.pk}",
        payload={"user": user.pk, "username": user.username, "roles": wanted},
        reason=f"Grant {', '.join(wanted)} to {user.username}.",
        requester=requester,
    )


def role_grant_apply(*, request: ApprovalRequest, decider: User) -> None:
    """Carry out an approved role grant (called by `approvals` inside the decision's transaction)."""
    require_superuser(decider)
    user = _request_user_locked(request)
    if decider.pk == user.pk:
        raise FourEyes("Nobody approves roles for themselves.")
    for role in request.payload["roles"]:
        group, _ = Group.objects.get_or_create(name=role)
        user.groups.add(group)


def role_grant_conflict(request: ApprovalRequest, decider: User) -> str | None:
    if decider.pk == request.payload.get("user"):
        return "Nobody approves roles for themselves."
    return None


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
        raise AlreadyExists("This filing number is already in the register.", field="filing_number")
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
    """A reviewer other than the one who recorded it verifies a filing (checked against the CAC's list);
    idempotent. Four eyes: a verified filing raises the rate an application gets."""
    require_role(actor, Role.REVIEWER)
    _require_every_program(actor, "Verifying a model filing")
    with transaction.atomic():
        locked = ModelFiling.objects.select_for_update().get(pk=filing.pk)
        if locked.recorded_by_id == actor.pk:
            raise FourEyes("The reviewer who recorded a filing may not also verify it.")
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
