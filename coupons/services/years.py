"""Program years, their policy, and enterprises' caps."""

import datetime as dt
import logging
import re
from typing import Any
from zoneinfo import ZoneInfo

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Enterprise, Role, User
from accounts.roles import require_role, require_superuser
from accounts.selectors import enterprise_is_verified_foundation_model_developer
from approvals.models import ApprovalRequest
from approvals.services import approval_request_create, reason_clean
from config import db
from config.errors import AlreadyExists, InvalidState, NotFound, ValidationFailed
from coupons import books
from coupons.errors import FourEyes, NotEligible, ProgramClosed, ProgramYearClosed
from coupons.locks import program_year_lock
from coupons.models import (
    ACKNOWLEDGEMENT_WINDOW_DAYS_DEFAULT,
    ACKNOWLEDGEMENT_WINDOW_DAYS_MAX,
    CONTRACT_TERM_MONTHS_CEILING,
    CONTRACT_TERM_MONTHS_MAX_DEFAULT,
    DEFAULT_PROGRAM,
    GRANT_VALIDITY_MONTHS_MAX,
    PROGRAM_SLUG_LENGTH_MAX,
    REGION_DIVISION_PREFIXES_COUNT_MAX,
    REGION_DIVISION_PREFIXES_DEFAULT,
    RELAXED_CAP_CEILING_FEN_DEFAULT,
    CapOverride,
    Program,
    ProgramYear,
    RateRuleSet,
    RuleSetVersion,
)
from coupons.policy import HANGZHOU_2025_RULE_SETS, MEASURES_2024, rules_validate
from coupons.rule_sets import rule_set_versions, year_first_day
from coupons.services.reach import reach_program
from ledger.partitions import chain_partitions_create
from ledger.services import TransferRequest, account_create, transfer_create

PROGRAM_TIME_ZONE = ZoneInfo("Asia/Shanghai")
POOL_FEN_DEFAULT = 25_000_000_000  # 250 million yuan
CAP_FEN_DEFAULT = 800_000_000  # 8 million yuan
AMOUNT_FEN_MAX = 10**15  # Ten trillion yuan: a bound on any configured amount, far above real ones.
GRACE_DAYS_MAX = 366
ACTION_CAP_OVERRIDE = "cap_override"
partitions_log = logging.getLogger("coupons.partitions")


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
    if existing is None:
        try:
            with transaction.atomic():
                return RateRuleSet.objects.create(
                    name=name, description=description, ceiling_bp=ceiling_bp, rules=rules
                )
        except IntegrityError as error:  # Written by a concurrent request since the read: judge that one.
            if _constraint_of(error) != "coupons_rateruleset_name_key":
                raise
            existing = RateRuleSet.objects.get(name=name)
    if (existing.ceiling_bp, existing.rules) != (ceiling_bp, rules):
        raise AlreadyExists("A rule set with this name exists with other rules.", field="name")
    return existing


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


def _whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_year_end_policy(
    *, grace_days: int, open_applications_at_close: str, grant_validity: str, grant_validity_months: int | None
) -> None:
    """The year-end policy's combinations (the database checks them too)."""
    if not _whole_number(grace_days) or not 0 <= grace_days <= GRACE_DAYS_MAX:
        raise ValidationFailed(f"grace_days must be 0 to {GRACE_DAYS_MAX}.", field="grace_days")
    if open_applications_at_close not in ProgramYear.OpenApplicationsAtClose.values:
        raise ValidationFailed(
            f"open_applications_at_close is one of {', '.join(ProgramYear.OpenApplicationsAtClose.values)}.",
            field="open_applications_at_close",
        )
    if grant_validity not in ProgramYear.GrantValidity.values:
        raise ValidationFailed(
            f"grant_validity is one of {', '.join(ProgramYear.GrantValidity.values)}.", field="grant_validity"
        )
    if grant_validity == ProgramYear.GrantValidity.YEAR_END:
        if grant_validity_months is not None:
            raise ValidationFailed(
                "grant_validity_months goes with grant_validity 'months' only.", field="grant_validity_months"
            )
        return
    if (
        not _whole_number(grant_validity_months)
        or grant_validity_months is None
        or not 1 <= grant_validity_months <= GRANT_VALIDITY_MONTHS_MAX
    ):
        raise ValidationFailed(
            f"grant_validity 'months' needs grant_validity_months from 1 to {GRANT_VALIDITY_MONTHS_MAX}.",
            field="grant_validity_months",
        )
    if grace_days != 0:
        raise ValidationFailed(
            "grace_days applies to grants valid to year end; grants valid for months have none.", field="grace_days"
        )


