"""Programs and their years: every signed-in user lists the programs; staff read a year's policy and
live pool figures; a superuser prepares, opens and closes a year; a reviewer or approver asks for one
enterprise's relaxed cap for a year, and a different approver decides (`approvals`).

Every year path exists twice: under `/programs/{slug}/years/{year}/` for any program, and under
`/program-years/{year}/` for the default program, `hangzhou-compute` (the paths of the single-fund
service, kept working). docs/programs.md explains programs.
"""

from typing import Any

from django.core.validators import RegexValidator
from django.urls import path
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.caller import caller
from accounts.models import Enterprise, User
from accounts.roles import require_superuser
from api.idempotency import idempotency_key_parameter, idempotent
from api.serializers import (
    EmptyRequest,
    FenField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    validated,
)
from approvals.api import ApprovalRequestSerializer
from config.errors import ReferenceNotFound
from config.limits import REASON_LENGTH_MAX
from config.replica import ListFromReplica
from coupons.models import (
    ACKNOWLEDGEMENT_WINDOW_DAYS_MAX,
    BASIS_POINTS_WHOLE,
    CONTRACT_TERM_MONTHS_CEILING,
    DEFAULT_PROGRAM,
    GRANT_VALIDITY_MONTHS_MAX,
    PROGRAM_SLUG_LENGTH_MAX,
    REGION_DIVISION_PREFIXES_COUNT_MAX,
    ComputeSource,
    Program,
    ProgramYear,
    Purpose,
)
from coupons.policy import LABEL_LENGTH_MAX, REVISION_2025_06, RULES_COUNT_MAX
from coupons.rule_sets import rule_set_versions
from coupons.selectors import program_year_figures
from coupons.selectors.scopes import program_within_reach, programs_visible_to
from coupons.services.years import (
    GRACE_DAYS_MAX,
    PROGRAM_AUTHORITY_LENGTH_MAX,
    PROGRAM_NAME_EN_LENGTH_MAX,
    PROGRAM_NAME_LENGTH_MAX,
    cap_override_request,
    program_close_request,
    program_create,
    program_get,
    program_year_create_with_rates,
    program_year_get,
    program_year_open,
    rule_set_version_request,
)

TAGS = ["program-years"]
RULE_SET_NAME_LENGTH_MAX = 100
RULE_SET_VERSIONS_MAX = 24  # Two a month: far more revisions than a year of policy has.


class IsStaffMember(BasePermission):
    """Platform staff: a superuser or a holder of any role. Members of organisations are refused."""

    message = "This needs a member of the platform staff."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return isinstance(user, User) and user.is_staff_member


# No credentials: 401 (IsAuthenticated first); signed in but not staff: 403 permission_denied.
STAFF_ONLY = [IsAuthenticated, IsStaffMember]


# --- Shapes -------------------------------------------------------------------------------------


class PoolFiguresSerializer(serializers.Serializer):
    """A program year's money in fen, read from ledger account totals."""

    issued_fen = serializers.IntegerField(help_text="Granted in the year (revoked grants included).")
    held_fen = serializers.IntegerField(help_text="Held by pending redemptions.")
    redeemed_fen = serializers.IntegerField(help_text="Captured by providers.")
    settled_fen = serializers.IntegerField(help_text="Paid out to providers: part of redeemed.")
    lapsed_fen = serializers.IntegerField(help_text="Expired unused, or reversed once the grant could not take it.")
    revoked_fen = serializers.IntegerField(help_text="Given back to the pool by revocations.")
    available_fen = serializers.IntegerField(help_text="Left in the pool to grant.")


def _enum_list_schema(enum_component: str) -> dict[str, Any]:
    """A list of words of an enum the schema already names (`purpose` → PurposeEnum): a list field of its
    own would give the same choices a second name."""
    return {"type": "array", "minItems": 1, "items": {"$ref": f"#/components/schemas/{enum_component}"}}


