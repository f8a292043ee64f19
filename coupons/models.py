"""The computing-power coupon program.

A `ProgramYear` (a calendar year in Asia/Shanghai) has a pool, a default per-enterprise cap, a
grace period and a `RateRuleSet`: versioned policy data, an ordered list of rules of which the
first that matches an application gives its rate in basis points, clamped to the set's ceiling.

An enterprise submits an `Application` for one compute contract with one provider; the provider
confirms the contract, a reviewer recommends an amount, and a different approver approves it,
which issues a `Grant` (the coupon) in one ledger batch that debits the year's pool and the
enterprise's cap. A provider applies a grant to a bill with a `Redemption`: a hold that is then
captured or voided (or expires), like a card payment; an approver may reverse a captured one.
Finance batches a provider's captured redemptions into a `Settlement` and marks it paid.

Money lives in the ledger, never in these rows: each grant has its own ledger account, and every
amount shown here is also a ledger transfer (see `coupons/books.py` for the account plan). The
rows record who did what and when, and the database checks their own invariants.
"""

from typing import Any

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Replace

from accounts.models import ComputeSource, Enterprise, Provider

CONTRACT_FEE_FEN_MAX = 10**13  # 100 billion yuan: far above any contract, and fee × rate fits in 64 bits.
BASIS_POINTS_WHOLE = 10_000
CONTRACT_NUMBER_LENGTH_MAX = 64
BILL_NUMBER_LENGTH_MAX = 64
# The administrative-division prefixes (GB/T 2260, in characters 3-8 of a credit code) of the
# program's region: Hangzhou is 3301.
REGION_DIVISION_PREFIXES_DEFAULT = ["3301"]
REGION_DIVISION_PREFIXES_COUNT_MAX = 50


def region_division_prefixes_default() -> list[str]:
    return list(REGION_DIVISION_PREFIXES_DEFAULT)


# A relaxed cap may reach this by default: 20 million yuan, two and a half times the standard cap.
RELAXED_CAP_CEILING_FEN_DEFAULT = 2_000_000_000
GRANT_VALIDITY_MONTHS_MAX = 36  # Three years: a grant by months never outlives its year by more.
# Evidence policy defaults (docs/evidence.md).
ACKNOWLEDGEMENT_WINDOW_DAYS_DEFAULT = 7
ACKNOWLEDGEMENT_WINDOW_DAYS_MAX = 90
CONTRACT_TERM_MONTHS_MAX_DEFAULT = 12
CONTRACT_TERM_MONTHS_CEILING = 120  # No contract term is recorded past ten years.
# 20 digits (a fully digital e-invoice, 全电发票), or CODE-NUMBER: a 10 or 12-digit code and an 8-digit number.
INVOICE_NUMBER_LENGTH_MAX = 21


class Purpose(models.TextChoices):
    TRAINING = "training", "model training"
    INFERENCE = "inference", "inference"
    APPLICATION = "application", "application"
    MAAS = "maas", "model as a service (MaaS)"
    AGENT = "agent", "agent development"


