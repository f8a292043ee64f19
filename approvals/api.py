"""Approval requests over the API: list and read them (staff), approve or reject one (a different
person with the right role). The endpoints that ask for an action belong to the apps that own it
and answer 202 with the request they created (`ApprovalRequestSerializer`)."""

import django_filters
from django.urls import path
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.caller import caller
from accounts.models import User
from api.idempotency import idempotency_key_parameter, idempotent
from api.scoping import ScopedQuerysetMixin
from api.serializers import StrictCharField, StrictSerializer, validated
from approvals.models import ApprovalRequest
from approvals.selectors import approval_requests_visible_to
from approvals.services import approval_request_approve, approval_request_reject
from config.errors import NotFound
from config.limits import REASON_LENGTH_MAX
from config.replica import ListFromReplica

TAGS = ["approval-requests"]


class ApprovalRequestSerializer(serializers.ModelSerializer):
    reason = serializers.CharField(read_only=True, help_text="Why the requester asked.")
    decision_reason = serializers.CharField(read_only=True, help_text="Why the decider decided (a rejection's reason).")

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "action",
            "target",
            "payload",
            "status",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "reason",
            "decision_reason",
            "evidence",
        ]
        read_only_fields = fields


class DecisionApproveRequest(StrictSerializer):
    """Optionally, a note on why the request is approved."""

    reason = StrictCharField(max_length=REASON_LENGTH_MAX, required=False, allow_blank=True)


class DecisionRejectRequest(StrictSerializer):
    """Why the request is refused."""

    reason = StrictCharField(max_length=REASON_LENGTH_MAX)


class ApprovalRequestFilter(django_filters.FilterSet):
    class Meta:
        model = ApprovalRequest
        fields = ["status", "action"]


def _in_scope(user: User, pk: int) -> ApprovalRequest:
    request = approval_requests_visible_to(user).filter(pk=pk).first()
    if request is None:
        raise NotFound(f"No approval request {pk}.")
    return request


DESCRIPTION = (
    "A sensitive action (a cap override, a redemption's reversal, a grant's revocation, a settlement's payment, "
    "a computing center's listing change) is asked for by one person and carried out only when a different "
    "person with the right role approves it: see the README's role table."
)


@extend_schema_view(
    get=extend_schema(
        summary="List approval requests (staff)",
        description=DESCRIPTION + " Filter with `?status=pending` for what waits for a decision.",
        tags=TAGS,
    )
)
class ApprovalRequestList(ListFromReplica, ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = ApprovalRequestSerializer
    scoped_model = ApprovalRequest
    scope = staticmethod(approval_requests_visible_to)
    filterset_class = ApprovalRequestFilter
    ordering_fields = ["id", "requested_at"]
    ordering = ["id"]


@extend_schema_view(get=extend_schema(summary="Read an approval request (staff)", tags=TAGS))
class ApprovalRequestDetail(ScopedQuerysetMixin, generics.RetrieveAPIView):
    serializer_class = ApprovalRequestSerializer
    scoped_model = ApprovalRequest
    scope = staticmethod(approval_requests_visible_to)


class ApprovalRequestApprove(APIView):
    @extend_schema(
        request=DecisionApproveRequest,
        responses={200: ApprovalRequestSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Approve a request: the action is carried out",
        description=(
            "By a person with the role the action needs, never the requester (403 `four_eyes`; so is the payment "
            "of a settlement by the finance user who created it). The action runs now: if its own rules refuse "
            "it (say the redemption was settled meanwhile), that refusal is the answer and the request stays "
            "pending. A decided request is 409 `invalid_state`."
        ),
        tags=TAGS,
        examples=[
            OpenApiExample("Approve", value={"reason": "Checked against the board decision."}, request_only=True)
        ],
    )
    @idempotent(required=False)
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        _in_scope(user, pk)
        data = validated(DecisionApproveRequest, request.data)
        decided = approval_request_approve(request_id=pk, decider=user, reason=data.get("reason", ""))
        return Response(ApprovalRequestSerializer(decided).data)


class ApprovalRequestReject(APIView):
    @extend_schema(
        request=DecisionRejectRequest,
        responses={200: ApprovalRequestSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Reject a request, saying why: nothing is done",
        description="The same people may reject as may approve; never the requester (403 `four_eyes`).",
        tags=TAGS,
        examples=[OpenApiExample("Reject", value={"reason": "No board decision on file."}, request_only=True)],
    )
    @idempotent(required=False)
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        _in_scope(user, pk)
        data = validated(DecisionRejectRequest, request.data)
        decided = approval_request_reject(request_id=pk, decider=user, reason=data["reason"])
        return Response(ApprovalRequestSerializer(decided).data)


urlpatterns = [
    path("approval-requests/", ApprovalRequestList.as_view(), name="approval-request-list"),
    path("approval-requests/<int:pk>/", ApprovalRequestDetail.as_view(), name="approval-request-detail"),
    path("approval-requests/<int:pk>/approve/", ApprovalRequestApprove.as_view(), name="approval-request-approve"),
    path("approval-requests/<int:pk>/reject/", ApprovalRequestReject.as_view(), name="approval-request-reject"),
]