@extend_schema_field(_enum_list_schema("PurposeEnum"))
class PurposeListField(serializers.ListField):
    child = serializers.ChoiceField(choices=Purpose.choices)


@extend_schema_field(_enum_list_schema("ComputeSourceEnum"))
class ComputeSourceListField(serializers.ListField):
    child = serializers.ChoiceField(choices=ComputeSource.choices)


class RateWhenSerializer(StrictSerializer):
    """A rule's condition; every key is optional and an empty object matches every application."""

    purposes = PurposeListField(min_length=1, max_length=len(Purpose), required=False)
    compute_sources = ComputeSourceListField(min_length=1, max_length=len(ComputeSource), required=False)
    has_registered_model = StrictBooleanField(required=False)
    foundation_model_developer = StrictBooleanField(required=False)
    small_or_medium = StrictBooleanField(required=False)
    contracted_total_fen_max = FenField(
        required=False, help_text="The enterprise's contract fees in the year, this one included, total at most this."
    )
    project_investment_fen_min = FenField(
        required=False, help_text="A loan_interest program: the project's total investment is at least this."
    )


class RateRuleSerializer(StrictSerializer):
    """One rule: when its condition matches an application, the application gets `rate_bp`."""

    # DRF takes declared fields off the class, so `label` clashes with Field.label only in the stubs.
    label = StrictCharField(max_length=LABEL_LENGTH_MAX)  # type: ignore[assignment]
    rate_bp = StrictIntegerField(min_value=0, max_value=BASIS_POINTS_WHOLE, help_text="3000 = 30%.")
    when = RateWhenSerializer()
    loan_rate_points_max_bp = StrictIntegerField(
        min_value=1,
        max_value=BASIS_POINTS_WHOLE,
        required=False,
        help_text="A loan_interest program: the subsidy is at most this many basis points of the loan's rate "
        "(150 = 1.5 percentage points), so the rate is min(rate_bp, floor(this × 10000 / loan_rate_bp)).",
    )


class RatesSerializer(StrictSerializer):
    """A version of the rate policy: the first rule that matches gives the rate, clamped to the ceiling."""

    name = StrictCharField(max_length=RULE_SET_NAME_LENGTH_MAX, help_text="Unique; a name is never reused.")
    ceiling_bp = StrictIntegerField(min_value=1, max_value=BASIS_POINTS_WHOLE)
    rules = serializers.ListField(child=RateRuleSerializer(), min_length=1, max_length=RULES_COUNT_MAX)


class RuleSetVersionSerializer(serializers.Serializer):
    """A version of the year's rate policy, in force from `effective_from` to the day before the next one's."""

    effective_from = serializers.DateField(help_text="The first day (Asia/Shanghai) it prices applications.")
    name = serializers.CharField(source="rule_set.name")
    ceiling_bp = serializers.IntegerField(source="rule_set.ceiling_bp")
    rules = RateRuleSerializer(source="rule_set.rules", many=True)


class ProgramYearSerializer(serializers.ModelSerializer):
    program = serializers.CharField(source="program_id", read_only=True, help_text="The program's slug.")
    rates = RatesSerializer(
        source="rule_set", read_only=True, help_text="The first rule-set version: the rates from 1 January."
    )
    rule_sets = serializers.SerializerMethodField(
        help_text="Every rule-set version of the year in date order, the first from 1 January (docs/programs.md)."
    )
    region_division_prefixes = serializers.ListField(child=serializers.CharField(), read_only=True)
    figures = serializers.SerializerMethodField()

    class Meta:
        model = ProgramYear
        fields = [
            "program",
            "year",
            "status",
            "pool_fen",
            "default_cap_fen",
            "relaxed_cap_ceiling_fen",
            "grace_days",
            "region_division_prefixes",
            "open_applications_at_close",
            "grant_validity",
            "grant_validity_months",
            "redemption_mode",
            "acknowledgement_window_days",
            "contract_signed_within_year",
            "contract_term_months_max",
            "filing_certificate_required",
            "priced_by",
            "rates",
            "rule_sets",
            "figures",
        ]
        read_only_fields = fields

    @extend_schema_field(RuleSetVersionSerializer(many=True))
    def get_rule_sets(self, program_year: ProgramYear) -> list[dict[str, Any]]:
        return RuleSetVersionSerializer(rule_set_versions(program_year), many=True).data  # type: ignore[return-value]

    @extend_schema_field(PoolFiguresSerializer)
    def get_figures(self, program_year: ProgramYear) -> dict[str, int]:
        figures = program_year_figures(year=program_year.year, program=program_year.program_id).as_dict()
        del figures["pool_fen"]  # The year's own pool_fen is beside them.
        return figures


