"""The fund administrators' pages: the review queue, enterprises, computing centers and related
parties, grants, cap overrides, audits and alerts."""

from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.caller import caller
from accounts.models import (
    ENTERPRISE_FLAGS,
    Enterprise,
    ModelFiling,
    Provider,
    ProviderChange,
    RelatedParty,
    Role,
)
from accounts.selectors import provider_changes_pending
from accounts.services import (
    enterprise_suspend,
    enterprise_verify,
    model_filing_record,
    model_filing_verify,
    provider_change_request,
    provider_create,
    related_party_add,
)
from config.errors import ApplicationError
from config.replica import reads_from_replica
from coupons.models import Application, AuditRun, CapOverride, Grant
from coupons.selectors.scopes import alerts_visible_to, applications_visible_to, program_default_for
from coupons.services.audit import audit_run_start
from coupons.services.grants import grant_revoke_request
from coupons.services.years import cap_override_request, program_year_current
from portal import access
from portal.errors import describe
from portal.forms import CapOverrideForm, ClaimForm, ModelFilingForm, ProviderForm, ReasonForm, RelatedPartyForm
from portal.queries import grants_for
from portal.views.claims import may_claim
from portal.views.common import attempt, attempt_with, back, page_of
from portal.words import WORDS

A = Application.Status
PROVIDER_CHANGES_SHOWN = 200


