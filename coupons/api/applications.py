"""Applications: list, read, submit, confirm, review, approve (issues the grant), reject, withdraw."""

from typing import Any

import django_filters
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.caller import caller
from accounts.models import Provider, Role
from accounts.roles import require_role
from api.filters import IntegerFilter
from api.idempotency import idempotency_key_parameter, idempotent
from api.scoping import ScopedQuerysetMixin
from api.serializers import (
    ID_MAX,
    EmptyRequest,
    FenField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    validated,
)
from config.limits import REASON_LENGTH_MAX
from config.replica import ListFromReplica
from coupons.evidence import cited_documents
from coupons.models import (
    CONTRACT_TERM_MONTHS_CEILING,
    DEFAULT_PROGRAM,
    PROGRAM_SLUG_LENGTH_MAX,
    Application,
    ComputeSource,
    Purpose,
)
from coupons.selectors.scopes import applications_visible_to
from coupons.services.applications import (
    DOCUMENTS_MAX,
    LOAN_RATE_BP_MAX,
    application_approve,
    application_confirm,
    application_reject,
    application_review,
    application_submit,
    application_withdraw,
)
from coupons.services.stacking import application_stacking


class CitedDocumentSerializer(serializers.Serializer):
    """A document the application cites, as the reviewer sees it beside the figures."""

    id = serializers.IntegerField(source="document.pk")
    kind = serializers.CharField(source="document.kind")
    sha256 = serializers.CharField(source="document.file_id", help_text="SHA-256 of the bytes, hex.")
    role = serializers.CharField(help_text="What it proves here: contract, filing_certificate, or its kind.")
    shared_with_other_enterprise = serializers.BooleanField(
        allow_null=True,
        help_text=(
            "Staff only (null for everyone else): the same bytes are cited for another enterprise, so look "
            "before accepting them. Kept from applicants, whom it would tell what another enterprise filed."
        ),
    )


class StackingSerializer(serializers.Serializer):
    """The contract's other programs, for staff (docs/programs.md "Stacking")."""

    programs = serializers.ListField(
        child=serializers.CharField(), help_text="The other programs with a live application for the contract."
    )
    rules = serializers.ListField(
        child=serializers.CharField(), help_text="The stacking rules that join the programs, tightest first."
    )
    ceiling_fen = serializers.IntegerField(
        allow_null=True, help_text="The combined ceiling; null when two of the programs do not stack."
    )
    committed_fen = serializers.IntegerField(
        help_text="What the other programs committed: grants net of revocations, requests still open."
    )
    room_fen = serializers.IntegerField(help_text="What is left of the combined ceiling for this application.")


class ApplicationSerializer(serializers.ModelSerializer):
    program = serializers.CharField(source="program_id", read_only=True, help_text="The program's slug.")
    year = serializers.IntegerField(source="year.year", read_only=True, help_text="The program year.")
    grant = serializers.SerializerMethodField()
    documents = serializers.SerializerMethodField()
    stacking = serializers.SerializerMethodField(
        help_text="Staff only (null for everyone else, and when no other program has a live application for the "
        "contract): the contract's other programs and what is left of their combined ceiling."
    )

    class Meta:
        model = Application
        fields = [
            "id",
            "enterprise",
            "provider",
            "program",
            "year",
            "contract_number",
            "contract_fee_fen",
            "compute_source",
            "purpose",
            "requested_fen",
            "model_filing_number",
            "loan_rate_bp",
            "project_investment_fen",
            "contract_document",
            "contract_signed_on",
            "contract_term_months",
            "filing_certificate_document",
            "documents",
            "evidence_checked",
            "status",
            "rate_bp",
            "eligible_fen",
            "recommended_fen",
            "review_note",
            "reject_reason",
            "reviewed_by",
            "approved_by",
            "grant",
            "stacking",
            "created_at",
        ]
        read_only_fields = fields

    def get_grant(self, application: Application) -> int | None:
        grant = getattr(application, "grant", None)
        return grant.pk if grant is not None else None

    @extend_schema_field(StackingSerializer(allow_null=True))
    def get_stacking(self, application: Application) -> dict[str, Any] | None:
        # Kept from applicants and centers: another enterprise may have named the same contract.
        request = self.context.get("request")
        if request is None or not getattr(request.user, "is_staff_member", False):
            return None
        room = application_stacking(application)
        if room is None:
            return None
        limit = request.user.program_limit
        if limit is not None and not set(room.programs) <= limit:
            return None  # It would tell staff limited to programs about another program's applications.
        return {
            "programs": list(room.programs),
            "rules": list(room.rules),
            "ceiling_fen": room.ceiling_fen,
            "committed_fen": room.committed_fen,
            "room_fen": room.room_fen,
        }

    @extend_schema_field(CitedDocumentSerializer(many=True))
    def get_documents(self, application: Application) -> list[dict[str, Any]]:
        cited = cited_documents(subject=f"application:{application.pk}", enterprise_id=application.enterprise_id)
        data = CitedDocumentSerializer(cited, many=True).data
        request = self.context.get("request")
        if request is None or not getattr(request.user, "is_staff_member", False):
            for item in data:
                item["shared_with_other_enterprise"] = None
        return data  # type: ignore[return-value]


