"""Claims (enterprise reimbursement, 事后兑现): in a program year whose `redemption_mode` is
`enterprise_reimbursement`, the enterprise that paid its bill in full claims against its grant with
the invoice and the proof of payment; a reviewer approves or rejects the claim; finance settles the
enterprise's approved claims (`POST /settlements/` with `enterprise`).

Who sees what: staff every claim, an enterprise its own, a computing center the claims on its grants
(read-only: it issued the invoice); anyone else's claim is 404.
"""

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
from api.serializers import ID_MAX, FenField, StrictCharField, StrictIntegerField, StrictSerializer, validated
from config.errors import NotFound, PermissionDenied
from config.limits import REASON_LENGTH_MAX
from config.replica import ListFromReplica
from coupons.invoices import INPUT_LENGTH_MAX
from coupons.models import CONTRACT_FEE_FEN_MAX, Claim
from coupons.selectors.scopes import claims_visible_to, grants_visible_to
from coupons.services.claims import claim_approve, claim_reject, claim_submit

REFUSALS = (
    "Refusals are problem details: 409 `invalid_state` (reason `redemption_mode`) when the grant's year is not in "
    "`enterprise_reimbursement` mode, `grant_exhausted`, `contract_exceeded`, `duplicate_invoice`, `grant_expired`, "
    "`grant_revoked`, `provider_not_listed`, `enterprise_not_verified`; 403 `not_eligible`; 400 "
    "`invalid_invoice_number`, or `validation_error` for a document that is not the enterprise's own invoice or "
    "payment proof; 404 `not_found` for a grant outside the caller's reach."
)


class ClaimSerializer(serializers.ModelSerializer):
    reason = serializers.CharField(
        source="decision_reason", read_only=True, help_text="The reviewer's reason (or why the program released it)."
    )

    class Meta:
        model = Claim
        fields = [
            "id",
            "grant",
            "status",
            "bill_amount_fen",
            "requested_fen",
            "coupon_fen",
            "invoice_number",
            "invoice_document",
            "payment_proof_document",
            "created_at",
            "decided_by",
            "decided_at",
            "reason",
            "settlement",
        ]
        read_only_fields = fields


class ClaimRequest(StrictSerializer):
    """A bill the enterprise paid in full, with its invoice and proof of payment."""

    grant = StrictIntegerField(min_value=1, max_value=ID_MAX, help_text="The grant's id.")
    invoice_number = StrictCharField(
        max_length=INPUT_LENGTH_MAX,
        help_text="20 digits (fully digital e-invoice) or CODE-NUMBER (10 or 12-digit code, 8-digit number).",
    )
    invoice_document = StrictIntegerField(
        min_value=1, max_value=ID_MAX, help_text="A document of kind `invoice` the enterprise uploaded."
    )
    payment_proof_document = StrictIntegerField(
        min_value=1, max_value=ID_MAX, help_text="A document of kind `payment_proof` the enterprise uploaded."
    )
    bill_amount_fen = FenField(max_value=CONTRACT_FEE_FEN_MAX, help_text="The bill the enterprise paid, in fen.")
    requested_fen = FenField(
        required=False, help_text="At most this much coupon, in fen; the coupon is never more than bill × rate."
    )


class DecisionRequest(StrictSerializer):
    """The reviewer's reason: required to reject, optional to approve."""

    reason = StrictCharField(max_length=REASON_LENGTH_MAX, required=False, allow_blank=True)


class ClaimFilter(django_filters.FilterSet):
    program = django_filters.CharFilter(field_name="grant__year__program_id", help_text="A program's slug.")
    year = IntegerFilter(field_name="grant__year__year")
    # Plain numbers, not choices, so a filter never reveals which ids exist.
    enterprise = IntegerFilter(field_name="enterprise_id")
    provider = IntegerFilter(field_name="grant__provider_id")
    grant = IntegerFilter(field_name="grant_id")

    class Meta:
        model = Claim
        fields = ["status", "program", "year", "enterprise", "provider", "grant"]


def _claim(user: User, pk: int) -> Claim:
    claim = claims_visible_to(user).filter(pk=pk).first()
    if claim is None:
        raise NotFound(f"No claim {pk} among yours.")
    return claim


