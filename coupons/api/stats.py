"""Pool statistics for staff, and the public notice (公示) of approved grants for anyone.

The notice comes as JSON pages at `/public/awards/` and as one CSV file at `/public/awards.csv`
(a path of its own: DRF reads `?format=` as a choice of renderer).
"""

import datetime as dt
from collections.abc import Iterable

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.caller import caller
from config.replica import ListFromReplica, reads_from_replica
from coupons.api.years import STAFF_ONLY, PoolFiguresSerializer
from coupons.models import DEFAULT_PROGRAM, PROGRAM_SLUG_LENGTH_MAX, ComputeSource, Grant, Program, ProgramYear
from coupons.selectors import approved_on, pool_stats, programs_overview, public_awards, public_awards_csv_lines
from coupons.selectors.scopes import program_default_for, program_within_reach
from coupons.services.years import program_year_of

YEAR_MIN, YEAR_MAX = 2000, 2999


class YearQuery(serializers.Serializer):
    """`?year=`: query strings are text, so this is DRF's own IntegerField, bounded."""

    year = serializers.IntegerField(min_value=YEAR_MIN, max_value=YEAR_MAX, required=False)


class ProgramQuery(serializers.Serializer):
    """`?program=`: a program's slug."""

    program = serializers.SlugField(max_length=PROGRAM_SLUG_LENGTH_MAX, required=False)


def _program_asked(request: Request) -> str | None:
    """The `?program=` asked for; None when absent. An empty or malformed slug is 400, as the schema's
    pattern says (an empty value is not "every program": that is leaving the parameter out)."""
    if "program" not in request.query_params:
        return None
    query = ProgramQuery(data={"program": request.query_params["program"]})
    query.is_valid(raise_exception=True)
    return query.validated_data.get("program")


# `?program=`: a slug. An empty value is 400 (leave the parameter out for the default), as
# `_program_asked` says; the schema says so too, so that a client generated from it never sends one.
PROGRAM_SCHEMA = {
    "type": "string",
    "pattern": "^[-a-zA-Z0-9_]+$",
    "minLength": 1,
    "maxLength": PROGRAM_SLUG_LENGTH_MAX,
}


def _year_asked(request: Request) -> int | None:
    """The `?year=` asked for; None when absent or empty (as list filters take an empty value)."""
    year = request.query_params.get("year", "")
    query = YearQuery(data={"year": year} if year != "" else {})
    query.is_valid(raise_exception=True)
    return query.validated_data.get("year")


# --- Pool statistics ------------------------------------------------------------------------------


class ComputeSourceFiguresSerializer(serializers.Serializer):
    compute_source = serializers.ChoiceField(choices=ComputeSource.choices)
    issued_fen = serializers.IntegerField()
    redeemed_fen = serializers.IntegerField()
    grants_count = serializers.IntegerField()


class ProviderFiguresSerializer(serializers.Serializer):
    provider = serializers.IntegerField()
    name = serializers.CharField()
    issued_fen = serializers.IntegerField()
    redeemed_fen = serializers.IntegerField()


class TopEnterpriseSerializer(serializers.Serializer):
    enterprise = serializers.IntegerField()
    name = serializers.CharField()
    issued_fen = serializers.IntegerField()
    cap_fen = serializers.IntegerField(
        help_text="The enterprise's cap for the year: its latest override or the default."
    )
    cap_used_share_bp = serializers.IntegerField(
        help_text="(issued − given back by revocations) ÷ cap, in basis points, rounded down."
    )


class PoolStatsSerializer(PoolFiguresSerializer):
    """The year's figures from the ledger, their breakdowns from grant and redemption rows, and the forecast."""

    program = serializers.CharField(help_text="The program's slug.")
    year = serializers.IntegerField()
    pool_fen = serializers.IntegerField(help_text="The pool the year was credited with when it opened (0 in draft).")
    by_compute_source = ComputeSourceFiguresSerializer(many=True)
    by_provider = ProviderFiguresSerializer(many=True, help_text="Largest issuance first.")
    top_enterprises = TopEnterpriseSerializer(many=True, help_text="At most 10, largest issuance first.")
    forecast_exhausted_on = serializers.DateField(
        allow_null=True,
        help_text=(
            "The day (Asia/Shanghai) the pool runs out if net issuance (issued − revoked) keeps its average daily "
            "pace since the year opened; null when nothing was issued or the pool outlasts the year."
        ),
    )