class RuleSetVersionRequest(StrictSerializer):
    """A version of a year's rate policy and the day it takes effect."""

    effective_from = serializers.DateField(
        help_text="YYYY-MM-DD, an Asia/Shanghai day within the year; in an open year, after today."
    )
    rates = RatesSerializer()
    reason = StrictCharField(max_length=REASON_LENGTH_MAX, help_text="Why: the decision or notice it carries out.")


class ProgramYearRequest(StrictSerializer):
    """A draft year: its pool, its default cap per enterprise, its grace days and its rate policy."""

    year = StrictIntegerField(min_value=2000, max_value=2999)
    pool_fen = FenField(required=False, help_text="Defaults to 250 million yuan (25,000,000,000 fen).")
    default_cap_fen = FenField(required=False, help_text="Defaults to 8 million yuan (800,000,000 fen).")
    region_division_prefixes = serializers.ListField(
        child=StrictCharField(
            min_length=2, max_length=6, trim_whitespace=False, validators=[RegexValidator(r"^[0-9]{2,6}$")]
        ),
        min_length=1,
        max_length=REGION_DIVISION_PREFIXES_COUNT_MAX,
        required=False,
        help_text=(
            "The program's region: prefixes of the administrative-division code in characters 3-8 of an "
            'enterprise\'s credit code. Defaults to Hangzhou, ["3301"]. Fixed once the year opens.'
        ),
    )
    relaxed_cap_ceiling_fen = FenField(
        required=False,
        help_text=(
            "The highest cap an override may give one enterprise in the year: defaults to 20 million yuan "
            "(2,000,000,000 fen), or the default cap if higher. Fixed once the year opens."
        ),
    )
    grace_days = StrictIntegerField(
        min_value=0,
        max_value=GRACE_DAYS_MAX,
        required=False,
        help_text="Days after year end (or an early close) that grants valid to year end still redeem. Defaults to 0.",
    )
    open_applications_at_close = serializers.ChoiceField(
        choices=ProgramYear.OpenApplicationsAtClose.choices,
        required=False,
        help_text=(
            "What the annual reset does with applications still submitted, confirmed or reviewed: `carry` them into "
            "the next year's queue (re-priced by its rates) or `withdraw` them with a recorded reason. "
            "Defaults to `carry`."
        ),
    )
    grant_validity = serializers.ChoiceField(
        choices=ProgramYear.GrantValidity.choices,
        required=False,
        help_text=(
            "`year_end`: grants expire at year end plus `grace_days` (the default). `months`: grants expire "
            "`grant_validity_months` calendar months after issue (Asia/Shanghai, clamped to the month's end), "
            "even after the year closes; `grace_days` must then be 0."
        ),
    )
    grant_validity_months = StrictIntegerField(
        min_value=1,
        max_value=GRANT_VALIDITY_MONTHS_MAX,
        required=False,
        help_text="With `grant_validity` `months` only (and then required).",
    )
    redemption_mode = serializers.ChoiceField(
        choices=ProgramYear.RedemptionMode.choices,
        required=False,
        help_text=(
            "`provider_deduction` (the default): the computing center deducts the coupon from its bill, redeems it "
            "over the API and the fund pays the center. `enterprise_reimbursement` (事后兑现): the enterprise pays "
            "its bill in full, claims with invoice and payment proof (`POST /claims/`), and the fund pays the "
            "enterprise. Fixed once the year opens."
        ),
    )
    acknowledgement_window_days = StrictIntegerField(
        min_value=1,
        max_value=ACKNOWLEDGEMENT_WINDOW_DAYS_MAX,
        required=False,
        help_text=(
            "Days the enterprise has to acknowledge or dispute a captured bill; after them the bill is "
            "`deemed_confirmed`. Defaults to 7."
        ),
    )
    contract_signed_within_year = StrictBooleanField(
        required=False, help_text="A contract counts only when signed within the program year. Defaults to true."
    )
    contract_term_months_max = StrictIntegerField(
        min_value=1,
        max_value=CONTRACT_TERM_MONTHS_CEILING,
        required=False,
        help_text="The longest contract term that counts, in months. Defaults to 12.",
    )
    filing_certificate_required = StrictBooleanField(
        required=False,
        help_text=(
            "The registered-model rate needs the model filing certificate uploaded with the application. "
            "Defaults to false."
        ),
    )
    priced_by = serializers.ChoiceField(
        choices=ProgramYear.PricedBy.choices,
        required=False,
        help_text=(
            "Which day's rule-set version prices an application: `submission` (the day it is submitted, the "
            "default) or `contract` (the day its contract was signed). Fixed once the year opens."
        ),
    )
    rates = RatesSerializer(
        required=False, help_text="One policy for the whole year. Defaults to the 2024 municipal measures."
    )
    rule_sets = serializers.ListField(
        child=RuleSetVersionRequest(),
        min_length=1,
        max_length=RULE_SET_VERSIONS_MAX,
        required=False,
        help_text=(
            "Instead of `rates`: the year's rule-set versions in date order, the first from 1 January of the year, "
            "no two on one day, all within the year."
        ),
    )


