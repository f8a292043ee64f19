"""Redemptions: a provider redeems a grant against a bill (one at a time or in a batch), captures
or voids the hold; the grant's enterprise acknowledges or disputes a captured one and a reviewer
resolves a dispute; an approver reverses a captured one; everyone in scope reads them.

`POST /redemptions/` demands an `Idempotency-Key`. A batch item is the same unit as that POST
with the item's `idempotency_key` as its key: its own idempotency record and its own savepoint, so
a replayed item replays (even one first sent alone) and a refused item undoes no other item. The
batch is one transaction, committed once, its grants locked in id order first
(`redemptions_batch_prepare`).
"""

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

import django_filters
from django.conf import settings
from django.db import transaction
from django.urls import path, reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.caller import caller
from accounts.models import Role, User
from accounts.roles import require_role
from api.filters import IntegerFilter
from api.idempotency import (
    KEY_LENGTH_MAX,
    KEY_PATTERN,
    KEY_RULE,
    IdempotencyKeyReused,
    body_hash,
    idempotency_key_parameter,
    idempotency_keys_lock,
    idempotent,
    idempotent_call,
    is_replay,
    key_is_valid,
)
from api.problems import exception_handler
from api.scoping import ScopedQuerysetMixin
from api.serializers import (
    ID_MAX,
    BuiltOnceModelSerializer,
    EmptyRequest,
    FenField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    validated,
)
from approvals.api import ApprovalRequestSerializer
from config.errors import NotFound, PermissionDenied
from config.limits import REASON_LENGTH_MAX
from config.replica import ListFromReplica
from coupons.invoices import INPUT_LENGTH_MAX as INVOICE_INPUT_LENGTH_MAX
from coupons.models import BILL_NUMBER_LENGTH_MAX, CONTRACT_FEE_FEN_MAX, Grant, Redemption
from coupons.selectors.scopes import grants_visible_to, redemptions_visible_to
from coupons.services.acknowledgements import (
    DECISION_DISMISS,
    DECISION_UPHOLD,
    redemption_acknowledge,
    redemption_dispute,
    redemption_dispute_resolve,
)
from coupons.services.redemptions import (
    redemption_capture,
    redemption_create,
    redemption_reverse_request,
    redemption_void,
    redemptions_batch_prepare,
)

REFUSALS = (
    "Refusals are problem details: 400 `invalid_invoice_number` (not a 20-digit e-invoice number or a 10 or "
    "12-digit code and 8-digit number), 400 `validation_error` on `invoice_document` (not an invoice your "
    "center uploaded) or `invoice_amount_fen` (the invoice must cover the bill amount); 409 `grant_exhausted`, "
    "`contract_exceeded`, `duplicate_bill`, `duplicate_invoice` (the invoice was already used, on any contract, "
    "by any center, in any year), `grant_expired`, `grant_revoked`, `provider_not_listed`; 404 `not_found` for a "
    "grant outside the caller's reach."
)

# --- Shapes -------------------------------------------------------------------------------------


class RedemptionSerializer(BuiltOnceModelSerializer):
    grant_code = serializers.CharField(source="grant.code", read_only=True)
    payable_fen = serializers.IntegerField(read_only=True, help_text="What the enterprise still pays: bill − coupon.")

    class Meta:
        model = Redemption
        fields = [
            "id",
            "grant",
            "grant_code",
            "provider",
            "bill_number",
            "bill_amount_fen",
            "invoice_number",
            "invoice_document",
            "invoice_amount_fen",
            "requested_fen",
            "rate_bp",
            "coupon_fen",
            "payable_fen",
            "status",
            "created_at",
            "expires_at",
            "captured_at",
            "released_at",
            "reversed_at",
            "settlement",
            "acknowledgement",
            "acknowledge_by",
            "acknowledged_at",
            "dispute_reason",
            "dispute_resolved_at",
            "dispute_note",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "acknowledgement": {
                "help_text": "The enterprise's word on the bill: only confirmed, deemed_confirmed and dismissed "
                "ones are settled."
            },
            "acknowledge_by": {"help_text": "When silence becomes confirmation (set at capture)."},
        }