YEAR_SCHEMA = {"type": "integer", "minimum": YEAR_MIN, "maximum": YEAR_MAX}
YEAR_PARAMETER = OpenApiParameter(
    "year", YEAR_SCHEMA, OpenApiParameter.QUERY, description="A program year; defaults to the current one."
)
PROGRAM_PARAMETER = OpenApiParameter(
    "program", PROGRAM_SCHEMA, OpenApiParameter.QUERY, description=f"A program's slug; defaults to {DEFAULT_PROGRAM}."
)


class PoolStatsView(APIView):
    permission_classes = STAFF_ONLY

    @extend_schema(
        parameters=[PROGRAM_PARAMETER, YEAR_PARAMETER],
        responses={200: PoolStatsSerializer},
        summary="Pool statistics of a program year (staff)",
        description=(
            "The year's figures exactly as `GET /program-years/{year}/` reads them from the ledger, with "
            "breakdowns by compute source and by provider (each adds up to issued and redeemed), the top "
            "enterprises and a forecast of the day the pool runs out. The year defaults to the current one in "
            "Asia/Shanghai time; an unknown year, or a program the caller's roles do not reach (staff limited to "
            "programs), is 404. Without `program`: the default program, or for staff limited to other programs "
            "the first of theirs."
        ),
        tags=["stats"],
    )
    @reads_from_replica
    def get(self, request: Request) -> Response:
        user = caller(request)
        program = _program_asked(request) or program_default_for(user)
        program_within_reach(user, program)
        year = _year_asked(request) or program_year_of(timezone.now())
        return Response(PoolStatsSerializer(pool_stats(year=year, program=program).as_dict()).data)


# --- Every program side by side ----------------------------------------------------------------------


class PoolTotalsSerializer(PoolFiguresSerializer):
    pool_fen = serializers.IntegerField(help_text="The pool the year was credited with when it opened (0 in draft).")


class ProgramFiguresSerializer(PoolTotalsSerializer):
    program = serializers.CharField(help_text="The program's slug.")
    name = serializers.CharField()
    name_en = serializers.CharField()
    level = serializers.ChoiceField(choices=Program.Level.choices)
    status = serializers.ChoiceField(choices=Program.Status.choices, help_text="The program's status.")
    year_status = serializers.ChoiceField(
        choices=ProgramYear.Status.choices,
        allow_null=True,
        help_text="The status of the program's year; null when the program has no such year (its figures are 0).",
    )


class ProgramsOverviewSerializer(serializers.Serializer):
    year = serializers.IntegerField()
    programs = ProgramFiguresSerializer(many=True, help_text="Every program, by slug.")
    totals = PoolTotalsSerializer(help_text="Each figure summed over the programs above.")


class ProgramsOverviewView(APIView):
    permission_classes = STAFF_ONLY

    @extend_schema(
        parameters=[YEAR_PARAMETER],
        responses={200: ProgramsOverviewSerializer},
        summary="Every program's figures for a year, and their totals (staff)",
        description=(
            "An administrator's overview of the funds the service runs: one row per program with its year's "
            "figures, read from the ledger exactly as `GET /stats/pool/?program=&year=` reads them, and the "
            "totals across programs (each the sum of the rows). A program without that year is listed with "
            "`year_status` null and zero figures; staff limited to programs see only theirs. "
            "The year defaults to the current one in Asia/Shanghai time."
        ),
        tags=["stats"],
    )
    @reads_from_replica
    def get(self, request: Request) -> Response:
        year = _year_asked(request) or program_year_of(timezone.now())
        limit = caller(request).program_limit  # Staff limited to programs see theirs (docs/programs.md).
        overview = programs_overview(year=year, programs=None if limit is None else sorted(limit))
        return Response(ProgramsOverviewSerializer(overview.as_dict()).data)


# --- The public notice (公示) -----------------------------------------------------------------------