class RateRuleSet(models.Model):
    """A version of the subsidy-rate policy. Never changed once written: a change is a new version.

    `rules` is an ordered list of {"label", "rate_bp", "when": {...}}; see `coupons/policy.py`.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    ceiling_bp = models.PositiveIntegerField(help_text="No rate exceeds this, in basis points (3000 = 30%).")
    rules = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(ceiling_bp__lte=BASIS_POINTS_WHOLE), name="coupons_rule_set_ceiling"),
        ]
        triggers = [pgtrigger.Protect(name="rule_set_immutable", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return self.name


DEFAULT_PROGRAM = "hangzhou-compute"
PROGRAM_SLUG_LENGTH_MAX = 24  # A chain is `<slug>:<year>`, at most 32 characters in the ledger.


class Program(models.Model):
    """A fund: Hangzhou's city compute coupons, a district's, the province's, or another money measure
    of the same shape (docs/programs.md). Each has its own years, pools, caps and ledger accounts.

    `region` lists the division-code prefixes (GB/T 2260) of the credit codes it serves; each year
    copies it as its `region_division_prefixes` unless told otherwise. A closed program takes no new
    year and no new application.
    """

    class Level(models.TextChoices):
        CITY = "city", "city"
        DISTRICT = "district", "district"
        PROVINCE = "province", "province"

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        CLOSED = "closed", "closed"

    slug = models.SlugField(primary_key=True, max_length=PROGRAM_SLUG_LENGTH_MAX)
    name = models.CharField(max_length=100, help_text="The program's name in Chinese, e.g. 杭州市算力券.")
    name_en = models.CharField(max_length=200)
    authority = models.CharField(max_length=200, help_text="The issuing authority.")
    level = models.CharField(max_length=8, choices=Level.choices)
    region = models.JSONField(default=region_division_prefixes_default)
    redemption_mode = models.CharField(
        max_length=24,
        default="provider_deduction",
        help_text="How its coupons are paid unless a year says otherwise "
        "(provider_deduction or enterprise_reimbursement).",
    )

    class Basis(models.TextChoices):
        # What an application's amount (`Application.contract_fee_fen`) is: the rules price it.
        COMPUTE_CONTRACT = "compute_contract", "the fee of a compute contract"
        EVALUATION_COSTS = "evaluation_costs", "the evaluation and related expenses of a model filing"
        LOAN_INTEREST = "loan_interest", "the interest paid on a qualifying loan"

    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    basis = models.CharField(
        max_length=20,
        choices=Basis.choices,
        default=Basis.COMPUTE_CONTRACT,
        help_text="What an application's amount is: a compute contract's fee, evaluation costs, or loan interest.",
    )
    once_per_enterprise = models.BooleanField(
        default=False,
        help_text="An enterprise has at most one live application in the program, across all its years "
        "(a one-time reward).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Who closed it and when (`program_close`): a closed program names both, an active one neither.
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(basis__in=["compute_contract", "evaluation_costs", "loan_interest"]),
                name="coupons_program_basis",
            ),
            models.CheckConstraint(
                condition=(Q(status="active", closed_at__isnull=True, closed_by__isnull=True))
                | Q(status="closed", closed_at__isnull=False, closed_by__isnull=False),
                name="coupons_program_closed_when",
            ),
            models.CheckConstraint(condition=Q(slug__regex=r"^[a-z0-9]+(-[a-z0-9]+)*$"), name="coupons_program_slug"),
            models.CheckConstraint(
                condition=Q(level__in=["city", "district", "province"]), name="coupons_program_level"
            ),
            models.CheckConstraint(condition=Q(status__in=["active", "closed"]), name="coupons_program_status"),
            models.CheckConstraint(
                condition=Q(redemption_mode__in=["provider_deduction", "enterprise_reimbursement"]),
                name="coupons_program_redemption_mode",
            ),
        ]

    def __str__(self) -> str:
        return self.slug


STACKING_RULE_NAME_LENGTH_MAX = 100


class StackingRule(models.Model):
    """Policy data: programs that may subsidise the same contract, and their combined ceiling
    (docs/programs.md "Stacking"). A contract subsidised in several programs gets, from all of them
    together, at most `share_bp` of its fee and, when set, at most `amount_fen`. Two programs that no
    rule joins do not stack: a contract has a live application in one of them at a time.

    Asked for by one superuser and written once another approves (`coupons.services.stacking`:
    `stacking_rule_request`, `stacking_rule_create`), never changed: a new policy is a new rule.
    """

    name = models.CharField(max_length=STACKING_RULE_NAME_LENGTH_MAX, unique=True)
    programs: "models.ManyToManyField[Program, StackingRuleProgram]" = models.ManyToManyField(
        Program, through="StackingRuleProgram", related_name="stacking_rules"
    )
    share_bp = models.PositiveIntegerField(
        help_text="The combined ceiling as a share of the contract fee (6000 = 60%)."
    )
    amount_fen = models.BigIntegerField(
        null=True, blank=True, help_text="The combined ceiling in fen, when the policy sets one."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(share_bp__gt=0, share_bp__lte=BASIS_POINTS_WHOLE), name="coupons_stacking_share_range"
            ),
            models.CheckConstraint(
                condition=Q(amount_fen__isnull=True) | Q(amount_fen__gt=0), name="coupons_stacking_amount_positive"
            ),
        ]
        triggers = [pgtrigger.Protect(name="stacking_rule_immutable", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return self.name


class StackingRuleProgram(models.Model):
    """One program a stacking rule joins."""

    rule = models.ForeignKey(StackingRule, on_delete=models.PROTECT, related_name="memberships")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule", "program"], name="coupons_stacking_rule_program_once"),
        ]
        triggers = [
            pgtrigger.Protect(name="stacking_rule_program_immutable", operation=pgtrigger.Update | pgtrigger.Delete)
        ]

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.program_id}"


class ProgramYear(models.Model):
    """One calendar year of a program, with its pool and policy.

    Its `id` is internal. The years migrated from the single-fund service kept their year as their
    id (2024, 2025, …: migration 0014), so no row that refers to them changed; years created since
    number from 10000. Its ledger accounts are named by program and year (`coupons/books.py`) and
    its transfers are sealed in its own hash `chain`.

    Its year-end policy is data too: what becomes of applications still submitted, confirmed or
    reviewed when the year closes (carried into the next year's queue, or withdrawn with a recorded
    reason), and how long its grants are valid (to year end plus `grace_days`, or
    `grant_validity_months` calendar months from issue, which may outlive the year).
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        OPEN = "open", "open"
        CLOSED = "closed", "closed"

    class OpenApplicationsAtClose(models.TextChoices):
        CARRY = "carry", "carried into the next year"
        WITHDRAW = "withdraw", "withdrawn"

    class GrantValidity(models.TextChoices):
        YEAR_END = "year_end", "to year end plus the grace days"
        MONTHS = "months", "a number of months from issue"

    class PricedBy(models.TextChoices):
        # Which day picks the rule-set version that prices an application (docs/programs.md).
        SUBMISSION = "submission", "the day the application is submitted"
        CONTRACT = "contract", "the day the contract was signed"

    class RedemptionMode(models.TextChoices):
        # The computing center deducts the coupon from its bill and the fund pays the center.
        PROVIDER_DEDUCTION = "provider_deduction", "the center deducts the coupon; the fund pays the center"
        # 事后兑现: the enterprise pays its bill in full, then claims; the fund pays the enterprise.
        ENTERPRISE_REIMBURSEMENT = "enterprise_reimbursement", "the enterprise pays in full and claims afterwards"

    id = models.AutoField(primary_key=True)
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="years")
    year = models.PositiveIntegerField()
    chain = models.CharField(
        max_length=32,
        unique=True,
        help_text="The ledger hash chain of its transfers: <program>:<year> (2026 before programs).",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    pool_fen = models.BigIntegerField()
    default_cap_fen = models.BigIntegerField()
    grace_days = models.PositiveIntegerField(default=0)
    relaxed_cap_ceiling_fen = models.BigIntegerField(
        default=RELAXED_CAP_CEILING_FEN_DEFAULT,
        help_text="The highest cap an override may give one enterprise in the year (policy data).",
    )
    open_applications_at_close = models.CharField(
        max_length=8, choices=OpenApplicationsAtClose.choices, default=OpenApplicationsAtClose.CARRY
    )
    grant_validity = models.CharField(max_length=8, choices=GrantValidity.choices, default=GrantValidity.YEAR_END)
    grant_validity_months = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="With grant_validity 'months': calendar months from issue, 1 to 36."
    )
    # The rate policy in force from the year's first day. Later versions, each from its own day, are
    # `RuleSetVersion` rows; this one is also the year's first version row (1 January).
    rule_set = models.ForeignKey(RateRuleSet, on_delete=models.PROTECT, related_name="years")
    priced_by = models.CharField(
        max_length=16,
        choices=PricedBy.choices,
        default=PricedBy.SUBMISSION,
        help_text="The day whose rule-set version prices an application: its submission or its contract's signing.",
    )
    region_division_prefixes = models.JSONField(
        default=region_division_prefixes_default,
        help_text="Enterprises apply only when their credit code's division (characters 3-8) starts with one of these.",
    )
    # Evidence policy (docs/evidence.md): which contracts count, how bills are paid and acknowledged.
    redemption_mode = models.CharField(
        max_length=24, choices=RedemptionMode.choices, default=RedemptionMode.PROVIDER_DEDUCTION
    )
    acknowledgement_window_days = models.PositiveSmallIntegerField(
        default=ACKNOWLEDGEMENT_WINDOW_DAYS_DEFAULT,
        help_text="Days the enterprise has to acknowledge or dispute a captured bill; silence then confirms it.",
    )
    contract_signed_within_year = models.BooleanField(
        default=True, help_text="A contract counts only when it was signed within the program year."
    )
    contract_term_months_max = models.PositiveSmallIntegerField(
        default=CONTRACT_TERM_MONTHS_MAX_DEFAULT, help_text="The longest contract term that counts, in months."
    )
    filing_certificate_required = models.BooleanField(
        default=False,
        help_text="The registered-model rate needs the model filing certificate uploaded with the application.",
    )
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "year"], name="coupons_year_once_per_program"),
            # The target of applications' (year, program) foreign key, which keeps the two consistent.
            models.UniqueConstraint(fields=["id", "program"], name="coupons_year_id_program"),
            models.CheckConstraint(condition=Q(pool_fen__gt=0), name="coupons_year_pool_positive"),
            models.CheckConstraint(
                condition=Q(redemption_mode__in=["provider_deduction", "enterprise_reimbursement"]),
                name="coupons_year_redemption_mode",
            ),
            models.CheckConstraint(
                condition=Q(
                    acknowledgement_window_days__gte=1, acknowledgement_window_days__lte=ACKNOWLEDGEMENT_WINDOW_DAYS_MAX
                ),
                name="coupons_year_acknowledgement_window",
            ),
            models.CheckConstraint(
                condition=Q(
                    contract_term_months_max__gte=1, contract_term_months_max__lte=CONTRACT_TERM_MONTHS_CEILING
                ),
                name="coupons_year_contract_term_max",
            ),
            models.CheckConstraint(condition=Q(default_cap_fen__gt=0), name="coupons_year_cap_positive"),
            models.CheckConstraint(condition=Q(year__gte=2000, year__lte=2999), name="coupons_year_range"),
            models.CheckConstraint(condition=Q(status__in=["draft", "open", "closed"]), name="coupons_year_status"),
            models.CheckConstraint(
                condition=Q(priced_by__in=["submission", "contract"]), name="coupons_year_priced_by"
            ),
            models.CheckConstraint(
                condition=Q(open_applications_at_close__in=["carry", "withdraw"]),
                name="coupons_year_open_applications_at_close",
            ),
            # Months are counted from issue, so a grace after year end means nothing for them.
            models.CheckConstraint(
                condition=Q(grant_validity="year_end", grant_validity_months__isnull=True)
                | Q(
                    grant_validity="months",
                    grant_validity_months__isnull=False,  # NULL would make the check pass, not fail.
                    grant_validity_months__gte=1,
                    grant_validity_months__lte=GRANT_VALIDITY_MONTHS_MAX,
                    grace_days=0,
                ),
                name="coupons_year_grant_validity",
            ),
        ]
        triggers = [
            # A year's policy and money are fixed once it opens: its grants were made under them.
            pgtrigger.Protect(
                name="program_year_terms_fixed_once_open",
                operation=pgtrigger.Update,
                condition=pgtrigger.Q(old__status__in=["open", "closed"])
                & (
                    pgtrigger.Q(old__rule_set_id__df=pgtrigger.F("new__rule_set_id"))
                    | pgtrigger.Q(old__program_id__df=pgtrigger.F("new__program_id"))
                    | pgtrigger.Q(old__year__df=pgtrigger.F("new__year"))
                    | pgtrigger.Q(old__chain__df=pgtrigger.F("new__chain"))
                    | pgtrigger.Q(old__pool_fen__df=pgtrigger.F("new__pool_fen"))
                    | pgtrigger.Q(old__default_cap_fen__df=pgtrigger.F("new__default_cap_fen"))
                    | pgtrigger.Q(old__grace_days__df=pgtrigger.F("new__grace_days"))
                    | pgtrigger.Q(old__region_division_prefixes__df=pgtrigger.F("new__region_division_prefixes"))
                    | pgtrigger.Q(old__relaxed_cap_ceiling_fen__df=pgtrigger.F("new__relaxed_cap_ceiling_fen"))
                    | pgtrigger.Q(old__open_applications_at_close__df=pgtrigger.F("new__open_applications_at_close"))
                    | pgtrigger.Q(old__grant_validity__df=pgtrigger.F("new__grant_validity"))
                    | pgtrigger.Q(old__grant_validity_months__df=pgtrigger.F("new__grant_validity_months"))
                    | pgtrigger.Q(old__redemption_mode__df=pgtrigger.F("new__redemption_mode"))
                    | pgtrigger.Q(old__acknowledgement_window_days__df=pgtrigger.F("new__acknowledgement_window_days"))
                    | pgtrigger.Q(old__contract_signed_within_year__df=pgtrigger.F("new__contract_signed_within_year"))
                    | pgtrigger.Q(old__contract_term_months_max__df=pgtrigger.F("new__contract_term_months_max"))
                    | pgtrigger.Q(old__filing_certificate_required__df=pgtrigger.F("new__filing_certificate_required"))
                    | pgtrigger.Q(old__priced_by__df=pgtrigger.F("new__priced_by"))
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.program_id} {self.year}"


RULE_SET_VERSION_CHECK_SQL = """
    SELECT year, status, rule_set_id INTO year_of, status_of, first_rule_set_id
      FROM coupons_programyear WHERE id = NEW.program_year_id;
    first_day := make_date(year_of, 1, 1);
    IF EXTRACT(YEAR FROM NEW.effective_from) <> year_of THEN
        RAISE EXCEPTION 'rule set version of % effective %: outside its year', year_of, NEW.effective_from;
    END IF;
    IF NEW.effective_from = first_day THEN
        IF NEW.rule_set_id <> first_rule_set_id THEN
            RAISE EXCEPTION 'the version of 1 January % is the year''s own rule set', year_of;
        END IF;
        RETURN NEW;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM coupons_rulesetversion WHERE program_year_id = NEW.program_year_id AND effective_from = first_day
    ) THEN
        RAISE EXCEPTION 'rule set versions of % start on 1 January', year_of;
    END IF;
    IF status_of = 'closed'
        OR (status_of = 'open' AND NEW.effective_from <= (now() AT TIME ZONE 'Asia/Shanghai')::date) THEN
        RAISE EXCEPTION 'rule set version effective %: not after today in a % year', NEW.effective_from, status_of;
    END IF;
    RETURN NEW;
"""


class RuleSetVersion(models.Model):
    """A version of a program year's rate policy, in force from `effective_from` (an Asia/Shanghai
    day) to the day before the next version's. An application is priced by the version in force on
    its submission day, or on its contract's signing day (`ProgramYear.priced_by`).

    Every year's first version is in force from 1 January and is the year's own `rule_set`. The
    database refuses a version outside its year, two on one day, a later one before the first, a
    first one that is not the year's rule set, and, once the year is open, one that takes effect
    today or earlier (applications already priced would have been priced otherwise). Versions are
    never changed or deleted: a mistake is corrected by a later version.
    """

    program_year = models.ForeignKey(ProgramYear, on_delete=models.PROTECT, related_name="rule_set_versions")
    rule_set = models.ForeignKey(RateRuleSet, on_delete=models.PROTECT, related_name="versions")
    effective_from = models.DateField(help_text="The first Asia/Shanghai day it prices applications.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["program_year", "effective_from"], name="coupons_rule_set_version_once_a_day"
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="rule_set_version_immutable", operation=pgtrigger.Update | pgtrigger.Delete),
            pgtrigger.Trigger(
                name="rule_set_version_dates",
                operation=pgtrigger.Insert,
                when=pgtrigger.Before,
                declare=[
                    ("year_of", "integer"),
                    ("status_of", "varchar"),
                    ("first_rule_set_id", "integer"),
                    ("first_day", "date"),
                ],
                func=RULE_SET_VERSION_CHECK_SQL,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.program_year} from {self.effective_from}: {self.rule_set_id}"


class CapOverride(models.Model):
    """A relaxed cap for one enterprise in one year: asked for by one member of staff with a written
    reason, granted by a different approver (an `approvals.ApprovalRequest` records both steps)."""

    year = models.ForeignKey(ProgramYear, on_delete=models.PROTECT, related_name="cap_overrides")
    enterprise = models.ForeignKey(Enterprise, on_delete=models.PROTECT, related_name="cap_overrides")
    cap_fen = models.BigIntegerField(help_text="The enterprise's cap for the year from now on.")
    previous_cap_fen = models.BigIntegerField()
    reason = models.TextField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(cap_fen__gt=F("previous_cap_fen")), name="coupons_cap_override_raises"),
            models.CheckConstraint(condition=~Q(reason=""), name="coupons_cap_override_has_reason"),
            models.CheckConstraint(condition=~Q(requested_by=F("granted_by")), name="coupons_cap_override_four_eyes"),
        ]

    def __str__(self) -> str:
        return f"{self.enterprise} {self.year}: {self.cap_fen} fen"


