"""Sanctions: staff read the list; a reviewer or an approver asks for one (202, an approval request
that a different approver decides at /approval-requests/{id}/approve/)."""

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api import UsccField
from accounts.caller import caller
from accounts.models import Role, Sanction, User
from accounts.roles import require_role
from api.scoping import ScopedQuerysetMixin, staff_only
from api.serializers import StrictCharField, StrictSerializer, validated
from approvals.api import ApprovalRequestSerializer
from config.limits import REASON_LENGTH_MAX
from config.replica import ListFromReplica
from coupons.services.sanctions import sanction_request


class SanctionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Sanction
        fields = ["id", "uscc", "reason", "valid_from", "valid_until", "requested_by", "decided_by", "created_at"]
        read_only_fields = fields


class SanctionRequest(StrictSerializer):
    uscc = UsccField()
    reason = StrictCharField(max_length=REASON_LENGTH_MAX)
    valid_from = serializers.DateField(help_text="The first day (Asia/Shanghai) of the sanction.")
    valid_until = serializers.DateField(
        required=False, allow_null=True, default=None, help_text="The last day, inclusive; null: until further notice."
    )


def sanctions_visible_to(user: User) -> QuerySet[Sanction]:
    return staff_only(Sanction.objects.all(), user)


class SanctionListCreate(ListFromReplica, ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = SanctionSerializer
    scoped_model = Sanction
    scope = staticmethod(sanctions_visible_to)
    filterset_fields = ["uscc"]
    ordering_fields = ["id", "valid_from"]
    ordering = ["id"]

    @extend_schema(
        request=SanctionRequest,
        responses={202: ApprovalRequestSerializer},
        tags=["sanctions"],
        summary="Ask for a sanction (reviewer or approver); a different approver decides",
        description=(
            "Answers 202 with a pending approval request (action `sanction_set`). Once a different approver "
            "approves it, the organisation with this credit code is refused with 403 `not_eligible` from "
            "`valid_from` to `valid_until` at submission, confirmation, approval and redemption."
        ),
    )
    def post(self, request: Request) -> Response:
        user = caller(request)
        require_role(user, Role.REVIEWER, Role.APPROVER)
        data = validated(SanctionRequest, request.data)
        asked = sanction_request(requester=user, **data)
        return Response(ApprovalRequestSerializer(asked).data, status=status.HTTP_202_ACCEPTED)


urlpatterns = [
    path("sanctions/", SanctionListCreate.as_view(), name="sanction-list"),
]