class PublicAwardSerializer(serializers.ModelSerializer):
    enterprise = serializers.CharField(source="enterprise.name", read_only=True, help_text="The enterprise's name.")
    uscc = serializers.CharField(source="enterprise.uscc", read_only=True)
    approved_on = serializers.SerializerMethodField(help_text="The day of approval, in Asia/Shanghai.")
    grant_code = serializers.CharField(source="code", read_only=True)
    program = serializers.CharField(source="program_slug", read_only=True, help_text="The program's slug.")
    program_name = serializers.CharField(read_only=True, help_text="The program's name in Chinese.")

    class Meta:
        model = Grant
        fields = ["enterprise", "uscc", "amount_fen", "approved_on", "grant_code", "program", "program_name"]
        read_only_fields = fields

    def get_approved_on(self, grant: Grant) -> dt.date:
        return approved_on(grant)


PUBLIC_YEAR_PARAMETER = OpenApiParameter(
    "year", YEAR_SCHEMA, OpenApiParameter.QUERY, description="Only this program year's grants; all by default."
)
PUBLIC_PROGRAM_PARAMETER = OpenApiParameter(
    "program",
    PROGRAM_SCHEMA,
    OpenApiParameter.QUERY,
    description="Only this program's grants; every program by default.",
)


@extend_schema_view(
    get=extend_schema(
        parameters=[PUBLIC_PROGRAM_PARAMETER, PUBLIC_YEAR_PARAMETER],
        summary="The public notice (公示) of approved grants",
        description=(
            "Open to anyone, without credentials. Grants in order of approval, every program's (each row names "
            "its program) unless `program` names one; revoked grants are withdrawn from the notice. The same "
            "notice as one CSV file: `GET /public/awards.csv`."
        ),
        tags=["public"],
    )
)
class PublicAwardList(ListFromReplica, generics.ListAPIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []  # A stale token header is no reason to refuse a public page.
    serializer_class = PublicAwardSerializer
    filter_backends: list[type] = []  # `?year=` only, read below.

    def get_queryset(self) -> QuerySet[Grant]:
        if getattr(self, "swagger_fake_view", False):
            return Grant.objects.none()
        return public_awards(year=_year_asked(self.request), program=_program_asked(self.request))


class _AlwaysFirstRenderer(BaseContentNegotiation):
    """The CSV view answers CSV whatever the Accept header asks (and refusals as problem JSON)."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser:
        return next(iter(parsers))

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class PublicAwardCsv(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    content_negotiation_class = _AlwaysFirstRenderer

    @extend_schema(
        parameters=[PUBLIC_PROGRAM_PARAMETER, PUBLIC_YEAR_PARAMETER],
        responses={
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="UTF-8 CSV with a header row, amounts in fen.",
                examples=[
                    OpenApiExample(
                        "Two grants",
                        value=(
                            "enterprise,uscc,amount_fen,approved_on,grant_code,program,program_name\n"
                            "杭州示例智能科技有限公司,91330100MA2H7K3Q0X,30000000,2026-03-02,HZ26-0000001-K,"
                            "hangzhou-compute,杭州市算力券\n"
                        ),
                    )
                ],
            )
        },
        summary="The public notice (公示) as a CSV file",
        operation_id="public_awards_csv",
        description=(
            "Open to anyone, without credentials: the rows of `GET /public/awards/`, all of them, as an "
            "attachment. A cell that a spreadsheet would read as a formula starts with an apostrophe."
        ),
        tags=["public"],
    )
    @reads_from_replica
    def get(self, request: Request) -> StreamingHttpResponse:
        year, program = _year_asked(request), _program_asked(request)
        response = StreamingHttpResponse(
            public_awards_csv_lines(year=year, program=program), content_type="text/csv; charset=utf-8"
        )
        filename = f"awards-{year}.csv" if year is not None else "awards.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


urlpatterns = [
    path("stats/pool/", PoolStatsView.as_view(), name="stats-pool"),
    path("stats/programs/", ProgramsOverviewView.as_view(), name="stats-programs"),
    path("public/awards/", PublicAwardList.as_view(), name="public-award-list"),
    path("public/awards.csv", PublicAwardCsv.as_view(), name="public-award-csv"),
]