@access.role(Role.REVIEWER, Role.APPROVER)
@reads_from_replica
def review_queue(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    queryset = applications_visible_to(user).select_related("enterprise", "provider", "reviewed_by")
    context = {
        "to_review": queryset.filter(status=A.CONFIRMED).order_by("updated_at", "id"),
        "to_approve": queryset.filter(status=A.REVIEWED).order_by("updated_at", "id"),
        "awaiting_provider": queryset.filter(status=A.SUBMITTED).count(),
        "is_reviewer": user.has_role(Role.REVIEWER),
        "is_approver": user.has_role(Role.APPROVER),
    }
    return render(request, "portal/review_queue.html", context)


@access.staff
@reads_from_replica
def enterprise_list(request: HttpRequest) -> HttpResponse:
    queryset = Enterprise.objects.order_by("status", "name")
    status = request.GET.get("status", "")
    if status in Enterprise.Status.values:
        queryset = queryset.filter(status=status)
    search = request.GET.get("q", "").replace("\x00", "").strip()[:100]  # PostgreSQL text holds no NUL
    if search:
        queryset = queryset.filter(Q(name__icontains=search) | Q(uscc__icontains=search))
    user = caller(request)
    context = {
        "page": page_of(request, queryset),
        "status": status,
        "q": search,
        "statuses": Enterprise.Status.values,
        "can_verify": user.has_role(Role.REVIEWER),
    }
    return render(request, "portal/enterprises.html", context)


@require_POST
@access.role(Role.REVIEWER)
def enterprise_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    user = caller(request)
    enterprise = get_object_or_404(Enterprise, pk=pk)
    if action == "verify":
        # The form shows a box for each flag the enterprise declared: ticked confirms it, unticked
        # does not (it then counts as false). Flags it did not declare are left as staff last said.
        flags = {name: request.POST.get(name) == "on" for name in ENTERPRISE_FLAGS if getattr(enterprise, name)}
        attempt(
            request,
            lambda: enterprise_verify(enterprise=enterprise, actor=user, flags=flags),
            _("%(name)s verified.") % {"name": enterprise.name},
        )
    elif action == "suspend":
        attempt(
            request,
            lambda: enterprise_suspend(enterprise=enterprise, actor=user),
            _("%(name)s suspended.") % {"name": enterprise.name},
        )
    else:
        raise Http404("No such action.")
    return back(request, "portal:enterprises")


@access.staff
def provider_list(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    provider_form = ProviderForm(request.POST or None, prefix="provider") if user.is_superuser else None
    party_form = (
        RelatedPartyForm(request.POST or None, prefix="party")
        if user.has_role(Role.REVIEWER) or user.has_role(Role.APPROVER)
        else None
    )
    status = 200
    if request.method == "POST":
        which = request.POST.get("form")
        if which == "provider" and provider_form is not None:
            if provider_form.is_valid():
                data = provider_form.cleaned_data
                try:
                    provider_create(
                        name=data["name"],
                        uscc=data["uscc"].upper(),
                        listing=data["listing"],
                        facilities=provider_form.facilities(),
                        actor=user,
                    )
                except ApplicationError as error:
                    provider_form.add_error(None, describe(error))
                else:
                    messages.success(request, _("Computing center listed."))
                    return redirect("portal:providers")
            status = 400
            party_form = RelatedPartyForm(prefix="party") if party_form is not None else None
        elif which == "party" and party_form is not None:
            if party_form.is_valid():
                data = party_form.cleaned_data
                try:
                    related_party_add(
                        uscc_a=data["uscc_a"].upper(), uscc_b=data["uscc_b"].upper(), note=data["note"], actor=user
                    )
                except ApplicationError as error:
                    party_form.add_error(None, describe(error))
                else:
                    messages.success(request, _("Related parties recorded."))
                    return redirect("portal:providers")
            status = 400
            provider_form = ProviderForm(prefix="provider") if provider_form is not None else None
        else:
            return redirect("portal:providers")
    pending = provider_changes_pending()
    context = {
        "providers": [
            (provider, pending.get(provider.pk))
            for provider in Provider.objects.order_by("name").prefetch_related("facilities")
        ],
        "changes": ProviderChange.objects.select_related("provider", "requested_by", "decided_by").order_by(
            "-at", "-id"
        )[:PROVIDER_CHANGES_SHOWN],
        "parties": RelatedParty.objects.select_related("created_by").order_by("-created_at")[:200],
        "provider_form": provider_form,
        "party_form": party_form,
        "can_list": user.is_superuser,
        "reason_form": ReasonForm(),
    }
    return render(request, "portal/providers.html", context, status=status)


@require_POST
@access.superuser
def provider_status(request: HttpRequest, pk: int, status: str) -> HttpResponse:
    """Suspend or reinstate: asks for an approval (a listed center changes by maker-checker)."""
    user = caller(request)
    provider = get_object_or_404(Provider, pk=pk)
    if status not in Provider.Status.values:
        raise Http404("No such status.")
    attempt_with(
        request,
        ReasonForm(request.POST),
        lambda data: provider_change_request(
            provider=provider, changes={"status": status}, reason=data["reason"], requester=user
        ),
        _(
            "Asked for approval: %(name)s to become %(status)s. Nothing changes until an approver (not you) "
            "approves it under Approval requests."
        )
        % {"name": provider.name, "status": WORDS[status]},
    )
    return redirect("portal:providers")


@access.staff
@reads_from_replica
def grant_list(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    queryset = grants_for(user).order_by("-issued_at", "-id")
    status = request.GET.get("status", "")
    if status in Grant.Status.values:
        queryset = queryset.filter(status=status)
    return render(
        request,
        "portal/grants.html",
        {"page": page_of(request, queryset), "status": status, "statuses": Grant.Status.values},
    )


@access.signed_in
def grant_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = caller(request)
    grant = get_object_or_404(grants_for(user), pk=pk)
    context = {
        "grant": grant,
        "redemptions": grant.redemptions.order_by("-created_at", "-id")[:200],
        "claims": grant.claims.select_related("decided_by").order_by("-created_at", "-id")[:200],
        "claim_form": ClaimForm() if may_claim(user, grant) else None,
        "can_revoke": (user.has_role(Role.REVIEWER) or user.has_role(Role.APPROVER))
        and grant.status == Grant.Status.ACTIVE,
        "revoke_form": ReasonForm(),
    }
    return render(request, "portal/grant.html", context)


@require_POST
@access.role(Role.REVIEWER, Role.APPROVER)
def grant_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = caller(request)
    grant = get_object_or_404(grants_for(user), pk=pk)
    attempt_with(
        request,
        ReasonForm(request.POST),
        lambda data: grant_revoke_request(grant=grant, requester=user, reason=data["reason"]),
        _("Revocation requested: it is done when a different approver approves it under Approval requests."),
    )
    return redirect("portal:grant", pk=pk)


@access.role(Role.REVIEWER, Role.APPROVER)
def cap_overrides(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    form = CapOverrideForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                program = program_default_for(user)
                cap_override_request(
                    year=program_year_current(program=program).year,
                    program=program,
                    enterprise=data["enterprise"],
                    cap_fen=data["cap"],
                    reason=data["reason"],
                    requester=user,
                )
            except ApplicationError as error:
                form.add_error(None, describe(error))
            else:
                messages.success(
                    request, _("Cap override requested: it takes effect when a different approver approves it.")
                )
                return redirect("portal:approval_requests")
        status = 400
    overrides = CapOverride.objects.select_related("enterprise", "requested_by", "granted_by", "year").order_by(
        "-created_at"
    )
    if user.program_limit is not None:
        overrides = overrides.filter(year__program_id__in=sorted(user.program_limit))
    return render(request, "portal/cap_overrides.html", {"form": form, "overrides": overrides[:200]}, status=status)


@access.role_in_every_program(Role.AUDITOR)
@reads_from_replica
def audits(request: HttpRequest) -> HttpResponse:
    runs = AuditRun.objects.select_related("started_by").order_by("-started_at", "-id")
    latest = runs.first()
    return render(request, "portal/audits.html", {"latest": latest, "page": page_of(request, runs)})


@require_POST
@access.role_in_every_program(Role.AUDITOR)
def audit_run_now(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    run = audit_run_start(started_by=user)
    messages.success(request, _("Audit %(id)s started. Reload this page to see its result.") % {"id": run.pk})
    return redirect("portal:audit", pk=run.pk)


@access.role_in_every_program(Role.AUDITOR)
def audit_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(AuditRun.objects.select_related("started_by"), pk=pk)
    return render(request, "portal/audit.html", {"run": run})


@access.staff
@reads_from_replica
def alerts(request: HttpRequest) -> HttpResponse:
    queryset = alerts_visible_to(caller(request)).order_by("-created_at", "-id")
    return render(request, "portal/alerts.html", {"page": page_of(request, queryset)})


@access.staff
def model_filings(request: HttpRequest) -> HttpResponse:
    """The register of filed (经备案) models: reviewers record them and verify them against the
    CAC's list; only a verified filing gives an application the registered-model rate."""
    user = caller(request)
    can_record = user.has_role(Role.REVIEWER)
    form = ModelFilingForm(request.POST or None) if can_record else None
    status = 200
    if request.method == "POST":
        if form is None:
            raise Http404("Only reviewers record filings.")
        if form.is_valid():
            try:
                model_filing_record(actor=user, **form.cleaned_data)
            except ApplicationError as error:
                form.add_error(None, describe(error))
            else:
                messages.success(request, _("Filing recorded. Verify it against the CAC's list before it counts."))
                return redirect("portal:model_filings")
        status = 400
    filings = ModelFiling.objects.select_related("recorded_by", "verified_by").order_by("-recorded_at", "-id")
    context = {"form": form, "page": page_of(request, filings), "can_verify": can_record}
    return render(request, "portal/model_filings.html", context, status=status)


@require_POST
@access.role(Role.REVIEWER)
def model_filing_verify_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = caller(request)
    filing = get_object_or_404(ModelFiling, pk=pk)
    attempt(
        request,
        lambda: model_filing_verify(filing=filing, actor=user),
        _("Filing %(number)s verified.") % {"number": filing.filing_number},
    )
    return back(request, "portal:model_filings")