def _check_evidence_policy(
    *,
    redemption_mode: str,
    acknowledgement_window_days: int,
    contract_signed_within_year: bool,
    contract_term_months_max: int,
    filing_certificate_required: bool,
) -> None:
    """The evidence policy's values (the database checks the ranges too)."""
    if redemption_mode not in ProgramYear.RedemptionMode.values:
        raise ValidationFailed(
            f"redemption_mode is one of {', '.join(ProgramYear.RedemptionMode.values)}.", field="redemption_mode"
        )
    if not _whole_number(acknowledgement_window_days) or not (
        1 <= acknowledgement_window_days <= ACKNOWLEDGEMENT_WINDOW_DAYS_MAX
    ):
        raise ValidationFailed(
            f"acknowledgement_window_days must be 1 to {ACKNOWLEDGEMENT_WINDOW_DAYS_MAX}.",
            field="acknowledgement_window_days",
        )
    if not _whole_number(contract_term_months_max) or not 1 <= contract_term_months_max <= CONTRACT_TERM_MONTHS_CEILING:
        raise ValidationFailed(
            f"contract_term_months_max must be 1 to {CONTRACT_TERM_MONTHS_CEILING}.", field="contract_term_months_max"
        )
    for name, value in (
        ("contract_signed_within_year", contract_signed_within_year),
        ("filing_certificate_required", filing_certificate_required),
    ):
        if not isinstance(value, bool):
            raise ValidationFailed(f"{name} is true or false.", field=name)


DEFAULT_PROGRAM_TERMS = {
    "name": "杭州市算力券",
    "name_en": "Hangzhou computing-power coupons",
    "authority": "杭州市经济和信息化局 (Hangzhou Municipal Bureau of Economy and Information Technology)",
    "level": Program.Level.CITY,
    "region": list(REGION_DIVISION_PREFIXES_DEFAULT),
    "redemption_mode": ProgramYear.RedemptionMode.PROVIDER_DEDUCTION,
}


def program_default_ensure() -> Program:
    """The default program, `hangzhou-compute`: made by migration 0014, and again here if it is missing
    (a database emptied by hand or by a test's flush still runs the fund)."""
    program, _ = Program.objects.get_or_create(slug=DEFAULT_PROGRAM, defaults=DEFAULT_PROGRAM_TERMS)
    return program


def program_get(slug: object) -> Program:
    """The program named by `slug`; NotFound for an unknown one (and for anything that is not a slug)."""
    if slug == DEFAULT_PROGRAM:
        return program_default_ensure()
    program = Program.objects.filter(slug=slug).first() if isinstance(slug, str) and slug else None
    if program is None:
        raise NotFound(f"No program {slug!r}.")
    return program


def program_active_get(slug: object) -> Program:
    """The program named by `slug`, refused when it is closed (it takes no new year or application)."""
    program = program_get(slug)
    if program.status != Program.Status.ACTIVE:
        raise ProgramClosed(f"Program {program.slug} is closed.")
    return program


# A slug is lower-case letters and digits in words joined by "-" (the database checks it too).
PROGRAM_SLUG_PATTERN = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
PROGRAM_NAME_LENGTH_MAX = 100
PROGRAM_NAME_EN_LENGTH_MAX = 200
PROGRAM_AUTHORITY_LENGTH_MAX = 200


def _constraint_of(error: IntegrityError) -> str | None:
    """The name of the constraint PostgreSQL says the statement broke (psycopg's diagnostics)."""
    return getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)


def _program_text(value: object, field: str, length_max: int) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not 0 < len(text) <= length_max or not text.isprintable():
        raise ValidationFailed(f"{field} has 1 to {length_max} printable characters.", field=field)
    return text