class RedeemRequest(StrictSerializer):
    """One bill under the grant's contract."""

    # Checked field by field when well formed (api/serializers.py): a batch checks up to a hundred.
    validated_field_by_field = True

    grant = StrictIntegerField(min_value=1, max_value=ID_MAX, help_text="The grant's id.")
    bill_number = StrictCharField(
        max_length=BILL_NUMBER_LENGTH_MAX,
        help_text=(
            'Redeemed once per contract. Folded and limited as `contract_number` is (docs/policy.md, "The '
            'contract and the bills").'
        ),
    )
    bill_amount_fen = FenField(max_value=CONTRACT_FEE_FEN_MAX)
    invoice_number = StrictCharField(
        max_length=INVOICE_INPUT_LENGTH_MAX,
        help_text=(
            "The bill's invoice: the 20-digit number of a fully digital e-invoice, or a 10 or 12-digit code and an "
            "8-digit number written CODE-NUMBER (spaces and full-width digits are accepted). Used once in the "
            "whole service."
        ),
    )
    invoice_document = StrictIntegerField(
        min_value=1, max_value=ID_MAX, help_text="The id of the invoice's document (kind invoice) your center uploaded."
    )
    invoice_amount_fen = FenField(
        max_value=CONTRACT_FEE_FEN_MAX,
        required=False,
        help_text="What the invoice was issued for; at least the bill amount, which it defaults to.",
    )
    requested_fen = FenField(
        required=False, help_text="At most this much coupon, in fen; the coupon is never more than bill × rate."
    )
    capture = StrictBooleanField(default=False, help_text="Post the coupon at once instead of holding it.")


def _batch_item_schema() -> dict[str, Any]:
    """What the schema says of a batch item: its key is checked with the batch (a malformed key is 400
    for the whole request); its other fields are those of POST /redemptions/ (RedeemRequest), named
    here without their types, because they are checked when the item runs: a malformed item is refused
    in its own result (its own 400), and the others still run. So the schema never promises a refusal
    of the whole batch that the service does not give."""
    fields = RedeemRequest().fields
    properties: dict[str, Any] = {
        name: {"description": f"As in POST /redemptions/: {field.help_text or name}"} for name, field in fields.items()
    }
    properties["idempotency_key"] = {
        "type": "string",
        "maxLength": KEY_LENGTH_MAX,
        "pattern": KEY_PATTERN,
        "description": f"This item's own key ({KEY_RULE}), unique within the batch: a retry replays it.",
    }
    return {
        "type": "object",
        "description": "A POST /redemptions/ body (RedeemRequest) with the item's own idempotency_key.",
        "required": ["idempotency_key"],
        "properties": properties,
        "additionalProperties": True,
    }


@extend_schema_field(_batch_item_schema())
class BatchItemField(serializers.DictField):
    """An item is checked for its key here; its content is checked when the item runs, so a bad
    item is refused in its own result and the others still run."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        item = dict(super().to_internal_value(data))
        key = item.get("idempotency_key")
        if not isinstance(key, str) or not key_is_valid(key):
            raise serializers.ValidationError({"idempotency_key": [f"Each item needs one: {KEY_RULE}."]})
        return item


class RedemptionBatchRequest(StrictSerializer):
    """The bills of a batch, each run on its own."""

    items = serializers.ListField(
        child=BatchItemField(), allow_empty=False, max_length=settings.API_BATCH_SIZE_MAX, help_text="In order."
    )

    def validate_items(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: set[str] = set()
        for item in items:
            key = item["idempotency_key"]
            if key in seen:
                raise serializers.ValidationError(f"idempotency_key {key!r} appears more than once.")
            seen.add(key)
        return items


class RedemptionBatchResult(serializers.Serializer):
    """One item's answer: the redemption, or the problem details of its refusal."""

    idempotency_key = serializers.CharField()
    status = serializers.IntegerField(help_text="The HTTP status this item would have answered alone.")
    replayed = serializers.BooleanField(help_text="The first answer to this key, replayed.")
    redemption = RedemptionSerializer(required=False, help_text="When the item succeeded (status 201).")
    error = serializers.DictField(required=False, help_text="Problem details, when the item was refused.")


class RedemptionBatchAnswer(serializers.Serializer):
    results = RedemptionBatchResult(many=True)


class ReverseRequest(StrictSerializer):
    """Why the redemption is reversed."""

    reason = StrictCharField(max_length=REASON_LENGTH_MAX)


class DisputeRequest(StrictSerializer):
    """Why the enterprise disputes the bill."""

    reason = StrictCharField(max_length=REASON_LENGTH_MAX)


class ResolveDisputeRequest(StrictSerializer):
    """The reviewer's decision on a dispute, and why."""

    decision = serializers.ChoiceField(
        choices=[DECISION_UPHOLD, DECISION_DISMISS],
        help_text="uphold: the redemption is reversed at once; dismiss: the bill stands and may be settled.",
    )
    note = StrictCharField(max_length=REASON_LENGTH_MAX)


