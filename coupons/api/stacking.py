"""Stacking rules: which programs may subsidise the same contract, and their combined ceiling
(docs/programs.md "Stacking"). Staff read them; a superuser asks for one and another superuser
approves it. A rule is never changed."""

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.caller import caller
from accounts.roles import require_superuser
from api.idempotency import idempotency_key_parameter, idempotent
from api.serializers import FenField, StrictCharField, StrictIntegerField, StrictSerializer, validated
from approvals.api import ApprovalRequestSerializer
from config.limits import REASON_LENGTH_MAX
from config.replica import ListFromReplica
from coupons.api.years import STAFF_ONLY
from coupons.models import BASIS_POINTS_WHOLE, PROGRAM_SLUG_LENGTH_MAX, STACKING_RULE_NAME_LENGTH_MAX, StackingRule
from coupons.services.stacking import STACKING_RULE_PROGRAMS_MAX, stacking_rule_request

TAGS = ["program-years"]


class StackingRuleSerializer(serializers.ModelSerializer):
    programs = serializers.SerializerMethodField()

    class Meta:
        model = StackingRule
        fields = ["id", "name", "programs", "share_bp", "amount_fen", "created_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_programs(self, rule: StackingRule) -> list[str]:
        return sorted(m.program_id for m in rule.memberships.all())


class StackingRuleRequest(StrictSerializer):
    name = StrictCharField(max_length=STACKING_RULE_NAME_LENGTH_MAX)
    programs = serializers.ListField(
        child=StrictCharField(max_length=PROGRAM_SLUG_LENGTH_MAX),
        min_length=2,
        max_length=STACKING_RULE_PROGRAMS_MAX,
        help_text="The slugs of the programs that may subsidise the same contract: at least two.",
    )
    share_bp = StrictIntegerField(
        min_value=1,
        max_value=BASIS_POINTS_WHOLE,
        help_text="The combined ceiling as a share of the contract fee, in basis points (6000 = 60%).",
    )
    amount_fen = FenField(
        required=False, allow_null=True, help_text="The combined ceiling in fen, when the policy sets one."
    )
    reason = StrictCharField(max_length=REASON_LENGTH_MAX, help_text="Why: the decision or notice it carries out.")


class StackingRuleListCreate(ListFromReplica, generics.ListAPIView):
    permission_classes = STAFF_ONLY
    serializer_class = StackingRuleSerializer
    queryset = StackingRule.objects.prefetch_related("memberships").order_by("id")

    @extend_schema(summary="List stacking rules (staff)", tags=TAGS)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=StackingRuleRequest,
        responses={202: ApprovalRequestSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Ask for a stacking rule (superuser)",
        description=(
            "The programs (at least two, each existing, else 400) that may subsidise the same contract, and their "
            "combined ceiling: `share_bp` of the contract fee and, optionally, `amount_fen`. A contract subsidised "
            "in several programs gets at most the tightest ceiling of the rules that join any two of them. Answers "
            "202 with an approval request (action `stacking_rule_create`): the rule is written only when another "
            "superuser approves it at `POST /approval-requests/{id}/approve/`, checked again then. A name a rule "
            "has already is 409 `already_exists`; while one stacking rule waits for its decision, another request "
            "is 409 `invalid_state`. A rule is never changed: a new policy is a new rule."
        ),
        tags=TAGS,
        examples=[
            OpenApiExample(
                "City and district, 60% together",
                value={
                    "name": "city+district",
                    "programs": ["hangzhou-compute", "binjiang-compute"],
                    "share_bp": 6000,
                    "reason": "Binjiang district's notice 2026-3: 60% with the city's coupon.",
                },
                request_only=True,
            )
        ],
    )
    @idempotent(required=False)
    def post(self, request: Request) -> Response:
        user = caller(request)
        require_superuser(user)
        data = validated(StackingRuleRequest, request.data)
        approval = stacking_rule_request(requester=user, **data)
        return Response(ApprovalRequestSerializer(approval).data, status=status.HTTP_202_ACCEPTED)


urlpatterns = [path("stacking-rules/", StackingRuleListCreate.as_view(), name="stacking-rule-list")]