class SubmitRequest(StrictSerializer):
    program = StrictCharField(
        max_length=PROGRAM_SLUG_LENGTH_MAX,
        required=False,
        default=DEFAULT_PROGRAM,
        help_text=f"The program's slug (GET /api/v1/programs/); default {DEFAULT_PROGRAM}. The application "
        "goes to its year open now.",
    )
    provider = StrictIntegerField(min_value=1)
    contract_number = StrictCharField(
        max_length=64,
        help_text=(
            "Compared as folded (NFKC, dashes as `-`, no spaces, upper case); may hold only visible ASCII, "
            'Chinese characters and `〔〕【】` (docs/policy.md, "The contract and the bills").'
        ),
    )
    contract_fee_fen = FenField()
    compute_source = serializers.ChoiceField(choices=ComputeSource.choices)
    purpose = serializers.ChoiceField(choices=Purpose.choices)
    requested_fen = FenField(required=False, help_text="Defaults to the eligible amount.")
    model_filing_number = StrictCharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text=(
            "The CAC filing number of the filed model the work relies on (its own or a third party's). "
            "The registered-model rate applies only when staff have verified this filing in the register."
        ),
    )
    contract_document = StrictIntegerField(
        min_value=1, max_value=ID_MAX, help_text="The signed contract: a document of kind contract you uploaded."
    )
    contract_signed_on = serializers.DateField(help_text="When the contract was signed (YYYY-MM-DD).")
    contract_term_months = StrictIntegerField(
        min_value=1, max_value=CONTRACT_TERM_MONTHS_CEILING, help_text="The contract's term, in months."
    )
    documents = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=ID_MAX),
        max_length=DOCUMENTS_MAX,
        required=False,
        help_text=f"More documents you uploaded (any kind), at most {DOCUMENTS_MAX}.",
    )
    filing_certificate_document = StrictIntegerField(
        min_value=1,
        max_value=ID_MAX,
        required=False,
        help_text="The model filing certificate (kind filing_certificate): required for the registered-model rate "
        "where the program year asks for it.",
    )
    loan_rate_bp = StrictIntegerField(
        min_value=1,
        max_value=LOAN_RATE_BP_MAX,
        required=False,
        help_text="A loan_interest program only (required there): the loan's annual rate in basis points "
        "(450 is 4.5%).",
    )
    project_investment_fen = FenField(
        required=False,
        help_text="A loan_interest program only (required there): the project's total investment in fen.",
    )


class ReviewRequest(StrictSerializer):
    recommended_fen = FenField()
    evidence_checked = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=ID_MAX),
        max_length=DOCUMENTS_MAX + 2,
        help_text="The ids of the documents you checked: at least the contract, only documents the application cites.",
    )
    note = StrictCharField(max_length=REASON_LENGTH_MAX, required=False, allow_blank=True, default="")


class ApproveRequest(StrictSerializer):
    approved_fen = FenField(required=False, help_text="At most the recommended amount; defaults to it.")


class RejectRequest(StrictSerializer):
    reason = StrictCharField(max_length=REASON_LENGTH_MAX)


class ApplicationFilter(django_filters.FilterSet):
    # Plain numbers, not choices: an id outside the caller's reach filters to nothing, where a
    # choice filter would say 400 "not a valid choice" and so reveal which ids exist.
    program = django_filters.CharFilter(field_name="program_id", help_text="A program's slug.")
    year = IntegerFilter(field_name="year__year")
    enterprise = IntegerFilter(field_name="enterprise_id")
    provider = IntegerFilter(field_name="provider_id")

    class Meta:
        model = Application
        fields = ["status", "program", "year", "enterprise", "provider"]


def _application(request: Request, pk: int) -> Application:
    return get_object_or_404(applications_visible_to(caller(request)), pk=pk)


def _answer(request: Request, application: Application) -> Response:
    application.refresh_from_db()
    return Response(ApplicationSerializer(application, context={"request": request}).data)


