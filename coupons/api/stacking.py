"""Stacking rules: which programs may subsidise the same contract, and their combined ceiling
(docs/programs.md "Stacking"). Staff read them; a superuser writes one. A rule is never changed."""

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.caller import caller
from accounts.roles import require_superuser
from api.serializers import FenField, StrictCharField, StrictIntegerField, StrictSerializer, validated
from config.replica import ListFromReplica
from coupons.api.years import STAFF_ONLY
from coupons.models import BASIS_POINTS_WHOLE, PROGRAM_SLUG_LENGTH_MAX, STACKING_RULE_NAME_LENGTH_MAX, StackingRule
from coupons.services.stacking import STACKING_RULE_PROGRAMS_MAX, stacking_rule_create

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


class StackingRuleListCreate(ListFromReplica, generics.ListAPIView):
    permission_classes = STAFF_ONLY
    serializer_class = StackingRuleSerializer
    pagination_class = None
    queryset = StackingRule.objects.prefetch_related("memberships").order_by("id")

    @extend_schema(summary="List stacking rules (staff)", tags=TAGS)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=StackingRuleRequest,
        responses={201: StackingRuleSerializer},
        summary="Write a stacking rule (superuser)",
        description=(
            "The programs (at least two, each existing, else 400) that may subsidise the same contract, and their "
            "combined ceiling: `share_bp` of the contract fee and, optionally, `amount_fen`. A contract subsidised "
            "in several programs gets at most the tightest ceiling of the rules that join any two of them. Writing "
            "the same rule again answers it (201); a name another rule has is 409 `already_exists`. A rule is "
            "never changed: a new policy is a new rule."
        ),
        tags=TAGS,
        examples=[
            OpenApiExample(
                "City and district, 60% together",
                value={"name": "city+district", "programs": ["hangzhou-compute", "binjiang-compute"], "share_bp": 6000},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        user = caller(request)
        require_superuser(user)
        data = validated(StackingRuleRequest, request.data)
        rule = stacking_rule_create(actor=user, **data)
        return Response(StackingRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


urlpatterns = [path("stacking-rules/", StackingRuleListCreate.as_view(), name="stacking-rule-list")]
