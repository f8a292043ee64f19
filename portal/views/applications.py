"""One application, seen by whoever may see it, with the actions that person may take on it now.

Four eyes is shown, not only enforced: the page names the reviewer and says whether the person
looking may approve.
"""

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.caller import caller
from accounts.models import Role, User
from config.money import yuan_input_text, yuan_text
from config.replica import reads_from_replica
from coupons.evidence import Cited, cited_documents
from coupons.models import Application
from coupons.selectors.scopes import applications_visible_to
from coupons.services.applications import (
    application_approve,
    application_confirm,
    application_reject,
    application_review,
    application_withdraw,
)
from portal import access
from portal.forms import ApproveForm, ReasonForm, ReviewForm
from portal.views.common import attempt, page_of

S = Application.Status


def _application(user: User, pk: int) -> Application:
    queryset = applications_visible_to(user).select_related(
        "enterprise", "provider", "reviewed_by", "approved_by", "confirmed_by", "submitted_by", "rejected_by"
    )
    return get_object_or_404(queryset, pk=pk)


def actions_for(user: User, application: Application) -> dict[str, bool]:
    """Which actions this person may take on the application now (the services decide again)."""
    status = application.status
    is_reviewer, is_approver = user.has_role(Role.REVIEWER), user.has_role(Role.APPROVER)
    return {
        "withdraw": user.enterprise_id == application.enterprise_id
        and status in (S.SUBMITTED, S.CONFIRMED, S.REVIEWED),
        "confirm": user.provider_id == application.provider_id and status == S.SUBMITTED,
        "review": is_reviewer and status == S.CONFIRMED,
        "approve": is_approver and status == S.REVIEWED and application.reviewed_by_id != user.pk,
        "four_eyes_blocked": is_approver and status == S.REVIEWED and application.reviewed_by_id == user.pk,
        "reject": (is_reviewer or is_approver) and status in (S.CONFIRMED, S.REVIEWED),
    }


def _documents(application: Application) -> list[Cited]:
    return cited_documents(subject=f"application:{application.pk}", enterprise_id=application.enterprise_id)


def _review_form(application: Application, documents: list[Cited], data: Any = None) -> ReviewForm:
    return ReviewForm(
        data,
        documents=[cited.document.pk for cited in documents],
        contract=application.contract_document_id,
        initial={"recommended": yuan_input_text(application.requested_fen)},
    )


def _detail_context(user: User, application: Application, **forms: Any) -> dict[str, Any]:
    documents = _documents(application)
    return {
        "application": application,
        "events": application.events.select_related("actor").order_by("at", "id"),
        "grant": getattr(application, "grant", None),
        "can": actions_for(user, application),
        "documents": documents,
        "shared_warning": any(cited.shared_with_other_enterprise for cited in documents),
        "review_form": forms.get("review_form") or _review_form(application, documents),
        "approve_form": forms.get("approve_form") or ApproveForm(),
        "reject_form": forms.get("reject_form") or ReasonForm(),
    }


@access.signed_in
@reads_from_replica
def application_list(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    queryset = applications_visible_to(user).select_related("enterprise", "provider").order_by("-created_at", "-id")
    status = request.GET.get("status", "")
    if status in S.values:
        queryset = queryset.filter(status=status)
    return render(
        request,
        "portal/applications.html",
        {"page": page_of(request, queryset), "status": status, "statuses": S.values},
    )


@access.signed_in
def application_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = caller(request)
    application = _application(user, pk)
    return render(request, "portal/application.html", _detail_context(user, application))


@require_POST
@access.signed_in
def application_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    user = caller(request)
    application = _application(user, pk)
    if action == "confirm":
        attempt(request, lambda: application_confirm(application=application, actor=user), _("Contract confirmed."))
    elif action == "withdraw":
        attempt(request, lambda: application_withdraw(application=application, actor=user), _("Application withdrawn."))
    elif action == "review":
        review_form = _review_form(application, _documents(application), request.POST)
        if not review_form.is_valid():
            return _invalid(request, user, application, review_form=review_form)
        data = review_form.cleaned_data
        if data["recommended"] > application.requested_fen:
            review_form.add_error(
                "recommended",
                _("At most the amount requested, %(amount)s.") % {"amount": yuan_text(application.requested_fen)},
            )
            return _invalid(request, user, application, review_form=review_form)
        attempt(
            request,
            lambda: application_review(
                application=application,
                actor=user,
                recommended_fen=data["recommended"],
                evidence_checked=data["evidence_checked"],
                note=data["note"],
            ),
            _("Review recorded. A different approver may now approve."),
        )
    elif action == "approve":
        approve_form = ApproveForm(request.POST)
        if not approve_form.is_valid():
            return _invalid(request, user, application, approve_form=approve_form)
        approved = approve_form.cleaned_data.get("approved")
        recommended = application.recommended_fen
        if approved is not None and recommended is not None and approved > recommended:
            approve_form.add_error(
                "approved", _("At most the recommended amount, %(amount)s.") % {"amount": yuan_text(recommended)}
            )
            return _invalid(request, user, application, approve_form=approve_form)
        done = attempt(
            request,
            lambda: application_approve(application=application, actor=user, approved_fen=approved),
            _("Approved: the coupon is issued."),
        )
        if done is None:
            # Keep what the approver typed: the refusal (pool or cap) says what is left.
            return _invalid(request, user, _application(user, pk), approve_form=approve_form)
    elif action == "reject":
        reject_form = ReasonForm(request.POST)
        if not reject_form.is_valid():
            return _invalid(request, user, application, reject_form=reject_form)
        reason = reject_form.cleaned_data["reason"]
        attempt(
            request,
            lambda: application_reject(application=application, actor=user, reason=reason),
            _("Application rejected."),
        )
    else:
        raise Http404("No such action.")
    return redirect("portal:application", pk=pk)


def _invalid(request: HttpRequest, user: User, application: Application, **forms: Any) -> HttpResponse:
    """The page again with the person's input and what is wrong with it (400: nothing was changed)."""
    return render(request, "portal/application.html", _detail_context(user, application, **forms), status=400)