class RedemptionFilter(django_filters.FilterSet):
    program = django_filters.CharFilter(field_name="grant__year__program_id", help_text="A program's slug.")
    year = IntegerFilter(field_name="grant__year__year")
    enterprise = IntegerFilter(field_name="grant__enterprise_id")
    # Plain numbers, not choices, so a filter never reveals which ids exist.
    provider = IntegerFilter(field_name="provider_id")
    grant = IntegerFilter(field_name="grant_id")

    class Meta:
        model = Redemption
        fields = ["status", "acknowledgement", "program", "year", "enterprise", "provider", "grant"]


# --- Helpers --------------------------------------------------------------------------------------


def _require_provider_member(user: User) -> None:
    """Only a computing center's members (its API keys included) redeem; the service checks which."""
    if user.provider_id is None:
        raise PermissionDenied("This action needs a member of the computing center.")


def _grant(user: User, pk: int) -> Grant:
    grant = grants_visible_to(user).filter(pk=pk).first()
    if grant is None:
        raise NotFound(f"No grant {pk} among yours.")
    return grant


def _redemption(user: User, pk: int) -> Redemption:
    redemption = redemptions_visible_to(user).filter(pk=pk).first()
    if redemption is None:
        raise NotFound(f"No redemption {pk} among yours.")
    return redemption


def _redeem(user: User, body: Any, now: dt.datetime | None = None) -> Response:
    """One redemption, as POST /redemptions/ or one batch item: check, look up in scope, redeem."""
    data = validated(RedeemRequest, body)
    # The grant by id: the service answers 404 for one that is not the caller's provider's.
    redemption = redemption_create(actor=user, now=now, **data)
    return Response(RedemptionSerializer(redemption).data, status=status.HTTP_201_CREATED)


def _answer(user: User, pk: int) -> Response:
    return Response(RedemptionSerializer(_redemption(user, pk)).data)


