"""Grants: list and read them with their live balances; a reviewer or approver asks for one's
revocation, and a different approver decides (`approvals`)."""

import django_filters
from django.urls import path
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.caller import caller
from accounts.models import Role, User
from accounts.roles import require_role
from api.filters import IntegerFilter
from api.idempotency import idempotency_key_parameter, idempotent
from api.scoping import ScopedQuerysetMixin
from api.serializers import StrictCharField, StrictSerializer, validated
from approvals.api import ApprovalRequestSerializer
from config.errors import NotFound
from config.limits import REASON_LENGTH_MAX
from config.replica import ListFromReplica
from coupons.models import Grant
from coupons.selectors.scopes import grants_with_figures
from coupons.services.grants import grant_revoke_request


def grant_in_scope(user: User, pk: int) -> Grant:
    """The caller's grant `pk`, with its figures; another organisation's is not found."""
    grant = grants_with_figures(user).filter(pk=pk).first()
    if grant is None:
        raise NotFound(f"No grant {pk} among yours.")
    return grant


class GrantSerializer(serializers.ModelSerializer):
    program = serializers.CharField(source="year.program_id", read_only=True, help_text="The program's slug.")
    year = serializers.IntegerField(source="year.year", read_only=True, help_text="The program year.")
    available_fen = serializers.IntegerField(read_only=True, help_text="What is left to redeem, in fen.")
    held_fen = serializers.IntegerField(read_only=True, help_text="Held by pending redemptions, in fen.")
    redeemed_fen = serializers.IntegerField(
        read_only=True, help_text="Captured redemptions and approved claims, in fen."
    )

    class Meta:
        model = Grant
        fields = [
            "id",
            "code",
            "enterprise",
            "provider",
            "application",
            "program",
            "year",
            "amount_fen",
            "available_fen",
            "held_fen",
            "redeemed_fen",
            "status",
            "expires_at",
            "rate_bp",
        ]
        read_only_fields = fields


class GrantRevokeRequest(StrictSerializer):
    """Why the grant is revoked."""

    reason = StrictCharField(max_length=REASON_LENGTH_MAX)


class GrantFilter(django_filters.FilterSet):
    # Plain numbers, not choices, so a filter never reveals which ids exist.
    program = django_filters.CharFilter(field_name="year__program_id", help_text="A program's slug.")
    year = IntegerFilter(field_name="year__year")
    enterprise = IntegerFilter(field_name="enterprise_id")
    provider = IntegerFilter(field_name="provider_id")

    class Meta:
        model = Grant
        fields = ["status", "program", "year", "enterprise", "provider"]


@extend_schema_view(
    get=extend_schema(
        summary="List grants",
        description="Staff see every grant; an enterprise its own; a provider those naming it.",
        tags=["grants"],
    )
)
class GrantList(ListFromReplica, ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = GrantSerializer
    scoped_model = Grant
    scope = staticmethod(grants_with_figures)
    filterset_class = GrantFilter
    ordering_fields = ["id", "amount_fen", "expires_at"]
    ordering = ["id"]


@extend_schema_view(
    get=extend_schema(
        summary="Read a grant",
        description="With its live balances. Outside the caller's reach it is 404.",
        tags=["grants"],
    )
)
class GrantDetail(ScopedQuerysetMixin, generics.RetrieveAPIView):
    serializer_class = GrantSerializer
    scoped_model = Grant
    scope = staticmethod(grants_with_figures)


class GrantRevoke(APIView):
    @extend_schema(
        request=GrantRevokeRequest,
        responses={202: ApprovalRequestSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Ask for a grant's revocation (reviewer or approver)",
        description=(
            "Answers 202 with an approval request (action `grant_revoke`); the grant is revoked only when a "
            "different approver approves it at `POST /approval-requests/{id}/approve/`: its pending holds are "
            "voided and its unused balance returns to the pool and the enterprise's cap; captured redemptions "
            "stand. 409 `invalid_state` when the grant is not active or a request for it is already pending."
        ),
        tags=["grants"],
        examples=[OpenApiExample("Revoke", value={"reason": "The contract was cancelled."}, request_only=True)],
    )
    @idempotent(required=False)
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        grant = grant_in_scope(user, pk)
        require_role(user, Role.REVIEWER, Role.APPROVER)
        data = validated(GrantRevokeRequest, request.data)
        approval = grant_revoke_request(grant=grant, requester=user, reason=data["reason"])
        return Response(ApprovalRequestSerializer(approval).data, status=status.HTTP_202_ACCEPTED)


urlpatterns = [
    path("grants/", GrantList.as_view(), name="grant-list"),
    path("grants/<int:pk>/", GrantDetail.as_view(), name="grant-detail"),
    path("grants/<int:pk>/revoke/", GrantRevoke.as_view(), name="grant-revoke"),
]