@extend_schema_view(
    get=extend_schema(
        summary="List claims",
        description=(
            "Staff see every claim; an enterprise its own; a computing center the claims on its grants (read-only)."
        ),
        tags=["claims"],
    )
)
class ClaimListCreate(ListFromReplica, ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = ClaimSerializer
    scoped_model = Claim
    scope = staticmethod(claims_visible_to)
    filterset_class = ClaimFilter
    ordering_fields = ["id", "created_at", "bill_amount_fen", "coupon_fen"]
    ordering = ["id"]

    @extend_schema(
        request=ClaimRequest,
        responses={201: ClaimSerializer},
        parameters=[idempotency_key_parameter(required=True)],
        summary="Claim against a grant for a bill paid in full (the grant's enterprise)",
        description=(
            "In a program year of enterprise reimbursement. The coupon is min(floor(bill × rate), what is left on "
            "the grant, requested_fen); it is held on the grant (`submitted`) until a reviewer approves the claim "
            "(then settled and `paid` to the enterprise) or rejects it. The invoice is used once in the whole "
            "service, whether by a claim or a redemption. " + REFUSALS
        ),
        tags=["claims"],
        examples=[
            OpenApiExample(
                "Claim",
                value={
                    "grant": 12,
                    "invoice_number": "24332000000012345678",
                    "invoice_document": 31,
                    "payment_proof_document": 32,
                    "bill_amount_fen": 1_000_000,
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        user = caller(request)
        if user.enterprise_id is None:
            raise PermissionDenied("Only a member of the grant's enterprise claims.")
        return self._create(request)

    @idempotent(required=True)
    def _create(self, request: Request) -> Response:
        user = caller(request)
        data = validated(ClaimRequest, request.data)
        grant = grants_visible_to(user).filter(pk=data.pop("grant")).first()
        if grant is None:
            raise NotFound("No such grant among yours.")
        claim = claim_submit(grant=grant, actor=user, **data)
        return Response(ClaimSerializer(claim).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(summary="Read a claim", description="Outside the caller's reach it is 404.", tags=["claims"])
)
class ClaimDetail(ScopedQuerysetMixin, generics.RetrieveAPIView):
    serializer_class = ClaimSerializer
    scoped_model = Claim
    scope = staticmethod(claims_visible_to)


class ClaimApprove(APIView):
    @extend_schema(
        request=DecisionRequest,
        responses={200: ClaimSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Approve a submitted claim (reviewer)",
        description=(
            "Posts the held coupon to the enterprise's account, to be paid by its next settlement. 409 "
            "`invalid_state` unless the claim is submitted; `grant_expired` or `grant_revoked` when the grant can no "
            "longer be used (reject the claim instead); 403 `four_eyes` for the person who made the claim."
        ),
        tags=["claims"],
    )
    @idempotent(required=False)
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        claim = _claim(user, pk)
        require_role(user, Role.REVIEWER)
        data = validated(DecisionRequest, request.data)
        claim = claim_approve(claim=claim, actor=user, reason=data.get("reason", ""))
        return Response(ClaimSerializer(claim).data)


class ClaimReject(APIView):
    @extend_schema(
        request=DecisionRequest,
        responses={200: ClaimSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Reject a submitted claim (reviewer)",
        description=(
            "With a reason (required). The held coupon goes back to the grant and the invoice may be claimed again. "
            "409 `invalid_state` unless the claim is submitted."
        ),
        tags=["claims"],
        examples=[OpenApiExample("Reject", value={"reason": "The invoice names another buyer."}, request_only=True)],
    )
    @idempotent(required=False)
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        claim = _claim(user, pk)
        require_role(user, Role.REVIEWER)
        data = validated(DecisionRequest, request.data)
        claim = claim_reject(claim=claim, actor=user, reason=data.get("reason", ""))
        return Response(ClaimSerializer(claim).data)


urlpatterns = [
    path("claims/", ClaimListCreate.as_view(), name="claim-list"),
    path("claims/<int:pk>/", ClaimDetail.as_view(), name="claim-detail"),
    path("claims/<int:pk>/approve/", ClaimApprove.as_view(), name="claim-approve"),
    path("claims/<int:pk>/reject/", ClaimReject.as_view(), name="claim-reject"),
]