class Application(models.Model):
    """An enterprise's request for coupons against one compute contract with one provider."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", "submitted"
        CONFIRMED = "confirmed", "confirmed by the provider"
        REVIEWED = "reviewed", "reviewed"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        WITHDRAWN = "withdrawn", "withdrawn"

    enterprise = models.ForeignKey(Enterprise, on_delete=models.PROTECT, related_name="applications")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="applications")
    # The program is its year's (a database foreign key on (year, program) keeps them equal): it is
    # here so that a contract is subsidised once per program, whatever the year.
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="applications")
    year = models.ForeignKey(ProgramYear, on_delete=models.PROTECT, related_name="applications")
    contract_number = models.CharField(max_length=CONTRACT_NUMBER_LENGTH_MAX)
    contract_fee_fen = models.BigIntegerField()
    compute_source = models.CharField(max_length=16, choices=ComputeSource.choices)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    rate_bp = models.PositiveIntegerField()
    rate_rule = models.CharField(max_length=200, help_text="The label of the rule that gave the rate.")
    # The rule-set version that priced it (null on applications made before versions existed, which
    # were priced by their year's rule set).
    rule_set = models.ForeignKey(
        RateRuleSet, on_delete=models.PROTECT, null=True, blank=True, related_name="applications"
    )
    eligible_fen = models.BigIntegerField()
    requested_fen = models.BigIntegerField()
    # The filed model the work relies on (its own or a third party's), as the enterprise named it,
    # and the register's row when staff had verified it at submission.
    model_filing_number = models.CharField(max_length=100, blank=True)
    model_filing = models.ForeignKey(
        "accounts.ModelFiling", on_delete=models.PROTECT, null=True, blank=True, related_name="applications"
    )
    # The inputs the application was priced with at submission, so the audit can recompute the rate
    # from the year's rule set: the flags as they counted (declared and verified), whether a
    # verified filing was named, and the enterprise's contracted total for the year.
    priced_has_registered_model = models.BooleanField(default=False)
    priced_foundation_model_developer = models.BooleanField(default=False)
    priced_small_or_medium = models.BooleanField(default=False)
    priced_contracted_total_fen = models.BigIntegerField(default=0)
    # The loan inputs of a `loan_interest` program (null elsewhere): the loan's annual rate and the
    # project's total investment, as the enterprise declared them and the reviewer checks against
    # the loan contract; the rules price with them and the audit recomputes from them.
    loan_rate_bp = models.PositiveIntegerField(null=True, blank=True)
    project_investment_fen = models.BigIntegerField(null=True, blank=True)
    # Copied from the program at submission: the partial unique index below can then keep a one-time
    # program to one live application per enterprise.
    once_per_enterprise = models.BooleanField(default=False)
    # The signed contract (evidence.Document of kind contract), when it was signed and for how long.
    # Null only on applications made before evidence was required.
    contract_document = models.ForeignKey(
        "evidence.Document", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    contract_signed_on = models.DateField(null=True, blank=True)
    contract_term_months = models.PositiveSmallIntegerField(null=True, blank=True)
    filing_certificate_document = models.ForeignKey(
        "evidence.Document", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The documents the reviewer checked when recommending (ids of evidence.Document).
    evidence_checked = models.JSONField(default=list, blank=True)
    recommended_fen = models.BigIntegerField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    reject_reason = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUBMITTED)
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One contract is subsidised once per program, across all its years (several programs
            # stack within their combined ceiling: coupons/services/stacking.py); a rejected or withdrawn
            # application leaves the contract free for a new one.
            models.UniqueConstraint(
                fields=["program", "provider", "contract_number"],
                condition=~Q(status__in=["rejected", "withdrawn"]),
                name="coupons_application_contract_once",
            ),
            # A one-time program (Program.once_per_enterprise): one live application per enterprise,
            # across all the program's years.
            models.UniqueConstraint(
                fields=["program", "enterprise"],
                condition=Q(once_per_enterprise=True) & ~Q(status__in=["rejected", "withdrawn"]),
                name="coupons_application_once_per_enterprise",
            ),
            models.CheckConstraint(
                condition=Q(loan_rate_bp__isnull=True) | Q(loan_rate_bp__gt=0, loan_rate_bp__lte=BASIS_POINTS_WHOLE),
                name="coupons_application_loan_rate_range",
            ),
            models.CheckConstraint(
                condition=Q(project_investment_fen__isnull=True) | Q(project_investment_fen__gt=0),
                name="coupons_application_investment_positive",
            ),
            models.CheckConstraint(
                condition=Q(contract_fee_fen__gt=0, contract_fee_fen__lte=CONTRACT_FEE_FEN_MAX),
                name="coupons_application_fee_range",
            ),
            models.CheckConstraint(condition=Q(rate_bp__lte=BASIS_POINTS_WHOLE), name="coupons_application_rate_range"),
            # eligible = floor(fee × rate / 10000): rounding always favours the fund.
            models.CheckConstraint(
                condition=Q(eligible_fen=F("contract_fee_fen") * F("rate_bp") / BASIS_POINTS_WHOLE),
                name="coupons_application_eligible_is_fee_times_rate",
            ),
            models.CheckConstraint(
                condition=Q(requested_fen__gt=0, requested_fen__lte=F("eligible_fen")),
                name="coupons_application_requested_within_eligible",
            ),
            models.CheckConstraint(
                condition=Q(recommended_fen__isnull=True)
                | Q(recommended_fen__gt=0, recommended_fen__lte=F("requested_fen")),
                name="coupons_application_recommended_within_requested",
            ),
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | ~Q(approved_by=F("reviewed_by")),
                name="coupons_application_four_eyes",
            ),
            # The registered-model input holds only with a verified filing named.
            models.CheckConstraint(
                condition=Q(priced_has_registered_model=False) | Q(model_filing__isnull=False),
                name="coupons_application_registered_model_has_filing",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["submitted", "confirmed", "reviewed", "approved", "rejected", "withdrawn"]),
                name="coupons_application_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["enterprise", "year"], name="coupons_app_enterprise_year"),
            # A contract across programs (stacking, its bills counted on every program's grant of it).
            models.Index(fields=["provider", "contract_number"], name="coupons_app_contract"),
        ]

    def __str__(self) -> str:
        return f"{self.contract_number} ({self.enterprise})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The program is the year's: filled from it when not given (the database checks the pair).
        if self.program_id is None and self.year_id is not None:
            self.program_id = ProgramYear.objects.values_list("program_id", flat=True).get(pk=self.year_id)
        super().save(*args, **kwargs)


class ApplicationEvent(models.Model):
    """One step in an application's history: who did what, when, with what note."""

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="events")
    action = models.CharField(max_length=16)
    # None: the program acted by its recorded policy, not a person (the annual reset carrying or
    # withdrawing an open application); the note says why. Every other step has its actor.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(actor__isnull=False) | (Q(action__in=["carried", "withdrawn"]) & ~Q(note="")),
                name="coupons_application_event_actor_or_policy",
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="application_event_insert_only", operation=pgtrigger.Update | pgtrigger.Delete)
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_id or 'the program'} at {self.at:%Y-%m-%d %H:%M}"