def program_create(
    *,
    actor: User,
    slug: str,
    name: str,
    name_en: str,
    authority: str,
    level: str,
    region: list[str],
    redemption_mode: str = ProgramYear.RedemptionMode.PROVIDER_DEDUCTION,
) -> Program:
    """A superuser sets up a new fund (a district's, the province's): its slug (its name in paths and
    ledger codes, never changed), names, issuing authority, level, region and how its coupons are
    paid. It has no year yet: prepare one with `program_year_create(program=slug)`. A slug that is
    taken is 409 `already_exists`; anything malformed is 400, and nothing is written."""
    require_superuser(actor)
    if (
        not isinstance(slug, str)
        or not 0 < len(slug) <= PROGRAM_SLUG_LENGTH_MAX
        or not PROGRAM_SLUG_PATTERN.fullmatch(slug)
    ):
        raise ValidationFailed(
            f"slug is 1 to {PROGRAM_SLUG_LENGTH_MAX} lower-case letters and digits in words joined by '-' "
            "(binjiang-compute).",
            field="slug",
        )
    terms = {
        "name": _program_text(name, "name", PROGRAM_NAME_LENGTH_MAX),
        "name_en": _program_text(name_en, "name_en", PROGRAM_NAME_EN_LENGTH_MAX),
        "authority": _program_text(authority, "authority", PROGRAM_AUTHORITY_LENGTH_MAX),
    }
    if level not in Program.Level.values:
        raise ValidationFailed(f"level is one of {', '.join(Program.Level.values)}.", field="level")
    try:
        prefixes = region_division_prefixes_check(region)
    except ValidationFailed:
        raise ValidationFailed(
            f"region is a list of 1 to {REGION_DIVISION_PREFIXES_COUNT_MAX} division-code prefixes, each 2 to "
            f"{DIVISION_CODE_LENGTH} digits (Binjiang: 330108).",
            field="region",
        ) from None
    if redemption_mode not in ProgramYear.RedemptionMode.values:
        raise ValidationFailed(
            f"redemption_mode is one of {', '.join(ProgramYear.RedemptionMode.values)}.", field="redemption_mode"
        )
    if slug == DEFAULT_PROGRAM or Program.objects.filter(slug=slug).exists():
        raise AlreadyExists(f"A program {slug} exists.", field="slug")
    try:
        with transaction.atomic():
            return Program.objects.create(
                slug=slug, level=level, region=prefixes, redemption_mode=redemption_mode, **terms
            )
    except IntegrityError as error:  # Created by a concurrent request between the check and the insert?
        if _constraint_of(error) != "coupons_program_pkey":
            raise
        raise AlreadyExists(f"A program {slug} exists.", field="slug") from None


def program_close(*, slug: str, actor: User, now: dt.datetime | None = None) -> Program:
    """A superuser closes a program (through the API, the second of two: `program_close_request`):
    from then on it takes no new year and no new application (409 `program_closed`). What it already
    holds runs out by its own rules: applications already submitted may still be decided, grants
    redeem until they expire, settlements pay, and its open year closes at its end, when the annual
    reset withdraws the applications still open (there is no next year to carry them into) and
    prepares no next year. Closing a closed program changes nothing.

    The program's row lock orders the close against submissions and year openings, which read the
    program's status under a lock that waits for it (`program_active_lock`): none slips in after it."""
    require_superuser(actor)
    program_get(slug)  # 404 for an unknown one.
    with transaction.atomic():
        program = Program.objects.select_for_update().get(slug=slug)
        if program.status == Program.Status.CLOSED:
            return program
        program.status = Program.Status.CLOSED
        program.closed_at = now or timezone.now()
        program.closed_by = actor
        program.save(update_fields=["status", "closed_at", "closed_by"])
        return program


ACTION_PROGRAM_CLOSE = "program_close"


def program_close_request(*, slug: str, requester: User, reason: str = "") -> ApprovalRequest:
    """A superuser asks to close a program; a different superuser decides (approvals, action
    `program_close`). Closing ends a fund's intake for good (there is no reopening), so one person
    does not do it alone. An unknown program is 404; a closed one is 409 `invalid_state` (the API
    answers it with the program instead: closing again changes nothing); a second request while
    one waits is 409 `invalid_state`."""
    require_superuser(requester)
    program = program_get(slug)
    if program.status == Program.Status.CLOSED:
        raise InvalidState(f"Program {slug} is already closed.")
    return approval_request_create(
        action=ACTION_PROGRAM_CLOSE,
        target=f"program:{slug}",
        payload={"program": slug},
        reason=reason or f"Close the program {slug}: no new year, no new application.",
        requester=requester,
    )


def program_close_request_execute(*, request: ApprovalRequest, decider: User) -> None:
    """An approved request: the program closed by the decider (the approvals app calls this)."""
    program_close(slug=request.payload["program"], actor=decider)