class ApplicationListCreate(ListFromReplica, ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = ApplicationSerializer
    scoped_model = Application
    scope = staticmethod(applications_visible_to)
    filterset_class = ApplicationFilter
    ordering_fields = ["id", "created_at", "contract_fee_fen"]
    ordering = ["id"]

    @extend_schema(
        request=SubmitRequest,
        responses={201: ApplicationSerializer},
        summary="Apply for coupons",
        description=(
            "The signed contract is required: upload it first (`POST /documents/`, kind `contract`) and name it in "
            "`contract_document`, with `contract_signed_on` and `contract_term_months`. Which contracts count is "
            "the program year's policy (signed within the year, never in the future; a term of at most "
            "`contract_term_months_max`); a document your enterprise did not upload, of the wrong kind, or a "
            "contract outside the policy is 400 `validation_error` naming the field. The computing center may read "
            "the documents cited. "
            "409 `provider_not_listed` when the computing center is suspended or has no facility listed on "
            "the day of submission (Asia/Shanghai); 409 `compute_source_not_offered` when none of its "
            "facilities listed that day offers the `compute_source` asked for (see the provider's `facilities`; "
            "asked only in a `compute_contract` program). "
            "A program's `basis` says what `contract_fee_fen` is: a compute contract's fee, evaluation costs "
            "(`evaluation_costs`) or loan interest paid (`loan_interest`, which needs `loan_rate_bp` and "
            "`project_investment_fen`; any other program refuses them with 400). 403 `not_eligible` (reason "
            "`once_per_enterprise`) when the program is one-time and the enterprise already has a live "
            "application in it. "
            "A contract (the same provider and contract number) with a live application in another program: 409 "
            "`duplicate_contract` when no stacking rule joins the two programs; otherwise `requested_fen` is "
            "lowered to what is left of their combined ceiling (the `submitted` event's note says so), and 409 "
            "`stacking_ceiling` when nothing is left."
        ),
    )
    def post(self, request: Request) -> Response:
        data = validated(SubmitRequest, request.data)
        # Every provider is named in the city's list, so an unknown id is 404 and a suspended
        # provider is refused by the service with 409 provider_not_listed.
        provider = get_object_or_404(Provider, pk=data.pop("provider"))
        application = application_submit(actor=caller(request), provider=provider, **data)
        return Response(ApplicationSerializer(application).data, status=status.HTTP_201_CREATED)


class ApplicationDetail(ScopedQuerysetMixin, generics.RetrieveAPIView):
    serializer_class = ApplicationSerializer
    scoped_model = Application
    scope = staticmethod(applications_visible_to)


class ApplicationConfirm(APIView):
    @extend_schema(request=None, responses={200: ApplicationSerializer}, tags=["applications"])
    def post(self, request: Request, pk: int) -> Response:
        validated(EmptyRequest, request.data)
        return _answer(request, application_confirm(application=_application(request, pk), actor=caller(request)))


class ApplicationReview(APIView):
    @extend_schema(
        request=ReviewRequest,
        responses={200: ApplicationSerializer},
        summary="Review an application (reviewer)",
        description=(
            "Recommends an amount, at most the requested one, and records which documents the reviewer checked "
            "(`evidence_checked`): at least the contract, and only documents the application cites, else 400 "
            "`validation_error`. Each document's `shared_with_other_enterprise` says whether the same bytes are "
            "cited for another enterprise."
        ),
        tags=["applications"],
    )
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        application = _application(request, pk)
        require_role(user, Role.REVIEWER)
        data = validated(ReviewRequest, request.data)
        return _answer(request, application_review(application=application, actor=user, **data))


class ApplicationApprove(APIView):
    @extend_schema(
        request=ApproveRequest,
        responses={200: ApplicationSerializer},
        summary="Approve an application (approver), issuing its grant",
        description=(
            "Issues the grant of `approved_fen` (default: the recommended amount) against the program year's pool "
            "and the enterprise's cap: 409 `pool_exhausted` or `cap_exceeded` when either cannot cover it. A "
            "contract that another program stacking with this one has granted too is granted at most what is "
            "left of their combined ceiling (the grant's `amount_fen` and the `approved` event's note say so), "
            "and 409 `stacking_ceiling` when nothing is left."
        ),
        parameters=[idempotency_key_parameter(required=False)],
        tags=["applications"],
    )
    @idempotent(required=False)
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        application = _application(request, pk)
        require_role(user, Role.APPROVER)
        data = validated(ApproveRequest, request.data)
        return _answer(
            request, application_approve(application=application, actor=user, approved_fen=data.get("approved_fen"))
        )


class ApplicationReject(APIView):
    @extend_schema(request=RejectRequest, responses={200: ApplicationSerializer}, tags=["applications"])
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        application = _application(request, pk)
        require_role(user, Role.REVIEWER, Role.APPROVER)
        data = validated(RejectRequest, request.data)
        return _answer(request, application_reject(application=application, actor=user, reason=data["reason"]))


class ApplicationWithdraw(APIView):
    @extend_schema(request=None, responses={200: ApplicationSerializer}, tags=["applications"])
    def post(self, request: Request, pk: int) -> Response:
        validated(EmptyRequest, request.data)
        return _answer(request, application_withdraw(application=_application(request, pk), actor=caller(request)))


urlpatterns = [
    path("applications/", ApplicationListCreate.as_view(), name="application-list"),
    path("applications/<int:pk>/", ApplicationDetail.as_view(), name="application-detail"),
    path("applications/<int:pk>/confirm/", ApplicationConfirm.as_view(), name="application-confirm"),
    path("applications/<int:pk>/review/", ApplicationReview.as_view(), name="application-review"),
    path("applications/<int:pk>/approve/", ApplicationApprove.as_view(), name="application-approve"),
    path("applications/<int:pk>/reject/", ApplicationReject.as_view(), name="application-reject"),
    path("applications/<int:pk>/withdraw/", ApplicationWithdraw.as_view(), name="application-withdraw"),
]