class Grant(models.Model):
    """A coupon: an approved amount for one enterprise, one provider and one contract."""

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        EXPIRED = "expired", "expired"
        REVOKED = "revoked", "revoked"

    code = models.CharField(max_length=32, unique=True, help_text="Human-readable, with a check character.")
    application = models.OneToOneField(Application, on_delete=models.PROTECT, related_name="grant")
    enterprise = models.ForeignKey(Enterprise, on_delete=models.PROTECT, related_name="grants")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="grants")
    year = models.ForeignKey(ProgramYear, on_delete=models.PROTECT, related_name="grants")
    amount_fen = models.BigIntegerField()
    rate_bp = models.PositiveIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    # The grant's own ledger account (grant:<year>:<id>): its balance is what is left to redeem.
    account = models.OneToOneField("ledger.Account", on_delete=models.PROTECT, related_name="+")
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    issued_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revocation_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.TextField(blank=True)
    revoked_fen = models.BigIntegerField(default=0, help_text="The unused balance returned to the pool on revocation.")
    lapsed_fen = models.BigIntegerField(default=0, help_text="The unused balance lapsed when the grant expired.")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gt=0), name="coupons_grant_amount_positive"),
            models.CheckConstraint(
                condition=Q(revoked_fen__gte=0, revoked_fen__lte=F("amount_fen")), name="coupons_grant_revoked_range"
            ),
            models.CheckConstraint(
                condition=Q(lapsed_fen__gte=0, lapsed_fen__lte=F("amount_fen")), name="coupons_grant_lapsed_range"
            ),
            models.CheckConstraint(condition=Q(rate_bp__lte=BASIS_POINTS_WHOLE), name="coupons_grant_rate_range"),
            models.CheckConstraint(
                condition=Q(status__in=["active", "expired", "revoked"]), name="coupons_grant_status"
            ),
            # Four eyes: the approver who revoked it is not the person who asked.
            models.CheckConstraint(
                condition=Q(revoked_by__isnull=True) | ~Q(revoked_by=F("revocation_requested_by")),
                name="coupons_grant_revocation_four_eyes",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class Settlement(models.Model):
    """Finance's batch, paid by one bank transfer from one program's fund: one provider's captured
    redemptions (provider deduction), or one enterprise's approved claims (enterprise
    reimbursement), on that program's grants."""

    class Status(models.TextChoices):
        OPEN = "open", "awaiting payment"
        PAID = "paid", "paid"

    program = models.ForeignKey(
        Program, on_delete=models.PROTECT, related_name="settlements", help_text="The fund that pays it."
    )
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, null=True, blank=True, related_name="settlements")
    enterprise = models.ForeignKey(
        Enterprise, on_delete=models.PROTECT, null=True, blank=True, related_name="settlements"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    total_fen = models.BigIntegerField(help_text="Captured coupons less clawbacks netted.")
    redemptions_count = models.PositiveIntegerField()
    bank_reference = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    payment_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(total_fen__gte=0), name="coupons_settlement_total_not_negative"),
            # Exactly one payee.
            models.CheckConstraint(
                condition=Q(provider__isnull=False, enterprise__isnull=True)
                | Q(provider__isnull=True, enterprise__isnull=False),
                name="coupons_settlement_one_payee",
            ),
            models.CheckConstraint(
                condition=Q(status="open", paid_at__isnull=True)
                | (Q(status="paid", paid_at__isnull=False) & ~Q(bank_reference="")),
                name="coupons_settlement_paid_has_reference",
            ),
            # Four eyes: the finance user who confirms the payment neither created the settlement
            # nor asked for its payment.
            models.CheckConstraint(
                condition=Q(paid_by__isnull=True)
                | (~Q(paid_by=F("created_by")) & ~Q(paid_by=F("payment_requested_by"))),
                name="coupons_settlement_payment_four_eyes",
            ),
        ]

    def __str__(self) -> str:
        payee = f"provider {self.provider_id}" if self.provider_id else f"enterprise {self.enterprise_id}"
        return f"Settlement {self.pk} ({payee}, {self.status})"