def program_active_lock(slug: str) -> None:
    """Inside the caller's transaction: refuse a closed program (409 `program_closed`), holding a share
    of the program's row (FOR KEY SHARE, which many writers hold at once and `program_close`'s FOR
    UPDATE waits for) until the caller commits, so a close cannot pass between this check and the
    caller's write. An unknown program is 404."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT status FROM coupons_program WHERE slug = %s FOR KEY SHARE", [slug])
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"No program {slug!r}.")
    if row[0] != Program.Status.ACTIVE:
        raise ProgramClosed(f"Program {slug} is closed.")


def program_year_create(
    *,
    year: int,
    actor: User,
    program: str = DEFAULT_PROGRAM,
    pool_fen: int = POOL_FEN_DEFAULT,
    default_cap_fen: int = CAP_FEN_DEFAULT,
    grace_days: int = 0,
    open_applications_at_close: str = ProgramYear.OpenApplicationsAtClose.CARRY,
    grant_validity: str = ProgramYear.GrantValidity.YEAR_END,
    grant_validity_months: int | None = None,
    rule_set: RateRuleSet | None = None,
    relaxed_cap_ceiling_fen: int | None = None,
    region_division_prefixes: list[str] | None = None,
    redemption_mode: str | None = None,
    acknowledgement_window_days: int = ACKNOWLEDGEMENT_WINDOW_DAYS_DEFAULT,
    contract_signed_within_year: bool = True,
    contract_term_months_max: int = CONTRACT_TERM_MONTHS_MAX_DEFAULT,
    filing_certificate_required: bool = False,
    priced_by: str = ProgramYear.PricedBy.SUBMISSION,
) -> ProgramYear:
    """A superuser prepares a year (draft) with its pool, default cap, year-end policy, rates, the
    ceiling of relaxed caps (by default 20 million yuan, or the default cap if that is higher) and
    its region (the division-code prefixes of the credit codes of enterprises that may apply; the
    program's region by default). It is a year of `program` (the default program unless named),
    which must exist and be active; each program has each year once.

    By default, applications still open when the year closes are carried into the next year: the
    applicant did everything asked in time, and the backlog is the fund's, not theirs.

    Its evidence policy (docs/evidence.md): how coupons are paid (`redemption_mode`: the center
    deducts them, or the enterprise pays in full and claims), the days an enterprise has to
    acknowledge or dispute a bill, which contracts count (signed within the year, the longest term)
    and whether the registered-model rate needs the filing certificate.

    `rule_set` is its rate policy from 1 January (the 2024 measures by default), written as the
    year's first rule-set version; `priced_by` says which day picks the version that prices an
    application (its submission, or its contract's signing).
    """
    require_superuser(actor)
    if not isinstance(year, int) or isinstance(year, bool) or not 2000 <= year <= 2999:
        raise ValidationFailed("year must be from 2000 to 2999.", field="year")
    if program == DEFAULT_PROGRAM:
        program_default_ensure()
    the_program = program_active_get(program)
    if redemption_mode is None:
        redemption_mode = the_program.redemption_mode
    if region_division_prefixes is None:
        region_division_prefixes = list(the_program.region)
    _check_amount(pool_fen, "pool_fen")
    _check_amount(default_cap_fen, "default_cap_fen")
    prefixes = region_division_prefixes_check(
        list(REGION_DIVISION_PREFIXES_DEFAULT) if region_division_prefixes is None else region_division_prefixes
    )
    if relaxed_cap_ceiling_fen is None:
        relaxed_cap_ceiling_fen = max(RELAXED_CAP_CEILING_FEN_DEFAULT, default_cap_fen)
    _check_amount(relaxed_cap_ceiling_fen, "relaxed_cap_ceiling_fen")
    if relaxed_cap_ceiling_fen < default_cap_fen:
        raise ValidationFailed(
            "relaxed_cap_ceiling_fen is at least the default cap (an override only raises a cap).",
            field="relaxed_cap_ceiling_fen",
        )
    _check_year_end_policy(
        grace_days=grace_days,
        open_applications_at_close=open_applications_at_close,
        grant_validity=grant_validity,
        grant_validity_months=grant_validity_months,
    )
    _check_evidence_policy(
        redemption_mode=redemption_mode,
        acknowledgement_window_days=acknowledgement_window_days,
        contract_signed_within_year=contract_signed_within_year,
        contract_term_months_max=contract_term_months_max,
        filing_certificate_required=filing_certificate_required,
    )
    if priced_by not in ProgramYear.PricedBy.values:
        raise ValidationFailed(f"priced_by is one of {', '.join(ProgramYear.PricedBy.values)}.", field="priced_by")
    with transaction.atomic():
        program_active_lock(the_program.slug)  # A close waits for this year, or this year sees the close.
        if ProgramYear.objects.filter(program=the_program, year=year).exists():
            raise InvalidState(f"Program year {year} of {the_program.slug} exists.")
        program_year = _program_year_insert(
            program=the_program,
            year=year,
            region_division_prefixes=prefixes,
            pool_fen=pool_fen,
            default_cap_fen=default_cap_fen,
            grace_days=grace_days,
            relaxed_cap_ceiling_fen=relaxed_cap_ceiling_fen,
            open_applications_at_close=open_applications_at_close,
            grant_validity=grant_validity,
            grant_validity_months=grant_validity_months,
            rule_set=rule_set or rule_set_default(),
            redemption_mode=redemption_mode,
            acknowledgement_window_days=acknowledgement_window_days,
            contract_signed_within_year=contract_signed_within_year,
            contract_term_months_max=contract_term_months_max,
            filing_certificate_required=filing_certificate_required,
            priced_by=priced_by,
        )
        _first_version_ensure(program_year)
        return program_year


def _rates_rule_set(rates: dict[str, Any], field: str) -> RateRuleSet:
    """The rule set `rates` (`name`, `ceiling_bp`, `rules`, optional `description`) names: written, or
    the existing one with that name and exactly these rules. A refused rule names its field under
    `field` (`rates.rules`, `rule_sets.1.rates.rules`), as the client sent it."""
    try:
        return rule_set_create(
            name=rates["name"],
            ceiling_bp=rates["ceiling_bp"],
            rules=rates["rules"],
            description=rates.get("description", ""),
        )
    except ValidationFailed as error:
        # The same error (400, or 409 for a name taken), its fields named as the client sent them.
        raise type(error)({f"{field}.{name}": messages for name, messages in error.errors.items()}) from None


def _version_date_check(
    *, program_year: ProgramYear, effective_from: object, existing: list[dt.date], today: dt.date, field: str
) -> dt.date:
    """Refuse a rule-set version whose day would leave a day of the year without one policy or
    reprice what was priced already. The database refuses the same (`RuleSetVersion`'s trigger)."""
    if not isinstance(effective_from, dt.date) or isinstance(effective_from, dt.datetime):
        raise ValidationFailed("effective_from is a date, YYYY-MM-DD.", field=field)
    year = program_year.year
    if effective_from.year != year:
        # A version prices the applications of its own year; the next year has versions of its own.
        raise ValidationFailed(
            f"effective_from {effective_from.isoformat()} is outside program year {year}.", field=field
        )
    if effective_from in existing:
        # Two versions from one day would overlap: the day's rate would depend on which was read.
        raise ValidationFailed(
            f"A rule-set version is in force from {effective_from.isoformat()} already (versions may not overlap).",
            field=field,
        )
    if not existing and effective_from != year_first_day(year):
        # The days from 1 January to the first version would have no policy: a gap.
        raise ValidationFailed(
            f"The first rule-set version of {year} takes effect on {year}-01-01 (no day of the year without rates).",
            field=field,
        )
    if program_year.status == ProgramYear.Status.CLOSED:
        raise ProgramYearClosed(f"Program year {year} of {program_year.program_id} is closed.")
    if program_year.status == ProgramYear.Status.OPEN and effective_from <= today:
        # Applications submitted (or contracts signed) up to today were priced by the version in
        # force; a version taking effect today or earlier would price the same day two ways.
        raise ValidationFailed(
            f"Program year {year} is open: a new rule-set version takes effect after today ({today.isoformat()}), "
            "never on or before it (no retroactive repricing).",
            field=field,
        )
    return effective_from


def _first_version_ensure(program_year: ProgramYear) -> None:
    """The year's first version row, its own rule set from 1 January (years made before versions,
    and by the annual reset's copy, may lack it; migration 0016 wrote it for the years it found)."""
    RuleSetVersion.objects.get_or_create(
        program_year=program_year,
        effective_from=year_first_day(program_year.year),
        defaults={"rule_set_id": program_year.rule_set_id},
    )


def chain_partitions_ensure(chain: str) -> None:
    """A year's partitions: made once its row committed, and checked again (outside a transaction)
    before it opens, its first transfer. Its failure fails nothing (the year exists and works, its
    transfers go to the DEFAULT partition), so it is logged, not raised: a caller's commit must not
    report an error for a year that was created."""
    try:
        made = chain_partitions_create(chain=chain)
    except DatabaseError:
        partitions_log.exception(
            "chain %s: its partitions were not made (its transfers go to the DEFAULT partition until "
            "`manage.py ledger_repartition --chain %s`)",
            chain,
            chain,
        )
        return
    if not made:
        partitions_log.warning(
            "chain %s: its first transfers are in the DEFAULT partition already; `manage.py ledger_repartition "
            "--chain %s` moves them",
            chain,
            chain,
        )


def _program_year_insert(*, program: Program, year: int, **terms: Any) -> ProgramYear:
    """Insert the year; a concurrent creation of the same year (the unique constraint) is 409 too."""
    try:
        with transaction.atomic():
            program_year = ProgramYear.objects.create(
                program=program, year=year, chain=f"{program.slug}:{year}", **terms
            )
            # The year's chain gets its own ledger partitions before its first transfer (a draft year
            # moves no money), once this commits: docs/ledger-history.md. Should that fail (a lock
            # not had in time), the chain's transfers go to the DEFAULT partition and nothing else
            # changes; `manage.py ledger_repartition` moves them out later. Every year is inserted
            # here (a superuser's, the annual reset's Y+1, the demo's), so none goes without.
            chain = program_year.chain
            transaction.on_commit(lambda: chain_partitions_ensure(chain), robust=True)
            return program_year
    except IntegrityError as error:
        # The pair is unique, and so is the chain named after it (`<slug>:<year>`): either says the year exists.
        constraint = _constraint_of(error) or ""
        if constraint != "coupons_year_once_per_program" and not constraint.startswith("coupons_programyear_chain"):
            raise
        raise InvalidState(f"Program year {year} of {program.slug} exists.") from None


def program_year_create_with_rates(
    *,
    year: int,
    actor: User,
    rates: dict[str, Any] | None = None,
    rule_sets: list[dict[str, Any]] | None = None,
    **policy: Any,
) -> ProgramYear:
    """`program_year_create` with its own rate policy, written in the same transaction: a rule set
    written for a year that is then refused is rolled back.

    Either `rates` (`name`, `ceiling_bp`, `rules`): one policy for the whole year; or `rule_sets`: its
    versions, each `{"effective_from": date, "rates": {...}}`, the first from 1 January, no two on
    one day, all within the year. A refused rule names its field under `rates.` or `rule_sets.N.`."""
    if rates is not None and rule_sets is not None:
        raise ValidationFailed("Give rates (one policy for the year) or rule_sets (its versions), not both.")
    with transaction.atomic():
        if rule_sets is None:
            rule_set = None if rates is None else _rates_rule_set(rates, "rates")
            return program_year_create(year=year, actor=actor, rule_set=rule_set, **policy)
        if not isinstance(rule_sets, list) or not rule_sets:
            raise ValidationFailed("rule_sets is a list of at least one version.", field="rule_sets")
        if not isinstance(year, int) or isinstance(year, bool) or not 2000 <= year <= 2999:
            raise ValidationFailed("year must be from 2000 to 2999.", field="year")
        if not all(isinstance(version, dict) and isinstance(version.get("rates"), dict) for version in rule_sets):
            raise ValidationFailed("Each of rule_sets is {effective_from, rates}.", field="rule_sets")
        # The days are checked against a draft year of `year` before anything is written.
        draft = ProgramYear(year=year, status=ProgramYear.Status.DRAFT)
        days: list[dt.date] = []
        for index, version in enumerate(rule_sets):
            days.append(
                _version_date_check(
                    program_year=draft,
                    effective_from=version.get("effective_from"),
                    existing=days,
                    today=dt.date.min,
                    field=f"rule_sets.{index}.effective_from",
                )
            )
        if days != sorted(days):
            raise ValidationFailed("rule_sets are listed in date order.", field="rule_sets")
        written = [
            _rates_rule_set(version["rates"], f"rule_sets.{index}.rates") for index, version in enumerate(rule_sets)
        ]
        program_year = program_year_create(year=year, actor=actor, rule_set=written[0], **policy)
        for day, rule_set in zip(days[1:], written[1:], strict=True):
            RuleSetVersion.objects.create(program_year=program_year, rule_set=rule_set, effective_from=day)
        return program_year


def rule_set_version_add(
    *,
    year: int,
    effective_from: dt.date,
    rates: dict[str, Any],
    actor: User,
    program: str = DEFAULT_PROGRAM,
) -> ProgramYear:
    """A superuser adds a version of a program year's rate policy, in force from `effective_from`
    (an Asia/Shanghai day) until the next version. Refused (nothing written) for a day outside the
    year, a day that has a version already, a closed year, and, once the year is open, a day that
    is not after today: what was priced stays priced by the version in force when it was."""
    require_superuser(actor)
    # Today by the clock, never a caller's: the database checks the same day by its own clock.
    today = timezone.localtime(timezone.now(), PROGRAM_TIME_ZONE).date()
    with transaction.atomic():
        program_year = program_year_lock(year, program)
        _first_version_ensure(program_year)
        existing = [version.effective_from for version in rule_set_versions(program_year)]
        day = _version_date_check(
            program_year=program_year,
            effective_from=effective_from,
            existing=existing,
            today=today,
            field="effective_from",
        )
        rule_set = _rates_rule_set(rates, "rates")
        RuleSetVersion.objects.create(program_year=program_year, rule_set=rule_set, effective_from=day)
        return program_year


ACTION_RULE_SET_VERSION = "rule_set_version_add"


def rule_set_version_request(
    *,
    year: int,
    effective_from: dt.date,
    rates: dict[str, Any],
    reason: str,
    requester: User,
    program: str = DEFAULT_PROGRAM,
) -> ApprovalRequest:
    """A superuser asks for a rule-set version; another superuser decides (approvals, action
    `rule_set_version_add`): a version sets the rates the fund pays from its day on, so no one person
    adds it alone. Checked now exactly as on approval, by adding it in a transaction that is rolled
    back (a version that could not be added is refused at once, nothing written), and checked again
    when it is approved: by then its day must still be after today in an open year. One request per
    program year waits at a time."""
    require_superuser(requester)
    reason = reason_clean(reason)
    program_year = program_year_get(year, program)
    db.dry_run(
        lambda: rule_set_version_add(
            year=year, effective_from=effective_from, rates=rates, actor=requester, program=program
        )
    )
    return approval_request_create(
        action=ACTION_RULE_SET_VERSION,
        target=f"rule-sets:{program_year.pk}",
        payload={"program": program, "year": year, "effective_from": effective_from.isoformat(), "rates": rates},
        reason=reason,
        requester=requester,
    )


def rule_set_version_request_execute(*, request: ApprovalRequest, decider: User) -> None:
    """An approved request: the version added by the decider (the approvals app calls this)."""
    payload = request.payload
    rule_set_version_add(
        year=payload["year"],
        effective_from=dt.date.fromisoformat(payload["effective_from"]),
        rates=payload["rates"],
        actor=decider,
        program=payload["program"],
    )


def program_year_hangzhou_2025_create(*, actor: User, program: str = DEFAULT_PROGRAM, **policy: Any) -> ProgramYear:
    """A program's 2025 year (the default program's unless named) as Hangzhou ran it: the 2024
    measures from 1 January and the June 2025 revision from 13 June
    (`coupons.policy.HANGZHOU_2025_RULE_SETS`), as a draft."""
    return program_year_create_with_rates(
        year=2025, actor=actor, rule_sets=HANGZHOU_2025_RULE_SETS, program=program, **policy
    )


def program_year_open(*, year: int, actor: User, program: str = DEFAULT_PROGRAM) -> ProgramYear:
    """A superuser opens a draft year: its ledger accounts, and the pool credited from the appropriation."""
    require_superuser(actor)
    reach_program(actor, program, f"program {program!r}")
    return program_year_open_system(year=year, program=program)


def program_year_open_system(
    *, year: int, program: str = DEFAULT_PROGRAM, now: dt.datetime | None = None
) -> ProgramYear:
    """Open a draft year (the annual reset calls this for Y+1; people go through program_year_open).
    Opening an open year again changes nothing and answers it."""
    if not connection.in_atomic_block:
        # Its chain's partitions before its first transfer, should its creation not have made them.
        draft = ProgramYear.objects.filter(program_id=program, year=year).values_list("chain", "status").first()
        if draft is not None and draft[1] == ProgramYear.Status.DRAFT:
            chain_partitions_ensure(draft[0])
    with transaction.atomic():
        program_year = program_year_lock(year, program)
        if program_year.status == ProgramYear.Status.OPEN:
            return program_year
        if program_year.status != ProgramYear.Status.DRAFT:
            raise InvalidState(f"Program year {year} of {program} is {program_year.status}; only a draft year opens.")
        program_active_lock(program)  # A closed program opens no new year.
        accounts = books.year_accounts_ensure(program_year)
        transfer_create(
            transfer=TransferRequest.posted(
                key=f"year:{program_year.pk}:open",
                debit_account_id=accounts["appropriation"].pk,
                credit_account_id=accounts["pool"].pk,
                amount_fen=program_year.pool_fen,
                reason="year_open",
                chain=books.chain(program_year),
            )
        )
        program_year.status = ProgramYear.Status.OPEN
        program_year.opened_at = now or timezone.now()
        program_year.save(update_fields=["status", "opened_at"])
        return program_year


def program_year_current(*, now: dt.datetime | None = None, program: str = DEFAULT_PROGRAM) -> ProgramYear:
    """The program's open year that `now` falls in; ProgramYearClosed when there is none."""
    year = program_year_of(now or timezone.now())
    program_year = ProgramYear.objects.select_related("program").filter(program_id=program, year=year).first()
    if program_year is None or program_year.status != ProgramYear.Status.OPEN:
        if Program.objects.filter(slug=program, status=Program.Status.CLOSED).exists():
            raise ProgramClosed(f"Program {program} is closed.")
        raise ProgramYearClosed(f"Program year {year} of {program} is not open.")
    # Inside a caller's transaction (a submission) the share it takes holds until that commits, so a
    # concurrent `program_close` either waits for the application or is seen by it.
    program_active_lock(program)
    return program_year


def enterprise_cap_fen(*, enterprise_id: int, year: ProgramYear) -> int:
    """The enterprise's cap for the year: the latest override, or the year's default."""
    override = CapOverride.objects.filter(enterprise_id=enterprise_id, year=year).order_by("-id").first()
    return override.cap_fen if override is not None else year.default_cap_fen


def cap_account_ensure(*, enterprise_id: int, year: ProgramYear) -> int:
    """The enterprise's cap account for the year, credited with the default cap once; its id."""
    cap = account_create(code=books.cap_code(enterprise_id, year), debits_must_not_exceed_credits=True)
    allotted = account_create(code=books.cap_allotted_code(year))
    transfer_create(
        transfer=TransferRequest.posted(
            key=f"cap:{enterprise_id}:{year.pk}:default",
            debit_account_id=allotted.pk,
            credit_account_id=cap.pk,
            amount_fen=year.default_cap_fen,
            reason="cap_default",
            chain=books.chain(year),
        )
    )
    return cap.pk


def enterprise_may_have_relaxed_cap(enterprise: Enterprise) -> bool:
    """Only a verified enterprise that declared it develops a foundation model and staff confirmed it."""
    return enterprise_is_verified_foundation_model_developer(enterprise)


def _cap_override_check(*, program_year: ProgramYear, enterprise: Enterprise, cap_fen: int) -> int:
    """Refuse an override the policy does not allow; the enterprise's current cap otherwise."""
    _check_amount(cap_fen, "cap_fen")
    if not enterprise_may_have_relaxed_cap(enterprise):
        raise NotEligible(
            "Only a verified enterprise that staff confirmed as a foundation-model developer may have a relaxed cap."
        )
    # A relaxed cap in a program whose region the enterprise is outside would be a cap it cannot use
    # (found from outside: a district raised the cap of an enterprise registered elsewhere).
    from coupons.services.eligibility import require_in_region  # It reads this module's time zone.

    require_in_region(enterprise=enterprise, year=program_year)
    if program_year.status == ProgramYear.Status.CLOSED:
        raise ProgramYearClosed(f"Program year {program_year.year} is closed.")
    if program_year.status != ProgramYear.Status.OPEN:
        raise InvalidState(f"Program year {program_year.year} is not open yet.")
    if cap_fen > program_year.relaxed_cap_ceiling_fen:
        raise ValidationFailed(
            f"A relaxed cap is at most the year's ceiling of {program_year.relaxed_cap_ceiling_fen} fen.",
            field="cap_fen",
        )
    previous_cap_fen = enterprise_cap_fen(enterprise_id=enterprise.pk, year=program_year)
    if cap_fen <= previous_cap_fen:
        raise ValidationFailed(f"A relaxed cap must exceed the current one ({previous_cap_fen} fen).", field="cap_fen")
    return previous_cap_fen


def cap_override_request(
    *, year: int, enterprise: Enterprise, cap_fen: int, reason: str, requester: User, program: str = DEFAULT_PROGRAM
) -> ApprovalRequest:
    """A reviewer or approver asks for a relaxed cap for one enterprise; a different approver decides.

    Checked now against the policy (so a request that cannot be granted is refused at once), and
    again when it is approved."""
    require_role(requester, Role.REVIEWER, Role.APPROVER)
    reach_program(requester, program, f"program {program!r}")
    reason = reason_clean(reason)
    program_year = program_year_get(year, program)
    _cap_override_check(program_year=program_year, enterprise=enterprise, cap_fen=cap_fen)
    return approval_request_create(
        action=ACTION_CAP_OVERRIDE,
        target=f"cap:{enterprise.pk}:{program_year.pk}",
        payload={"program": program, "year": year, "enterprise": enterprise.pk, "cap_fen": cap_fen},
        reason=reason,
        requester=requester,
    )


def cap_override_grant(
    *,
    year: int,
    enterprise: Enterprise,
    cap_fen: int,
    reason: str,
    requested_by: User,
    actor: User,
    program: str = DEFAULT_PROGRAM,
) -> CapOverride:
    """An approver relaxes a foundation-model enterprise's cap for the year (four eyes).

    Called by the approval of a `cap_override` request (`coupons/approval_actions.py`)."""
    require_role(actor, Role.APPROVER)
    reach_program(actor, program, f"program {program!r}")
    if requested_by.pk == actor.pk:
        raise FourEyes("The approver who grants a cap override may not be the one who asked for it.")
    reason = reason_clean(reason)
    with transaction.atomic():
        # The enterprise first, as a submission takes it (before the year's row): in the other order a
        # submission holding the enterprise and waiting on the year deadlocks with this. FOR NO KEY
        # UPDATE: its flags as they are now, without blocking a grant's foreign key to it.
        enterprise = Enterprise.objects.select_for_update(no_key=True).get(pk=enterprise.pk)
        program_year = program_year_lock(year, program)
        previous_cap_fen = _cap_override_check(program_year=program_year, enterprise=enterprise, cap_fen=cap_fen)
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
                debit_account_id=books.account_id(books.cap_allotted_code(program_year)),
                credit_account_id=cap_account_id,
                amount_fen=cap_fen - previous_cap_fen,
                reason="cap_override",
                chain=books.chain(program_year),
            )
        )
        return override


def program_year_get(year: int, program: str = DEFAULT_PROGRAM) -> ProgramYear:
    """Program `program`'s year `year` (the default program's when none is named); NotFound otherwise."""
    try:
        return ProgramYear.objects.select_related("rule_set", "program").get(program_id=program, year=year)
    except (ProgramYear.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No program year {year} in program {program}.") from None
