"""The sanctions page: the list, and a reviewer's or an approver's request for a new one, which a
different approver decides among the approval requests (four eyes)."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from accounts.caller import caller
from accounts.models import Role, Sanction
from approvals.models import ApprovalRequest
from config.errors import ApplicationError
from coupons.services.sanctions import SANCTION_ACTION, sanction_request
from portal import access
from portal.errors import describe
from portal.forms import SanctionForm
from portal.views.common import page_of


@access.role(Role.REVIEWER, Role.APPROVER)
def sanctions(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    form = SanctionForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                sanction_request(
                    uscc=data["uscc"].upper(),
                    reason=data["reason"],
                    valid_from=data["valid_from"],
                    valid_until=data["valid_until"],
                    requester=user,
                )
            except ApplicationError as error:
                form.add_error(None, describe(error))
            else:
                messages.success(request, _("Sanction requested. A different approver decides it."))
                return redirect("portal:sanctions")
        status = 400
    context = {
        "form": form,
        "pending": ApprovalRequest.objects.filter(action=SANCTION_ACTION, status="pending")
        .select_related("requested_by")
        .order_by("-requested_at")[:200],
        "page": page_of(request, Sanction.objects.select_related("requested_by", "decided_by").order_by("-id")),
    }
    return render(request, "portal/sanctions.html", context, status=status)
