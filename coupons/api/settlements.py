"""Settlements: finance batches a provider's captured redemptions (provider deduction) or an
enterprise's approved claims (enterprise reimbursement), exports the lines for the bank, and marks
the batch paid; providers and enterprises read their own."""

from typing import Any, ClassVar, Final

import django_filters
from django.db.models import Q, QuerySet
from django.http import HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, renderers, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import enterprises_visible_to, providers_visible_to
from accounts.caller import caller
from accounts.models import Role, User
from accounts.roles import require_role
from api.filters import IntegerFilter
from api.idempotency import idempotency_key_parameter, idempotent
from api.scoping import ScopedQuerysetMixin
from api.serializers import ID_MAX, StrictCharField, StrictIntegerField, StrictSerializer, validated
from approvals.api import ApprovalRequestSerializer
from config.errors import NotFound
from config.limits import REASON_LENGTH_MAX
from config.replica import ListFromReplica, reads_from_replica
from coupons.models import DEFAULT_PROGRAM, Settlement
from coupons.selectors import settlement_lines_csv
from coupons.selectors.scopes import settlements_visible_to
from coupons.services.claims import settlement_create_for_enterprise
from coupons.services.reach import reach_program
from coupons.services.settlements import BANK_REFERENCE_LENGTH_MAX, settlement_create, settlement_pay_request
from coupons.services.years import program_get

CSV_CONTENT_TYPE: Final = "text/csv"


