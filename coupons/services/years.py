"""Program years, their policy, and enterprises' caps."""

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from accounts.models import Enterprise, Role, User
from accounts.roles import require_role, require_superuser
from config.errors import InvalidState, NotFound, ValidationFailed
from coupons import books
from coupons.errors import FourEyes, ProgramYearClosed
from coupons.locks import program_year_lock
from coupons.models import (
    REGION_DIVISION_PREFIXES_COUNT_MAX,
    REGION_DIVISION_PREFIXES_DEFAULT,
    CapOverride,
    ProgramYear,
    RateRuleSet,
)
from coupons.policy import MEASURES_2024, rules_validate
from ledger.services import TransferRequest, account_create, transfer_create

PROGRAM_TIME_ZONE = ZoneInfo("Asia/Shanghai")
POOL_FEN_DEFAULT = 25_000_000_000  # 250 million yuan
CAP_FEN_DEFAULT = 800_000_000  # 8 million yuan
AMOUNT_FEN_MAX = 10**15  # Ten trillion yuan: a bound on any configured amount, far above real ones.
GRACE_DAYS_MAX = 366


def _check_amount(value: object, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= AMOUNT_FEN_MAX:
        raise ValidationFailed(f"{field} must be a whole number of fen from 1 to {AMOUNT_FEN_MAX}.", field=field)
    return value


def rule_set_create(*, name: str, ceiling_bp: int, rules: list[dict[str, Any]], description: str = "") -> RateRuleSet:
    """Write a new version of the rate policy (rule sets are never edited)."""
    rules_validate(rules=rules, ceiling_bp=ceiling_bp)
    if not name or len(name) > 100:
        raise ValidationFailed("name has 1 to 100 characters.", field="name")
    existing = RateRuleSet.objects.filter(name=name).first()
    if existing is not None:
        if (existing.ceiling_bp, existing.rules) != (ceiling_bp, rules):
            raise ValidationFailed("A rule set with this name exists with other rules.", field="name")
        return existing
    return RateRuleSet.objects.create(name=name, description=description, ceiling_bp=ceiling_bp, rules=rules)


def rule_set_default() -> RateRuleSet:
    """The 2024 municipal measures as a rule set."""
    return rule_set_create(
        name=MEASURES_2024["name"],
        description=MEASURES_2024["description"],
        ceiling_bp=MEASURES_2024["ceiling_bp"],
        rules=MEASURES_2024["rules"],
    )


def year_end(year: int) -> dt.datetime:
    """The first instant of the next year in Asia/Shanghai: when year `year` ends."""
    return dt.datetime(year + 1, 1, 1, tzinfo=PROGRAM_TIME_ZONE)


def program_year_of(moment: dt.datetime) -> int:
    return timezone.localtime(moment, PROGRAM_TIME_ZONE).year


DIVISION_CODE_LENGTH = 6  # GB/T 2260: two digits of province, two of city, two of county.


def region_division_prefixes_check(value: object) -> list[str]:
    """A list of 1 to REGION_DIVISION_PREFIXES_COUNT_MAX prefixes of division codes, each 2 to 6 digits."""
    field = "region_division_prefixes"
    if not isinstance(value, list) or not 0 < len(value) <= REGION_DIVISION_PREFIXES_COUNT_MAX:
        raise ValidationFailed(
            f"A list of 1 to {REGION_DIVISION_PREFIXES_COUNT_MAX} prefixes is required.", field=field
        )
    for prefix in value:
        if (
            not isinstance(prefix, str)
            or not 2 <= len(prefix) <= DIVISION_CODE_LENGTH
            or not (prefix.isascii() and prefix.isdigit())
        ):
            raise ValidationFailed(
                f"Each prefix is 2 to {DIVISION_CODE_LENGTH} digits of a division code (Hangzhou: 3301).", field=field
            )
    return sorted(set(value))


def program_year_create(
    *,
    year: int,
    actor: User,
    pool_fen: int = POOL_FEN_DEFAULT,
    default_cap_fen: int = CAP_FEN_DEFAULT,
    grace_days: int = 0,
    rule_set: RateRuleSet | None = None,
    region_division_prefixes: list[str] | None = None,
) -> ProgramYear:
    """A superuser prepares a year (draft) with its pool, default cap, grace days, policy and region
    (the division-code prefixes of the credit codes of enterprises that may apply; Hangzhou by default)."""
    require_superuser(actor)
    if not isinstance(year, int) or not 2000 <= year <= 2999:
        raise ValidationFailed("year must be from 2000 to 2999.", field="year")
    _check_amount(pool_fen, "pool_fen")
    _check_amount(default_cap_fen, "default_cap_fen")
    if not isinstance(grace_days, int) or isinstance(grace_days, bool) or not 0 <= grace_days <= GRACE_DAYS_MAX:
        raise ValidationFailed(f"grace_days must be 0 to {GRACE_DAYS_MAX}.", field="grace_days")
    prefixes = region_division_prefixes_check(
        list(REGION_DIVISION_PREFIXES_DEFAULT) if region_division_prefixes is None else region_division_prefixes
    )
    if ProgramYear.objects.filter(year=year).exists():
        raise InvalidState(f"Program year {year} exists.")
    return ProgramYear.objects.create(
        year=year,
        region_division_prefixes=prefixes,
        pool_fen=pool_fen,
        default_cap_fen=default_cap_fen,
        grace_days=grace_days,
        rule_set=rule_set or rule_set_default(),
    )


def program_year_open(*, year: int, actor: User) -> ProgramYear:
    """A superuser opens a draft year: its ledger accounts, and the pool credited from the appropriation."""
    require_superuser(actor)
    return program_year_open_system(year=year)


def program_year_open_system(*, year: int, now: dt.datetime | None = None) -> ProgramYear:
    """Open a draft year (the annual reset calls this for Y+1; people go through program_year_open)."""
    with transaction.atomic():
        program_year = program_year_lock(year)
        if program_year.status == ProgramYear.Status.OPEN:
            return program_year
        if program_year.status != ProgramYear.Status.DRAFT:
            raise InvalidState(f"Program year {year} is {program_year.status}; only a draft year opens.")
        accounts = books.year_accounts_ensure(year)
        transfer_create(
            transfer=TransferRequest.posted(
                key=f"year:{year}:open",
                debit_account_id=accounts["appropriation"].pk,
                credit_account_id=accounts["pool"].pk,
                amount_fen=program_year.pool_fen,
                reason="year_open",
                chain=books.chain(year),
            )
        )
        program_year.status = ProgramYear.Status.OPEN
        program_year.opened_at = now or timezone.now()
        program_year.save(update_fields=["status", "opened_at"])
        return program_year


def program_year_current(*, now: dt.datetime | None = None) -> ProgramYear:
    """The open program year that `now` falls in; ProgramYearClosed when there is none."""
    year = program_year_of(now or timezone.now())
    program_year = ProgramYear.objects.filter(year=year).first()
    if program_year is None or program_year.status != ProgramYear.Status.OPEN:
        raise ProgramYearClosed(f"Program year {year} is not open.")
    return program_year


def enterprise_cap_fen(*, enterprise_id: int, year: ProgramYear) -> int:
    """The enterprise's cap for the year: the latest override, or the year's default."""
    override = CapOverride.objects.filter(enterprise_id=enterprise_id, year=year).order_by("-id").first()
    return override.cap_fen if override is not None else year.default_cap_fen


def cap_account_ensure(*, enterprise_id: int, year: ProgramYear) -> int:
    """The enterprise's cap account for the year, credited with the default cap once; its id."""
    cap = account_create(code=books.cap_code(enterprise_id, year.year), debits_must_not_exceed_credits=True)
    allotted = account_create(code=books.cap_allotted_code(year.year))
    transfer_create(
        transfer=TransferRequest.posted(
            key=f"cap:{enterprise_id}:{year.year}:default",
            debit_account_id=allotted.pk,
            credit_account_id=cap.pk,
            amount_fen=year.default_cap_fen,
            reason="cap_default",
            chain=books.chain(year.year),
        )
    )
    return cap.pk


def cap_override_grant(
    *, year: int, enterprise: Enterprise, cap_fen: int, reason: str, requested_by: User, actor: User
) -> CapOverride:
    """An approver relaxes a foundation-model enterprise's cap for the year (four eyes)."""
    require_role(actor, Role.APPROVER)
    if requested_by.pk == actor.pk:
        raise FourEyes("The approver who grants a cap override may not be the one who asked for it.")
    _check_amount(cap_fen, "cap_fen")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("A cap override needs a written reason.", field="reason")
    if not enterprise.foundation_model_developer:
        raise ValidationFailed("Only a foundation-model enterprise may have a relaxed cap.", field="enterprise")
    with transaction.atomic():
        program_year = program_year_lock(year)
        if program_year.status == ProgramYear.Status.CLOSED:
            raise ProgramYearClosed(f"Program year {year} is closed.")
        if program_year.status != ProgramYear.Status.OPEN:
            raise InvalidState(f"Program year {year} is not open yet.")
        previous_cap_fen = enterprise_cap_fen(enterprise_id=enterprise.pk, year=program_year)
        if cap_fen <= previous_cap_fen:
            raise ValidationFailed(
                f"A relaxed cap must exceed the current one ({previous_cap_fen} fen).", field="cap_fen"
            )
        cap_account_id = cap_account_ensure(enterprise_id=enterprise.pk, year=program_year)
        override = CapOverride.objects.create(
            year=program_year,
            enterprise=enterprise,
            cap_fen=cap_fen,
            previous_cap_fen=previous_cap_fen,
            reason=reason,
            requested_by=requested_by,
            granted_by=actor,
        )
        transfer_create(
            transfer=TransferRequest.posted(
                key=f"cap_override:{override.pk}",
                debit_account_id=books.account_id(books.cap_allotted_code(year)),
                credit_account_id=cap_account_id,
                amount_fen=cap_fen - previous_cap_fen,
                reason="cap_override",
                chain=books.chain(year),
            )
        )
        return override


def program_year_get(year: int) -> ProgramYear:
    try:
        return ProgramYear.objects.select_related("rule_set").get(year=year)
    except ProgramYear.DoesNotExist:
        raise NotFound(f"No program year {year}.") from None