# --- Views ----------------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        summary="List redemptions",
        description="Staff see every redemption; an enterprise those of its grants; a provider its own.",
        tags=["redemptions"],
    )
)
class RedemptionListCreate(ListFromReplica, ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = RedemptionSerializer
    scoped_model = Redemption
    scope = staticmethod(redemptions_visible_to)
    filterset_class = RedemptionFilter
    ordering_fields = ["id", "created_at", "bill_amount_fen", "coupon_fen"]
    ordering = ["id"]

    @extend_schema(
        request=RedeemRequest,
        responses={201: RedemptionSerializer},
        parameters=[idempotency_key_parameter(required=True)],
        summary="Redeem a grant against a bill (provider)",
        description=(
            "The coupon is min(floor(bill × rate), what is left on the grant, requested_fen). It is held "
            "(`pending`) until captured or voided, or posted at once with `capture: true`. The bill's invoice is "
            "uploaded first (`POST /documents/`, kind `invoice`) and named here with its number; the enterprise "
            "may then read it. A voided or expired hold frees its invoice; a reversal does not. " + REFUSALS
        ),
        tags=["redemptions"],
        examples=[
            OpenApiExample(
                "Redeem and capture",
                value={
                    "grant": 12,
                    "bill_number": "BILL-2026-0001",
                    "bill_amount_fen": 1_000_000,
                    "invoice_number": "26332000000012345678",
                    "invoice_document": 31,
                    "capture": True,
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        user = caller(request)
        _require_provider_member(user)
        return self._create(request)

    @idempotent(required=True)
    def _create(self, request: Request) -> Response:
        return _redeem(caller(request), request.data)


@extend_schema_view(
    get=extend_schema(
        summary="Read a redemption",
        description="Outside the caller's reach it is 404.",
        tags=["redemptions"],
    )
)
class RedemptionDetail(ScopedQuerysetMixin, generics.RetrieveAPIView):
    serializer_class = RedemptionSerializer
    scoped_model = Redemption
    scope = staticmethod(redemptions_visible_to)


class RedemptionBatch(APIView):
    @extend_schema(
        request=RedemptionBatchRequest,
        responses={200: RedemptionBatchAnswer},
        summary="Redeem many bills at once (provider)",
        description=(
            f"1 to {settings.API_BATCH_SIZE_MAX} items, each a POST /redemptions/ body with its own "
            "`idempotency_key`. Each item runs on its own: its result carries the status it would have "
            "answered alone and the redemption or the problem details, in request order. A malformed "
            "envelope (not a list, too many items, an item without a key, a key twice) is 400 for the "
            "whole request, and nothing runs. " + REFUSALS
        ),
        tags=["redemptions"],
        examples=[
            OpenApiExample(
                "Two bills",
                value={
                    "items": [
                        {
                            "idempotency_key": "bill-1",
                            "grant": 12,
                            "bill_number": "BILL-1",
                            "bill_amount_fen": 50_000,
                            "invoice_number": "26332000000012345678",
                            "invoice_document": 31,
                        },
                        {
                            "idempotency_key": "bill-2",
                            "grant": 12,
                            "bill_number": "BILL-2",
                            "bill_amount_fen": 80_000,
                            "invoice_number": "033002100611-12345678",
                            "invoice_document": 32,
                            "invoice_amount_fen": 90_000,
                            "capture": True,
                        },
                    ]
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        user = caller(request)
        _require_provider_member(user)
        items = validated(RedemptionBatchRequest, request.data)["items"]
        # The fingerprint of an item is that of POST /redemptions/ with the same body.
        single_path = reverse("redemption-list")
        context = {"request": request, "view": self}
        results = []
        now = timezone.now()
        with transaction.atomic():  # One transaction and one commit for the batch.
            # The items' keys before the grants: a single POST takes its key's turn before its grant.
            idempotency_keys_lock(user=user, keys=[item["idempotency_key"] for item in items])
            redemptions_batch_prepare(
                grant_ids=[item.get("grant") for item in items],
                document_ids=[item.get("invoice_document") for item in items],
                actor=user,
                now=now,
            )
            for item in items:
                results.append(self._item(user, item, single_path, now, context))
        return Response({"results": results})

    def _item(
        self, user: User, item: dict[str, Any], single_path: str, now: dt.datetime, context: dict[str, Any]
    ) -> dict[str, Any]:
        """One item, as its own POST /redemptions/ would answer it (its writes are undone by its own
        savepoint if it is refused)."""
        key = item.pop("idempotency_key")
        response = self._run(
            user=user,
            key=key,
            path=single_path,
            body=item,
            call=functools.partial(_redeem, user, item, now),
            context=context,
        )
        outcome = "redemption" if response.status_code < 400 else "error"
        return {
            "idempotency_key": key,
            "status": response.status_code,
            "replayed": is_replay(response),
            outcome: response.data,
        }

    @staticmethod
    def _run(
        *, user: User, key: str, path: str, body: dict[str, Any], call: Callable[[], Response], context: dict[str, Any]
    ) -> Response:
        try:
            return idempotent_call(
                user=user,
                key=key,
                method="POST",
                path=path,
                fingerprint=body_hash(method="POST", path=path, body=body),
                call=call,
                context=context,
                savepoint=False,
            )
        except IdempotencyKeyReused as error:  # The key was first used for another request: this item's answer.
            rendered = exception_handler(error, context)
            assert rendered is not None
            return rendered


class RedemptionCapture(APIView):
    @extend_schema(
        request=None,
        responses={200: RedemptionSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Capture a held redemption (its provider)",
        description="Posts the held coupon to the provider. 409 `invalid_state` unless the redemption is pending.",
        tags=["redemptions"],
    )
    @idempotent(required=False)
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        redemption = _redemption(user, pk)
        validated(EmptyRequest, request.data)
        redemption_capture(redemption=redemption, actor=user)
        return _answer(user, pk)


class RedemptionVoid(APIView):
    @extend_schema(
        request=None,
        responses={200: RedemptionSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Void a held redemption (its provider)",
        description="Releases the hold back to the grant. 409 `invalid_state` unless the redemption is pending.",
        tags=["redemptions"],
    )
    @idempotent(required=False)
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        redemption = _redemption(user, pk)
        validated(EmptyRequest, request.data)
        redemption_void(redemption=redemption, actor=user)
        return _answer(user, pk)


class RedemptionReverse(APIView):
    @extend_schema(
        request=ReverseRequest,
        responses={202: ApprovalRequestSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Ask for a captured redemption's reversal (reviewer or approver)",
        description=(
            "Answers 202 with an approval request (action `redemption_reverse`); the redemption is reversed only "
            "when a different approver approves it at `POST /approval-requests/{id}/approve/`. Then the coupon goes "
            "back to the grant (or to the year's lapsed account when the grant can no longer be used); if the "
            "provider was already paid, its next settlement nets it. 409 `invalid_state` unless the redemption is "
            "captured and not awaiting payment, or when a request for it is already pending."
        ),
        tags=["redemptions"],
        examples=[OpenApiExample("Reverse", value={"reason": "The bill was cancelled."}, request_only=True)],
    )
    @idempotent(required=False)
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        redemption = _redemption(user, pk)
        require_role(user, Role.REVIEWER, Role.APPROVER)
        data = validated(ReverseRequest, request.data)
        approval = redemption_reverse_request(redemption=redemption, requester=user, reason=data["reason"])
        return Response(ApprovalRequestSerializer(approval).data, status=status.HTTP_202_ACCEPTED)


class RedemptionAcknowledge(APIView):
    @extend_schema(
        request=None,
        responses={200: RedemptionSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Acknowledge a captured bill (the grant's enterprise)",
        description=(
            "The enterprise confirms the bill within its window (`acknowledge_by`); only acknowledged bills, bills "
            "left unanswered past the window and bills whose dispute was dismissed are settled. Acknowledging a "
            "confirmed bill again answers it unchanged. 409 `invalid_state` unless the redemption is captured, "
            "awaiting acknowledgement, not in a settlement, and its window is open."
        ),
        tags=["redemptions"],
    )
    @idempotent(required=False)
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        redemption = _redemption(user, pk)
        validated(EmptyRequest, request.data)
        redemption_acknowledge(redemption=redemption, actor=user)
        return _answer(user, pk)


class RedemptionDispute(APIView):
    @extend_schema(
        request=DisputeRequest,
        responses={200: RedemptionSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Dispute a captured bill (the grant's enterprise)",
        description=(
            "The enterprise disputes the bill within its window, saying why; a reviewer then upholds the dispute "
            "(the redemption is reversed) or dismisses it (the bill may be settled). A disputed bill is not "
            "settled. 409 `invalid_state` unless the redemption is captured, awaiting acknowledgement, not in a "
            "settlement, and its window is open."
        ),
        tags=["redemptions"],
        examples=[OpenApiExample("Dispute", value={"reason": "We never ran this job."}, request_only=True)],
    )
    @idempotent(required=False)
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        redemption = _redemption(user, pk)
        data = validated(DisputeRequest, request.data)
        redemption_dispute(redemption=redemption, actor=user, reason=data["reason"])
        return _answer(user, pk)


class RedemptionResolveDispute(APIView):
    @extend_schema(
        request=ResolveDisputeRequest,
        responses={200: RedemptionSerializer},
        parameters=[idempotency_key_parameter(required=False)],
        summary="Resolve a disputed bill (reviewer or approver)",
        description=(
            "`uphold` reverses the redemption at once, to the fen, through the same reversal an approved "
            "reversal request runs: the enterprise's dispute is the request and this decision the second "
            "person's, so no approval request is made (`acknowledgement` becomes `upheld`, `status` `reversed`). "
            "`dismiss` lets the bill be settled (`dismissed`). 403 `four_eyes` for the person who disputed; "
            "409 `invalid_state` unless the redemption is disputed and still captured."
        ),
        tags=["redemptions"],
        examples=[
            OpenApiExample(
                "Uphold",
                value={"decision": "uphold", "note": "The center could not show usage logs."},
                request_only=True,
            )
        ],
    )
    @idempotent(required=False)
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        redemption = _redemption(user, pk)
        data = validated(ResolveDisputeRequest, request.data)
        redemption_dispute_resolve(redemption=redemption, actor=user, decision=data["decision"], note=data["note"])
        return _answer(user, pk)


urlpatterns = [
    path("redemptions/", RedemptionListCreate.as_view(), name="redemption-list"),
    path("redemptions/batch/", RedemptionBatch.as_view(), name="redemption-batch"),
    path("redemptions/<int:pk>/", RedemptionDetail.as_view(), name="redemption-detail"),
    path("redemptions/<int:pk>/capture/", RedemptionCapture.as_view(), name="redemption-capture"),
    path("redemptions/<int:pk>/void/", RedemptionVoid.as_view(), name="redemption-void"),
    path("redemptions/<int:pk>/reverse/", RedemptionReverse.as_view(), name="redemption-reverse"),
    path("redemptions/<int:pk>/acknowledge/", RedemptionAcknowledge.as_view(), name="redemption-acknowledge"),
    path("redemptions/<int:pk>/dispute/", RedemptionDispute.as_view(), name="redemption-dispute"),
    path(
        "redemptions/<int:pk>/resolve-dispute/", RedemptionResolveDispute.as_view(), name="redemption-resolve-dispute"
    ),
]
