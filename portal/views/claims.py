"""Claims (enterprise reimbursement, 事后兑现): the enterprise claims on its coupon's page with the
invoice and the proof of payment; everyone reads the claims in their scope (an enterprise its own, a
computing center those on its coupons, staff all); reviewers approve or reject them beside the
documents."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.caller import caller
from accounts.models import Role, User
from config.replica import reads_from_replica
from coupons.models import Claim, Grant, ProgramYear
from coupons.selectors.scopes import claims_visible_to
from coupons.services.claims import claim_approve, claim_reject, claim_submit
from evidence.errors import DocumentTooLarge
from evidence.models import Kind
from evidence.services import document_size_max, document_upload
from portal import access
from portal.forms import ClaimForm, OptionalReasonForm, ReasonForm
from portal.queries import grants_for
from portal.views.common import attempt, attempt_with, form_refused, page_of


def may_claim(user: User, grant: Grant) -> bool:
    """The grant's enterprise claims on it while it is active in a year of enterprise reimbursement."""
    return (
        user.enterprise_id == grant.enterprise_id
        and grant.status == Grant.Status.ACTIVE
        and grant.year.redemption_mode == ProgramYear.RedemptionMode.ENTERPRISE_REIMBURSEMENT
    )


def _uploaded(user: User, upload: object, kind: str) -> int:
    """Store one uploaded file as the enterprise's document of `kind`; its id."""
    size = getattr(upload, "size", None)
    if size is not None and size > document_size_max():
        raise DocumentTooLarge(
            f"The file has {size} bytes; at most {document_size_max()} are accepted.", size_max=document_size_max()
        )
    data = upload.read()  # type: ignore[attr-defined]
    return document_upload(actor=user, kind=kind, data=data, name=getattr(upload, "name", "")).document.pk


@require_POST
@access.enterprise_member
def claim_create(request: HttpRequest, pk: int) -> HttpResponse:
    user = caller(request)
    grant = get_object_or_404(grants_for(user), pk=pk)
    form = ClaimForm(request.POST, request.FILES)
    if not form.is_valid():
        form_refused(request, form)
        return redirect("portal:grant", pk=pk)
    data = form.cleaned_data
    made = attempt(
        request,
        lambda: claim_submit(
            grant=grant,
            actor=user,
            invoice_number=data["invoice_number"],
            invoice_document=_uploaded(user, data["invoice_file"], Kind.INVOICE),
            payment_proof_document=_uploaded(user, data["payment_proof_file"], Kind.PAYMENT_PROOF),
            bill_amount_fen=data["bill_amount"],
            requested_fen=data.get("requested"),
        ),
        _("Claim submitted: a reviewer checks the invoice and the proof of payment."),
    )
    return redirect("portal:claims") if made is not None else redirect("portal:grant", pk=pk)


@access.signed_in
@reads_from_replica
def claim_list(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    queryset = claims_visible_to(user).select_related(
        "grant__enterprise", "grant__provider", "grant__application", "decided_by"
    )
    is_reviewer = user.has_role(Role.REVIEWER)
    # Reviewers start from what waits for them; everyone else from all their claims.
    status = request.GET.get("status", Claim.Status.SUBMITTED if is_reviewer else "")
    if status in Claim.Status.values:
        queryset = queryset.filter(status=status)
    ordering = ("created_at", "id") if status == Claim.Status.SUBMITTED else ("-created_at", "-id")
    context = {
        "page": page_of(request, queryset.order_by(*ordering)),
        "status": status,
        "statuses": Claim.Status.values,
        "can_decide": is_reviewer,
        "approve_form": OptionalReasonForm(),
        "reject_form": ReasonForm(),
    }
    return render(request, "portal/claims.html", context)


@require_POST
@access.role(Role.REVIEWER)
def claim_decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    user = caller(request)
    claim = get_object_or_404(claims_visible_to(user), pk=pk)
    if decision == "approve":
        attempt_with(
            request,
            OptionalReasonForm(request.POST),
            lambda data: claim_approve(claim=claim, actor=user, reason=data.get("reason", "")),
            _("Claim approved: the coupon is owed to the enterprise and paid by its next settlement."),
        )
    elif decision == "reject":
        attempt_with(
            request,
            ReasonForm(request.POST),
            lambda data: claim_reject(claim=claim, actor=user, reason=data["reason"]),
            _("Claim rejected: the coupon is back on the grant and the invoice may be claimed again."),
        )
    else:
        return HttpResponse(status=404)
    return redirect("portal:claims")