class SettlementSerializer(serializers.ModelSerializer):
    claims_count = serializers.SerializerMethodField(help_text="The enterprise's claims it pays (0 for a provider).")

    class Meta:
        model = Settlement
        fields = [
            "id",
            "program",
            "provider",
            "enterprise",
            "status",
            "total_fen",
            "redemptions_count",
            "claims_count",
            "bank_reference",
            "paid_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_claims_count(self, settlement: Settlement) -> int:
        return 0 if settlement.enterprise_id is None else settlement.claims.count()


class SettlementCreateRequest(StrictSerializer):
    """The payee to settle with: a provider, or an enterprise (exactly one)."""

    exactly_one_of: ClassVar[tuple[str, ...]] = ("provider", "enterprise")  # The schema says so too.
    provider = StrictIntegerField(
        min_value=1, max_value=ID_MAX, required=False, help_text="The provider to settle with (provider deduction)."
    )
    enterprise = StrictIntegerField(
        min_value=1,
        max_value=ID_MAX,
        required=False,
        help_text="The enterprise to settle with: its approved claims (enterprise reimbursement).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if sum(name in attrs for name in self.exactly_one_of) != 1:
            message = ["Give exactly one of provider and enterprise."]
            raise serializers.ValidationError({"provider": message, "enterprise": message})
        return attrs


class SettlementPayRequest(StrictSerializer):
    """The reference of the bank transfer that paid the settlement."""

    bank_reference = StrictCharField(max_length=BANK_REFERENCE_LENGTH_MAX, help_text="The bank transfer's reference.")
    reason = StrictCharField(
        max_length=REASON_LENGTH_MAX, required=False, help_text="Optional note for the finance user who confirms."
    )


class SettlementFilter(django_filters.FilterSet):
    # A settlement is paid from one program's fund: `program` is its own. A plain number, not a
    # choice, for ids, so a filter never reveals which ids exist.
    program = django_filters.CharFilter(field_name="program_id", help_text="A program's slug.")
    provider = IntegerFilter(field_name="provider_id")
    enterprise = IntegerFilter(field_name="enterprise_id")
    year = IntegerFilter(method="filter_year", help_text="Settlements with a line of this program year.")

    class Meta:
        model = Settlement
        fields = ["status", "program", "provider", "enterprise", "year"]

    def filter_year(self, queryset: QuerySet[Settlement], name: str, value: int) -> QuerySet[Settlement]:
        return queryset.filter(Q(redemptions__grant__year__year=value) | Q(claims__grant__year__year=value)).distinct()


class CsvRenderer(renderers.BaseRenderer):
    """Lets a client ask for `Accept: text/csv`; the lines are rendered by the selector, and a
    refusal (a dict of problem details) still goes out as JSON."""

    media_type = CSV_CONTENT_TYPE
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if isinstance(data, str):
            return data.encode()
        return renderers.JSONRenderer().render(data, accepted_media_type, renderer_context)


def _settlement(user: User, pk: int) -> Settlement:
    settlement = settlements_visible_to(user).filter(pk=pk).first()
    if settlement is None:
        raise NotFound(f"No settlement {pk} among yours.")
    return settlement


@extend_schema_view(
    get=extend_schema(
        summary="List settlements",
        description=(
            "Finance and other staff see every settlement; a provider its own; an enterprise those that pay its claims."
        ),
        tags=["settlements"],
    )
)
class SettlementListCreate(ListFromReplica, ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = SettlementSerializer
    scoped_model = Settlement
    scope = staticmethod(settlements_visible_to)

    def get_queryset(self) -> QuerySet[Settlement]:
        queryset = super().get_queryset()
        if "program" in self.kwargs:  # Under /programs/{slug}/: that program's only, within the caller's reach.
            program = program_get(self.kwargs["program"])
            reach_program(caller(self.request), program.slug, f"program {program.slug}")
            queryset = queryset.filter(program=program)
        return queryset

    filterset_class = SettlementFilter
    ordering_fields = ["id", "created_at", "total_fen"]
    ordering = ["id"]

    @extend_schema(
        request=SettlementCreateRequest,
        responses={201: SettlementSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Settle with a provider or an enterprise (finance)",
        description=(
            "With `provider`: batches the provider's captured, unsettled redemptions whose `acknowledgement` is "
            "`confirmed`, `deemed_confirmed` or `dismissed` (a bill still `awaiting` past its `acknowledge_by` is "
            "deemed confirmed and taken), less the clawbacks it owes; disputed bills and bills in their window are "
            "left for a later settlement. With `enterprise` (enterprise reimbursement): batches the enterprise's "
            "approved, unsettled claims. Exactly one of the two, else 400 `validation_error`. Each fund pays its "
            "own: only the grants of the program are settled, `hangzhou-compute` on `/settlements/`, the program "
            "of the path on `/programs/{slug}/settlements/` (404 for an unknown one). 409 `invalid_state` when "
            "there is nothing to settle."
        ),
        tags=["settlements"],
        examples=[
            OpenApiExample("Settle with a provider", value={"provider": 3}, request_only=True),
            OpenApiExample("Settle with an enterprise", value={"enterprise": 7}, request_only=True),
        ],
    )
    @idempotent(required=False)
    def post(self, request: Request, program: str = DEFAULT_PROGRAM) -> Response:
        user = caller(request)
        require_role(user, Role.FINANCE)
        program_get(program)
        data = validated(SettlementCreateRequest, request.data)
        if "enterprise" in data:
            enterprise = enterprises_visible_to(user).filter(pk=data["enterprise"]).first()
            if enterprise is None:
                raise NotFound(f"No enterprise {data['enterprise']}.")
            settlement = settlement_create_for_enterprise(enterprise=enterprise, actor=user, program=program)
        else:
            provider = providers_visible_to(user).filter(pk=data["provider"]).first()
            if provider is None:
                raise NotFound(f"No provider {data['provider']}.")
            settlement = settlement_create(provider=provider, actor=user, program=program)
        return Response(SettlementSerializer(settlement).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(
        summary="Read a settlement",
        description="Outside the caller's reach it is 404.",
        tags=["settlements"],
    )
)
class SettlementDetail(ScopedQuerysetMixin, generics.RetrieveAPIView):
    serializer_class = SettlementSerializer
    scoped_model = Settlement
    scope = staticmethod(settlements_visible_to)


class SettlementPay(APIView):
    @extend_schema(
        request=SettlementPayRequest,
        responses={202: ApprovalRequestSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Ask for a settlement to be marked paid (finance)",
        description=(
            "Answers 202 with an approval request (action `settlement_pay`); the settlement is paid, and the money "
            "leaves the payee's account (the provider's, or the enterprise's, whose claims become `paid`), only when "
            "a different finance user, who did not create the settlement "
            "either, approves it at `POST /approval-requests/{id}/approve/` (else 403 `four_eyes`). 409 "
            "`invalid_state` when it is already paid or a request for it is pending."
        ),
        tags=["settlements"],
        examples=[OpenApiExample("Pay", value={"bank_reference": "ICBC-20261125-0042"}, request_only=True)],
    )
    @idempotent(required=False)
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        settlement = _settlement(user, pk)
        require_role(user, Role.FINANCE)
        data = validated(SettlementPayRequest, request.data)
        approval = settlement_pay_request(settlement=settlement, requester=user, **data)
        return Response(ApprovalRequestSerializer(approval).data, status=status.HTTP_202_ACCEPTED)


class SettlementLines(APIView):
    renderer_classes = [renderers.JSONRenderer, CsvRenderer]

    @extend_schema(
        request=None,
        responses={(200, CSV_CONTENT_TYPE): OpenApiResponse(OpenApiTypes.STR, description="One line a redemption.")},
        summary="The settlement's lines as CSV",
        description=(
            "Columns: line, kind (`redemption`, or `clawback` with a negative coupon), redemption_id, grant_code, "
            "enterprise, contract_number, bill_number, bill_amount_fen, coupon_fen, captured_at; then a total line."
        ),
        tags=["settlements"],
    )
    @reads_from_replica
    def get(self, request: Request, pk: int) -> HttpResponse:
        settlement = _settlement(caller(request), pk)
        response = HttpResponse(settlement_lines_csv(settlement), content_type=f"{CSV_CONTENT_TYPE}; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="settlement-{settlement.pk}.csv"'
        return response


urlpatterns = [
    path("settlements/", SettlementListCreate.as_view(), name="settlement-list"),
    path("programs/<slug:program>/settlements/", SettlementListCreate.as_view(), name="program-settlement-list"),
    path("settlements/<int:pk>/", SettlementDetail.as_view(), name="settlement-detail"),
    path("settlements/<int:pk>/pay/", SettlementPay.as_view(), name="settlement-pay"),
    path("settlements/<int:pk>/lines.csv", SettlementLines.as_view(), name="settlement-lines"),
]