class CapOverrideRequest(StrictSerializer):
    """A relaxed cap for one enterprise, with the written reason. Who asks is whoever signs the request."""

    enterprise = StrictIntegerField(
        min_value=1, help_text="A verified enterprise that staff flagged as a foundation-model developer."
    )
    cap_fen = FenField(
        help_text="The enterprise's cap for the year once approved: above its current cap, at most the year's "
        "relaxed_cap_ceiling_fen."
    )
    reason = StrictCharField(max_length=REASON_LENGTH_MAX)


def _plain(value: Any) -> Any:  # Any: validated JSON of any shape (nested dicts and lists of it).
    """Validated data as plain dicts and lists, the way a JSONField stores it."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


# --- Views --------------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        summary="List program years (staff)",
        description=(
            "Each year with its policy and live pool figures, read from the ledger. A program the caller's "
            "roles do not reach (staff limited to programs) is 404, as an unknown one."
        ),
        tags=TAGS,
    )
)
class ProgramYearListCreate(ListFromReplica, generics.ListAPIView):
    permission_classes = STAFF_ONLY
    serializer_class = ProgramYearSerializer
    filterset_fields = ["status"]
    ordering_fields = ["year"]
    ordering = ["year"]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return ProgramYear.objects.none()
        slug = self.kwargs.get("program", DEFAULT_PROGRAM)
        program_within_reach(caller(self.request), slug)
        program = program_get(slug)
        return ProgramYear.objects.select_related("rule_set").filter(program=program).order_by("year")

    @extend_schema(
        request=ProgramYearRequest,
        responses={201: ProgramYearSerializer},
        summary="Prepare a program year (superuser)",
        description=(
            "Creates a draft year of the program (the default program on `/program-years/`); open it with "
            "`POST .../{year}/open/`. A year that exists is 409 `invalid_state`; a closed program is 409 "
            "`program_closed`. `rates` names a new rule set (or an existing one with exactly these rules); "
            "`rule_sets` instead lists the year's rule-set versions, the first from 1 January (400 "
            "`validation_error` for a gap, two on one day or a day outside the year). `priced_by` says which day's "
            "version prices an application: its submission (the default) or its contract's signing."
        ),
        tags=TAGS,
        examples=[
            OpenApiExample("The 2024 measures", value={"year": 2027}, request_only=True),
            OpenApiExample(
                "With the June 2025 revision",
                value={
                    "year": 2027,
                    "pool_fen": 25_000_000_000,
                    "rates": {
                        "name": "revision-2025-06",
                        "ceiling_bp": 5000,
                        "rules": [
                            {
                                "label": "Small or medium enterprise, contracts at most 500,000 yuan in the year",
                                "rate_bp": 5000,
                                "when": {"small_or_medium": True, "contracted_total_fen_max": 50_000_000},
                            },
                            {"label": "Domestic compute", "rate_bp": 3000, "when": {"compute_sources": ["domestic"]}},
                            {"label": "Other compute", "rate_bp": 2000, "when": {}},
                        ],
                    },
                },
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request, program: str = DEFAULT_PROGRAM) -> Response:
        user = caller(request)
        require_superuser(user)
        program_get(program)
        data = validated(ProgramYearRequest, request.data)
        program_year = program_year_create_with_rates(actor=user, program=program, **_plain(data))
        return Response(ProgramYearSerializer(program_year).data, status=status.HTTP_201_CREATED)


class ProgramYearDetail(APIView):
    permission_classes = STAFF_ONLY

    @extend_schema(
        responses={200: ProgramYearSerializer},
        summary="Read a program year (staff)",
        description=(
            "The year with its policy and live pool figures, read from the ledger. A program the caller's roles "
            "do not reach (staff limited to programs) is 404, as an unknown one."
        ),
        tags=TAGS,
    )
    def get(self, request: Request, year: int, program: str = DEFAULT_PROGRAM) -> Response:
        program_within_reach(caller(request), program)
        return Response(ProgramYearSerializer(program_year_get(year, program)).data)


class ProgramYearOpen(APIView):
    permission_classes = STAFF_ONLY

    @extend_schema(
        request=None,
        responses={200: ProgramYearSerializer},
        summary="Open a draft program year (superuser)",
        description=(
            "Opens a draft year, "
            "crediting its pool from the appropriation in the ledger. Opening an open year changes nothing; a "
            "closed year is 409 `invalid_state`; a draft year of a closed program is 409 `program_closed`."
        ),
        tags=TAGS,
    )
    def post(self, request: Request, year: int, program: str = DEFAULT_PROGRAM) -> Response:
        user = caller(request)
        require_superuser(user)
        validated(EmptyRequest, request.data)
        program_year_open(year=year, actor=user, program=program)
        return Response(ProgramYearSerializer(program_year_get(year, program)).data)


class ProgramYearClose(APIView):
    permission_classes = STAFF_ONLY

    @extend_schema(
        request=None,
        responses={200: ProgramYearSerializer},
        summary="Close a program year now and run its annual reset (superuser)",
        description=(
            "Closes the year to new applications at once, releases its holds and lapses its grants' unused "
            "balances into lapsed:Y when the grace period, counted from now, is over (at once with 0 grace days; "
            "grants valid for months keep their expiry and holds, and lapse when they expire), carries its "
            "applications still submitted, confirmed or reviewed into the next year or withdraws them (by "
            "`open_applications_at_close`), then opens the next year. The reset runs in the background (Celery) "
            "and is idempotent: the answer is the closed year; its figures show the lapse once the reset has run. "
            "Closing a closed year changes nothing; a draft year is 409 `invalid_state`."
        ),
        tags=TAGS,
    )
    def post(self, request: Request, year: int, program: str = DEFAULT_PROGRAM) -> Response:
        from coupons.services.reset import program_year_close_now

        user = caller(request)
        require_superuser(user)
        validated(EmptyRequest, request.data)
        program_year_get(year, program)
        program_year_close_now(year=year, actor=user, program=program)
        return Response(ProgramYearSerializer(program_year_get(year, program)).data)


class CapOverrideCreate(APIView):
    permission_classes = STAFF_ONLY

    @extend_schema(
        request=CapOverrideRequest,
        responses={202: ApprovalRequestSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Ask for a relaxed cap for an enterprise (reviewer or approver)",
        description=(
            "Answers 202 with an approval request (action `cap_override`): the cap changes only when a different "
            "approver approves it at `POST /approval-requests/{id}/approve/`. The requester is the signed-in "
            "caller, never a field. Only a verified enterprise that staff flagged as a foundation-model developer "
            "(else 403 `not_eligible`), above its current cap and at most the year's `relaxed_cap_ceiling_fen` "
            "(else 400); the year must be open. Checked again on approval. A program the caller's roles do not reach "
            "is 404."
        ),
        tags=TAGS,
        examples=[
            OpenApiExample(
                "Relax to 20 million yuan",
                value={
                    "enterprise": 12,
                    "cap_fen": 2_000_000_000,
                    "reason": "Trains a registered multimodal foundation model; board decision 2026-14.",
                },
                request_only=True,
            )
        ],
    )
    @idempotent(required=False)
    def post(self, request: Request, year: int, program: str = DEFAULT_PROGRAM) -> Response:
        user = caller(request)
        program_within_reach(user, program)
        program_year_get(year, program)
        data = validated(CapOverrideRequest, request.data)
        enterprise = Enterprise.objects.filter(pk=data["enterprise"]).first()
        if enterprise is None:
            raise ReferenceNotFound("No such enterprise.", field="enterprise")
        approval = cap_override_request(
            year=year,
            enterprise=enterprise,
            cap_fen=data["cap_fen"],
            reason=data["reason"],
            requester=user,
            program=program,
        )
        return Response(ApprovalRequestSerializer(approval).data, status=status.HTTP_202_ACCEPTED)


class RuleSetVersionCreate(APIView):
    permission_classes = STAFF_ONLY

    @extend_schema(
        request=RuleSetVersionRequest,
        responses={202: ApprovalRequestSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Ask for a rule-set version of a program year (superuser)",
        description=(
            "The year's rates change from `effective_from` on: applications priced on that day or later (by "
            "submission or contract day, the year's `priced_by`) get the new version; those priced before keep "
            "theirs. Answers 202 with an approval request (action `rule_set_version_add`): the version is added "
            "only when another superuser approves it at `POST /approval-requests/{id}/approve/`, and is checked "
            "again then. Refused at once with 400 `validation_error`, nothing written: a day outside the year, a "
            "day that has a version already (versions may not overlap), and in an open year a day that is not "
            "after today (no retroactive repricing); a closed year is 409 `program_year_closed`; a request for "
            "the year already waiting 409 `invalid_state`; a staff member who is not a superuser 403 "
            "`permission_denied`; an unknown program or year 404 `not_found`. `rates` names a new rule set (or an "
            "existing one with exactly these rules)."
        ),
        tags=TAGS,
        examples=[
            OpenApiExample(
                "The June 2025 revision",
                value={
                    "effective_from": "2025-06-13",
                    "rates": {
                        "name": REVISION_2025_06["name"],
                        "ceiling_bp": REVISION_2025_06["ceiling_bp"],
                        "rules": REVISION_2025_06["rules"],
                    },
                    "reason": "Hangzhou's revised measures of 13 June 2025.",
                },
                request_only=True,
            )
        ],
    )
    @idempotent(required=False)
    def post(self, request: Request, year: int, program: str = DEFAULT_PROGRAM) -> Response:
        user = caller(request)
        require_superuser(user)
        program_year_get(year, program)
        data = validated(RuleSetVersionRequest, request.data)
        approval = rule_set_version_request(
            year=year,
            program=program,
            effective_from=data["effective_from"],
            rates=_plain(data["rates"]),
            reason=data["reason"],
            requester=user,
        )
        return Response(ApprovalRequestSerializer(approval).data, status=status.HTTP_202_ACCEPTED)


class ProgramSerializer(serializers.ModelSerializer):
    region = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Division-code prefixes of the credit codes it serves."
    )
    years = serializers.SerializerMethodField()

    class Meta:
        model = Program
        fields = [
            "slug",
            "name",
            "name_en",
            "authority",
            "level",
            "region",
            "redemption_mode",
            "basis",
            "once_per_enterprise",
            "status",
            "closed_at",
            "years",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_years(self, program: Program) -> list[int]:
        return sorted(year.year for year in program.years.all())


class ProgramRequest(StrictSerializer):
    """A new fund. Its slug names it in paths and ledger codes and never changes."""

    slug = StrictCharField(
        max_length=PROGRAM_SLUG_LENGTH_MAX,
        trim_whitespace=False,
        validators=[RegexValidator(r"^[a-z0-9]+(-[a-z0-9]+)*\Z")],
        help_text="Lower-case letters and digits in words joined by '-' (binjiang-compute).",
    )
    name = StrictCharField(max_length=PROGRAM_NAME_LENGTH_MAX, help_text="In Chinese: 滨江区算力券.")
    name_en = StrictCharField(max_length=PROGRAM_NAME_EN_LENGTH_MAX)
    authority = StrictCharField(max_length=PROGRAM_AUTHORITY_LENGTH_MAX, help_text="The issuing authority.")
    level = serializers.ChoiceField(choices=Program.Level.choices)
    region = serializers.ListField(
        child=StrictCharField(
            min_length=2, max_length=6, trim_whitespace=False, validators=[RegexValidator(r"^[0-9]{2,6}\Z")]
        ),
        min_length=1,
        max_length=REGION_DIVISION_PREFIXES_COUNT_MAX,
        help_text="Division-code prefixes (characters 3-8 of a credit code) of the enterprises it serves: "
        '["330108"] for Binjiang. Each new year copies it.',
    )
    redemption_mode = serializers.ChoiceField(
        choices=ProgramYear.RedemptionMode.choices,
        required=False,
        help_text="How its coupons are paid unless a year says otherwise. Defaults to `provider_deduction`.",
    )


@extend_schema_view(
    get=extend_schema(
        summary="List programs",
        description=(
            "Every fund the service runs (city, district, province), with the years it has; staff limited to "
            "programs see theirs only. The paths without a "
            f"program (`/program-years/`, `/applications/` without `program`) act on `{DEFAULT_PROGRAM}`."
        ),
        tags=TAGS,
    )
)
class ProgramList(ListFromReplica, generics.ListAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = ProgramSerializer
    filterset_fields = ["level", "status"]
    ordering_fields = ["slug"]
    ordering = ["slug"]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return Program.objects.none()
        return programs_visible_to(caller(self.request)).prefetch_related("years").order_by("slug")

    @extend_schema(
        request=ProgramRequest,
        responses={201: ProgramSerializer},
        summary="Set up a program (superuser)",
        description=(
            "A new fund beside the others, with no year yet: prepare one at `POST /programs/{slug}/years/`. "
            "A slug that is taken is 409 `already_exists`; a malformed slug, an unknown level or redemption "
            "mode, or a region that is not a list of division-code prefixes is 400 `validation_error`, and "
            "nothing is written."
        ),
        tags=TAGS,
        examples=[
            OpenApiExample(
                "A district's coupons",
                value={
                    "slug": "binjiang-compute",
                    "name": "滨江区算力券",
                    "name_en": "Binjiang District computing-power coupons",
                    "authority": "杭州市滨江区人民政府 (Binjiang District People's Government)",
                    "level": "district",
                    "region": ["330108"],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        user = caller(request)
        require_superuser(user)
        data = validated(ProgramRequest, request.data)
        program = program_create(actor=user, **_plain(data))
        return Response(ProgramSerializer(program).data, status=status.HTTP_201_CREATED)


class ProgramDetail(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: ProgramSerializer},
        summary="Read a program",
        description="An unknown program, or one the caller's roles do not reach (staff limited to programs), is 404.",
        tags=TAGS,
    )
    def get(self, request: Request, program: str) -> Response:
        program_within_reach(caller(request), program)
        return Response(ProgramSerializer(program_get(program)).data)


class ProgramCloseRequest(StrictSerializer):
    reason = StrictCharField(
        max_length=REASON_LENGTH_MAX,
        required=False,
        help_text="Why: the decision that ends the fund's intake (a default names the program).",
    )


class ProgramClose(APIView):
    permission_classes = STAFF_ONLY

    @extend_schema(
        request=ProgramCloseRequest,
        responses={202: ApprovalRequestSerializer, 200: ProgramSerializer},
        summary="Close a program (a superuser asks, another decides)",
        description=(
            "Closing ends the program's intake for good, so one superuser asks and a different superuser decides: "
            "the answer is 202 with an approval request (action `program_close`), and the program closes when "
            "another superuser approves it (`POST /approval-requests/{id}/approve/`; the asker is 403 "
            "`four_eyes`). From then on the program takes no new year (409 `program_closed` on `POST .../years/` "
            "and on opening a draft year) and no new application (409 `program_closed` on `POST /applications/` "
            "naming it). What it already holds runs out by its own rules: submitted applications may still be "
            "decided, grants redeem until they expire, and at its open year's end the annual reset withdraws the "
            "applications still open and prepares no next year. A closed program answers 200 with itself "
            "(closing again changes nothing); 409 `invalid_state` while another close request for it waits; an "
            "unknown one is 404."
        ),
        tags=TAGS,
    )
    def post(self, request: Request, program: str) -> Response:
        user = caller(request)
        require_superuser(user)
        data = validated(ProgramCloseRequest, request.data)
        found = program_get(program)
        if found.status == Program.Status.CLOSED:
            return Response(ProgramSerializer(found).data)
        asked = program_close_request(slug=program, requester=user, reason=data.get("reason", ""))
        return Response(ApprovalRequestSerializer(asked).data, status=status.HTTP_202_ACCEPTED)


urlpatterns = [
    path("programs/", ProgramList.as_view(), name="program-list"),
    path("programs/<slug:program>/", ProgramDetail.as_view(), name="program-detail"),
    path("programs/<slug:program>/close/", ProgramClose.as_view(), name="program-close"),
    path("programs/<slug:program>/years/", ProgramYearListCreate.as_view(), name="program-years-of-program"),
    path("programs/<slug:program>/years/<int:year>/", ProgramYearDetail.as_view(), name="program-year-of-program"),
    path(
        "programs/<slug:program>/years/<int:year>/open/", ProgramYearOpen.as_view(), name="program-year-of-program-open"
    ),
    path(
        "programs/<slug:program>/years/<int:year>/close/",
        ProgramYearClose.as_view(),
        name="program-year-of-program-close",
    ),
    path(
        "programs/<slug:program>/years/<int:year>/cap-overrides/",
        CapOverrideCreate.as_view(),
        name="program-year-of-program-cap-override",
    ),
    path(
        "programs/<slug:program>/years/<int:year>/rule-sets/",
        RuleSetVersionCreate.as_view(),
        name="program-year-of-program-rule-sets",
    ),
    path("program-years/", ProgramYearListCreate.as_view(), name="program-year-list"),
    path("program-years/<int:year>/", ProgramYearDetail.as_view(), name="program-year-detail"),
    path("program-years/<int:year>/open/", ProgramYearOpen.as_view(), name="program-year-open"),
    path("program-years/<int:year>/close/", ProgramYearClose.as_view(), name="program-year-close"),
    path("program-years/<int:year>/cap-overrides/", CapOverrideCreate.as_view(), name="program-year-cap-override"),
    path("program-years/<int:year>/rule-sets/", RuleSetVersionCreate.as_view(), name="program-year-rule-sets"),
]
