"""Approval requests: what waits for a second person, and their decisions (maker-checker).

Every member of staff sees the list; the approve and reject buttons show only on the requests the
person may decide (`approvals.registry`: the right role, and never their own request). The service
checks all of it again on every decision.
"""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.caller import caller
from accounts.models import User
from approvals.models import ApprovalRequest
from approvals.registry import approval_action
from approvals.selectors import approval_requests_visible_to
from approvals.services import approval_request_approve, approval_request_reject
from config.replica import reads_from_replica
from portal import access
from portal.forms import OptionalReasonForm, ReasonForm
from portal.views.common import attempt_with, page_of

STATUSES = ("pending", "approved", "rejected")


def _may_decide(user: User, request: ApprovalRequest) -> bool:
    return (
        request.status == ApprovalRequest.Status.PENDING
        and request.requested_by_id != user.pk
        and approval_action(request.action).may_decide(user, request)
    )


@access.staff
@reads_from_replica
def approval_request_list(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    status = request.GET.get("status", "pending")
    if status not in STATUSES:
        status = "pending"
    queryset = approval_requests_visible_to(user).filter(status=status).order_by("-requested_at", "-id")
    page = page_of(request, queryset)
    rows = [(item, _may_decide(user, item)) for item in page.object_list]
    context = {
        "page": page,
        "rows": rows,
        "status": status,
        "statuses": STATUSES,
        "approve_form": OptionalReasonForm(),
        "reject_form": ReasonForm(),
    }
    return render(request, "portal/approval_requests.html", context)


@require_POST
@access.staff
def approval_request_decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    user = caller(request)
    get_object_or_404(approval_requests_visible_to(user), pk=pk)
    if decision == "approve":
        attempt_with(
            request,
            OptionalReasonForm(request.POST),
            lambda data: approval_request_approve(request_id=pk, decider=user, reason=data["reason"]),
            _("Approved: the action is done."),
        )
    elif decision == "reject":
        attempt_with(
            request,
            ReasonForm(request.POST),
            lambda data: approval_request_reject(request_id=pk, decider=user, reason=data["reason"]),
            _("Rejected: nothing was done."),
        )
    else:
        raise Http404("No such decision.")
    return redirect("portal:approval_requests")