class Redemption(models.Model):
    """A provider's use of a grant against one bill: a hold, then captured or released."""

    class Status(models.TextChoices):
        PENDING = "pending", "held"
        CAPTURED = "captured", "captured"
        VOIDED = "voided", "voided"
        EXPIRED = "expired", "expired"
        REVERSED = "reversed", "reversed"

    class Acknowledgement(models.TextChoices):
        AWAITING = "awaiting", "awaiting the enterprise"
        CONFIRMED = "confirmed", "confirmed by the enterprise"
        DISPUTED = "disputed", "disputed by the enterprise"
        DEEMED_CONFIRMED = "deemed_confirmed", "confirmed by silence (window passed)"
        UPHELD = "upheld", "dispute upheld: reversed"
        DISMISSED = "dismissed", "dispute dismissed"

    grant = models.ForeignKey(Grant, on_delete=models.PROTECT, related_name="redemptions")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="redemptions")
    bill_number = models.CharField(max_length=BILL_NUMBER_LENGTH_MAX)
    bill_amount_fen = models.BigIntegerField()
    # The invoice behind the bill (normalised number, its document, the amount it was issued for).
    # Blank or null only on redemptions made before invoices were required.
    invoice_number = models.CharField(max_length=INVOICE_NUMBER_LENGTH_MAX, blank=True)
    invoice_document = models.ForeignKey(
        "evidence.Document", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    invoice_amount_fen = models.BigIntegerField(null=True, blank=True)
    requested_fen = models.BigIntegerField(null=True, blank=True)
    rate_bp = models.PositiveIntegerField()
    coupon_fen = models.BigIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices)
    # The enterprise's word on the bill (docs/evidence.md): only confirmed, deemed_confirmed or
    # dismissed redemptions are settled. The window opens at capture.
    acknowledgement = models.CharField(max_length=16, choices=Acknowledgement.choices, default=Acknowledgement.AWAITING)
    acknowledge_by = models.DateTimeField(null=True, blank=True, help_text="When silence becomes confirmation.")
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    dispute_reason = models.TextField(blank=True)
    dispute_resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    dispute_resolved_at = models.DateTimeField(null=True, blank=True)
    dispute_note = models.TextField(blank=True)
    hold_transfer = models.OneToOneField(
        "ledger.Transfer", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="When an uncaptured hold lapses.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    captured_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True, help_text="When a hold was voided or expired.")
    reversal_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reversed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reversed_at = models.DateTimeField(null=True, blank=True)
    reversal_reason = models.TextField(blank=True)
    # Where a reversed coupon went: back to the grant, or to the year's lapsed account when the
    # grant can no longer be used (expired, revoked, or its year closed).
    reversed_to = models.CharField(max_length=8, blank=True, choices=[("grant", "grant"), ("lapsed", "lapsed")])
    settlement = models.ForeignKey(
        Settlement, on_delete=models.PROTECT, null=True, blank=True, related_name="redemptions"
    )
    # A redemption reversed after it was paid is owed back by the provider: netted here.
    clawback_settlement = models.ForeignKey(
        Settlement, on_delete=models.PROTECT, null=True, blank=True, related_name="clawbacks"
    )

    class Meta:
        constraints = [
            # A bill is redeemed once per contract (a grant is one contract); a released hold frees it.
            models.UniqueConstraint(
                fields=["grant", "bill_number"],
                condition=~Q(status__in=["voided", "expired"]),
                name="coupons_redemption_bill_once",
            ),
            models.CheckConstraint(
                condition=Q(bill_amount_fen__gt=0, bill_amount_fen__lte=CONTRACT_FEE_FEN_MAX),
                name="coupons_redemption_bill_range",
            ),
            models.CheckConstraint(
                condition=Q(requested_fen__isnull=True) | Q(requested_fen__gt=0), name="coupons_redemption_requested"
            ),
            # coupon ≤ floor(bill × rate): never a fen past the rate.
            models.CheckConstraint(
                condition=Q(coupon_fen__gt=0)
                & Q(coupon_fen__lte=F("bill_amount_fen") * F("rate_bp") / BASIS_POINTS_WHOLE),
                name="coupons_redemption_within_rate",
            ),
            models.CheckConstraint(
                condition=Q(requested_fen__isnull=True) | Q(coupon_fen__lte=F("requested_fen")),
                name="coupons_redemption_within_requested",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "captured", "voided", "expired", "reversed"]),
                name="coupons_redemption_status",
            ),
            models.CheckConstraint(
                condition=Q(settlement__isnull=True) | Q(status__in=["captured", "reversed"]),
                name="coupons_redemption_settled_only_if_captured",
            ),
            models.CheckConstraint(
                condition=Q(clawback_settlement__isnull=True) | Q(status="reversed", settlement__isnull=False),
                name="coupons_redemption_clawback_only_if_paid_and_reversed",
            ),
            # Four eyes: the approver who reversed it is not the person who asked.
            models.CheckConstraint(
                condition=Q(reversed_by__isnull=True) | ~Q(reversed_by=F("reversal_requested_by")),
                name="coupons_redemption_reversal_four_eyes",
            ),
            models.CheckConstraint(
                condition=Q(
                    acknowledgement__in=["awaiting", "confirmed", "disputed", "deemed_confirmed", "upheld", "dismissed"]
                ),
                name="coupons_redemption_acknowledgement_valid",
            ),
            # Only a bill the enterprise stands behind (or left unanswered past its window) is paid.
            models.CheckConstraint(
                condition=Q(settlement__isnull=True)
                | Q(acknowledgement__in=["confirmed", "deemed_confirmed", "dismissed"]),
                name="coupons_redemption_settled_only_if_acknowledged",
            ),
            # The enterprise disputed and someone else resolved: two people.
            models.CheckConstraint(
                condition=Q(dispute_resolved_by__isnull=True) | ~Q(dispute_resolved_by=F("acknowledged_by")),
                name="coupons_redemption_dispute_four_eyes",
            ),
        ]
        indexes = [
            models.Index(
                fields=["acknowledge_by"],
                condition=Q(acknowledgement="awaiting", status="captured"),
                name="coupons_redemption_ack_due",
            ),
            models.Index(fields=["provider", "status"], name="coupons_redemption_provider"),
            models.Index(fields=["expires_at"], condition=Q(status="pending"), name="coupons_redemption_hold_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.bill_number} on {self.grant_id}"

    @property
    def payable_fen(self) -> int:
        """What the enterprise still pays the provider for the bill."""
        return self.bill_amount_fen - self.coupon_fen


class Claim(models.Model):
    """An enterprise's claim against its grant for a bill it paid in full (enterprise reimbursement,
    事后兑现): the coupon is held on the grant at submission, posted to the enterprise's account when
    a reviewer approves, released when one rejects, and paid to the enterprise by a settlement."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", "submitted"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        PAID = "paid", "paid"

    grant = models.ForeignKey(Grant, on_delete=models.PROTECT, related_name="claims")
    enterprise = models.ForeignKey(Enterprise, on_delete=models.PROTECT, related_name="claims")
    invoice_number = models.CharField(max_length=INVOICE_NUMBER_LENGTH_MAX)
    invoice_document = models.ForeignKey("evidence.Document", on_delete=models.PROTECT, related_name="+")
    payment_proof_document = models.ForeignKey("evidence.Document", on_delete=models.PROTECT, related_name="+")
    bill_amount_fen = models.BigIntegerField()
    requested_fen = models.BigIntegerField(null=True, blank=True)
    rate_bp = models.PositiveIntegerField()
    coupon_fen = models.BigIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SUBMITTED)
    hold_transfer = models.OneToOneField(
        "ledger.Transfer", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    settlement = models.ForeignKey(Settlement, on_delete=models.PROTECT, null=True, blank=True, related_name="claims")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(bill_amount_fen__gt=0, bill_amount_fen__lte=CONTRACT_FEE_FEN_MAX),
                name="coupons_claim_bill_range",
            ),
            models.CheckConstraint(
                condition=Q(coupon_fen__gt=0)
                & Q(coupon_fen__lte=F("bill_amount_fen") * F("rate_bp") / BASIS_POINTS_WHOLE),
                name="coupons_claim_within_rate",
            ),
            models.CheckConstraint(
                condition=Q(requested_fen__isnull=True) | Q(coupon_fen__lte=F("requested_fen")),
                name="coupons_claim_within_requested",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["submitted", "approved", "rejected", "paid"]), name="coupons_claim_status"
            ),
            # The reviewer is not the enterprise's own member who claimed.
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("created_by")), name="coupons_claim_four_eyes"
            ),
            models.CheckConstraint(
                condition=Q(settlement__isnull=True) | Q(status__in=["approved", "paid"]),
                name="coupons_claim_settled_only_if_approved",
            ),
            models.CheckConstraint(
                condition=~Q(invoice_document=F("payment_proof_document")), name="coupons_claim_two_documents"
            ),
        ]
        indexes = [models.Index(fields=["enterprise", "status"], name="coupons_claim_enterprise")]

    def __str__(self) -> str:
        return f"Claim {self.pk} on {self.grant_id} ({self.status})"


# The claims whose bills count against their contract (coupons/services/claims.py).
CLAIM_LIVE_STATUSES = (Claim.Status.SUBMITTED, Claim.Status.APPROVED, Claim.Status.PAID)


class Invoice(models.Model):
    """An invoice subsidised once in the whole service, all programs and years: the register every
    redemption and claim writes its invoice into. A unique index over the numbers in use makes a
    second use a `409 duplicate_invoice` however the two requests race; a released use (a hold voided
    or expired, a claim rejected) frees the number."""

    number = models.CharField(max_length=INVOICE_NUMBER_LENGTH_MAX, help_text="Normalised (see coupons/invoices.py).")
    document = models.ForeignKey("evidence.Document", on_delete=models.PROTECT, related_name="+")
    amount_fen = models.BigIntegerField(help_text="What the invoice was issued for; it covers the bill.")
    enterprise = models.ForeignKey(Enterprise, on_delete=models.PROTECT, related_name="invoices")
    redemption = models.ForeignKey(
        Redemption, on_delete=models.PROTECT, null=True, blank=True, related_name="invoice_uses"
    )
    claim = models.ForeignKey(Claim, on_delete=models.PROTECT, null=True, blank=True, related_name="invoice_uses")
    used_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # By its digits: however the number was written, one invoice is one live use.
            models.UniqueConstraint(
                Replace("number", Value("-"), Value("")),
                condition=Q(released_at__isnull=True),
                name="coupons_invoice_used_once",
            ),
            models.CheckConstraint(
                condition=Q(redemption__isnull=False, claim__isnull=True)
                | Q(redemption__isnull=True, claim__isnull=False),
                name="coupons_invoice_one_use",
            ),
            models.CheckConstraint(
                condition=Q(amount_fen__gt=0, amount_fen__lte=CONTRACT_FEE_FEN_MAX), name="coupons_invoice_amount"
            ),
        ]

    def __str__(self) -> str:
        return self.number


class AuditRun(models.Model):
    """One run of the audit: each check by name, whether it held, and the offending rows."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        PASSED = "passed", "passed"
        FAILED = "failed", "failed"

    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    checks = models.JSONField(default=list, help_text='[{"name", "ok", "details"}, ...]')
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["running", "passed", "failed"]), name="coupons_audit_status"
            ),
        ]

    def __str__(self) -> str:
        return f"Audit {self.pk} ({self.status})"


class Alert(models.Model):
    """Something the fund's staff must know, recorded once (its `key` is unique) and mailed once."""

    class Kind(models.TextChoices):
        POOL_80 = "pool_80", "pool 80% used"
        POOL_95 = "pool_95", "pool 95% used"
        CAP_90 = "cap_90", "an enterprise at 90% of its cap"
        AUDIT_FAILED = "audit_failed", "an audit check failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    key = models.CharField(max_length=100, unique=True, help_text="What makes it the same alert: pool:2026:80, ...")
    message = models.TextField()
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    mailed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.message


class OutboxMessage(models.Model):
    """A task to send, written in the same transaction as the change that needs it.

    Redis here keeps nothing on disk: a message the broker lost is still in this table, and the
    dispatcher (right after commit, and every minute by beat) sends whatever was not sent. Tasks
    are idempotent, so sending one twice is harmless; not sending it is what this prevents.
    """

    task = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["created_at"], condition=Q(dispatched_at__isnull=True), name="coupons_outbox_pending")
        ]

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)}"
