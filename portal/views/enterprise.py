"""The enterprise's pages: its overview (with the bills awaiting its acknowledgement), the apply
form with a live preview, its redemptions."""

from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters

from accounts.caller import caller
from accounts.models import Enterprise, User, listing_day
from accounts.services import enterprise_flags_declare, enterprise_register
from config.errors import ApplicationError, ValidationFailed
from coupons.models import DEFAULT_PROGRAM, Application, ProgramYear, Redemption
from coupons.selectors import enterprise_cap_use
from coupons.selectors.scopes import applications_visible_to, redemptions_visible_to
from coupons.services.applications import application_pricing_day, application_submit, application_terms
from coupons.services.years import program_year_current
from evidence.models import Kind
from portal import access
from portal.errors import describe
from portal.forms import ApplyForm, FlagsForm, RegisterForm, program_slug
from portal.queries import grants_for
from portal.uploads import UploadRefused, files_kept_only_if_committed, upload

PENDING_STATUSES = ("submitted", "confirmed", "reviewed")


def _current_year(program: str = DEFAULT_PROGRAM) -> ProgramYear | None:
    try:
        return program_year_current(program=program)
    except ApplicationError:
        return None


@access.enterprise_member
def enterprise_home(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    assert user.enterprise_id is not None
    year = _current_year()
    applications = applications_visible_to(user).select_related("provider").order_by("-created_at", "-id")
    context = {
        "enterprise": user.enterprise,
        "year": year,
        "cap": enterprise_cap_use(enterprise_id=user.enterprise_id, program_year=year) if year else None,
        "grants": grants_for(user).order_by("-issued_at", "-id"),
        "pending": applications.filter(status__in=PENDING_STATUSES),
        # Captured bills still in their window: the enterprise acknowledges or disputes each.
        "bills_awaiting": redemptions_visible_to(user)
        .filter(
            status=Redemption.Status.CAPTURED,
            acknowledgement=Redemption.Acknowledgement.AWAITING,
            acknowledge_by__gt=timezone.now(),
        )
        .select_related("grant", "provider")
        .order_by("acknowledge_by", "id"),
        "recent": applications.exclude(status__in=PENDING_STATUSES)[:20],
    }
    return render(request, "portal/enterprise_home.html", context)


def _preview(user: User, form: ApplyForm) -> dict[str, object] | None:
    """The rate and eligible amount the entered contract would get, or None when it cannot be told yet."""
    data = form.cleaned_data
    if not all(data.get(name) for name in ("contract_fee", "compute_source", "purpose")):
        return None
    year = _current_year(program_slug(data))
    if year is None:
        return None
    assert user.enterprise_id is not None
    enterprise = Enterprise.objects.get(pk=user.enterprise_id)
    rate, eligible_fen = application_terms(
        enterprise=enterprise,
        year=year,
        contract_fee_fen=data["contract_fee"],
        compute_source=data["compute_source"],
        purpose=data["purpose"],
        priced_on=application_pricing_day(
            year=year, submitted_on=listing_day(), contract_signed_on=data.get("contract_signed_on")
        ),
        model_filing_number=data.get("model_filing_number") or "",
    )
    requested = data.get("requested")
    return {
        "rate_bp": rate.rate_bp,
        "rule": rate.label,
        "eligible_fen": eligible_fen,
        "requested_fen": requested if requested is not None else eligible_fen,
        "too_much": requested is not None and requested > eligible_fen,
        "year": year.year,
        "program": year.program.name,
    }


@access.enterprise_member
def apply(request: HttpRequest) -> HttpResponse:
    """The apply form. With htmx the preview follows the typing; without it, the Preview button
    (or any refused submission) shows the same preview, and nothing is written until Submit."""
    user = caller(request)
    form = ApplyForm(request.POST or None, request.FILES or None)
    preview = None
    if request.method == "POST":
        valid = form.is_valid()
        preview = _preview_or_none(user, form)
        if valid and preview and preview["too_much"]:
            form.add_error("requested", _("At most the eligible amount may be requested."))
        elif valid and "preview" not in request.POST:
            try:
                application = _submit_with_documents(user, form.cleaned_data)
            except UploadRefused as refused:
                form.add_error(refused.field, describe(refused.error))
            except ApplicationError as error:
                form.add_error(_form_field(error), describe(error))
            else:
                messages.success(request, _("Application submitted. The computing center will confirm the contract."))
                return redirect("portal:application", pk=application.pk)
    context = {"form": form, "preview": preview, "year": _current_year()}
    return render(request, "portal/apply.html", context, status=400 if form.errors else 200)


# The form's field for each of the service's, so a refusal is shown beside the input it is about.
FORM_FIELDS = {
    "contract_document": "contract_file",
    "filing_certificate_document": "filing_certificate_file",
    "documents": "more_files",
    "contract_signed_on": "contract_signed_on",
    "contract_term_months": "contract_term_months",
}


def _form_field(error: ApplicationError) -> str | None:
    if isinstance(error, ValidationFailed):
        for name in error.errors:
            if name in FORM_FIELDS:
                return FORM_FIELDS[name]
    return None


def _submit_with_documents(user: User, data: dict[str, Any]) -> Application:
    """Upload the files and submit in one transaction: a refused application leaves no document row,
    and no file in storage either (`files_kept_only_if_committed`)."""
    with files_kept_only_if_committed(), transaction.atomic():
        certificate_file = data.get("filing_certificate_file")
        return application_submit(
            actor=user,
            program=program_slug(data),
            provider=data["provider"],
            contract_number=data["contract_number"],
            contract_fee_fen=data["contract_fee"],
            compute_source=data["compute_source"],
            purpose=data["purpose"],
            requested_fen=data.get("requested"),
            model_filing_number=data.get("model_filing_number") or "",
            contract_document=upload(user, Kind.CONTRACT, data["contract_file"], "contract_file"),
            contract_signed_on=data["contract_signed_on"],
            contract_term_months=data["contract_term_months"],
            documents=[upload(user, Kind.OTHER, file, "more_files") for file in data.get("more_files") or []],
            filing_certificate_document=(
                upload(user, Kind.FILING_CERTIFICATE, certificate_file, "filing_certificate_file")
                if certificate_file
                else None
            ),
        )


def _preview_or_none(user: User, form: ApplyForm) -> dict[str, object] | None:
    try:
        return _preview(user, form)
    except ApplicationError:
        return None


@access.enterprise_member
def apply_preview(request: HttpRequest) -> HttpResponse:
    """The preview box alone, for htmx: recomputed as the person types, nothing written."""
    user = caller(request)
    form = ApplyForm(request.GET)
    form.is_valid()  # Only the fields that are valid so far are in cleaned_data.
    preview = _preview_or_none(user, form)
    return render(request, "portal/_apply_preview.html", {"preview": preview, "form": form})


@sensitive_post_parameters("password", "password_again")
def register(request: HttpRequest) -> HttpResponse:
    """An enterprise registers with its first member (anyone may); it is pending until a reviewer
    verifies it. The new member is signed in and sees that on the overview."""
    if request.user.is_authenticated:
        return redirect("portal:home")
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user, enterprise = enterprise_register(
                username=data["username"],
                password=data["password"],
                email=data["email"],
                name=data["name"],
                uscc=data["uscc"],
                has_registered_model=data["has_registered_model"],
                model_filing_number=data["model_filing_number"],
                foundation_model_developer=data["foundation_model_developer"],
                small_or_medium=data["small_or_medium"],
            )
        except ApplicationError as error:
            form.add_error(None, describe(error))
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(
                request,
                _("%(name)s is registered. A reviewer will verify it; then you may apply for coupons.")
                % {"name": enterprise.name},
            )
            return redirect("portal:enterprise_home")
    return render(request, "portal/register.html", {"form": form}, status=400 if form.errors else 200)


@access.enterprise_member
def enterprise_flags(request: HttpRequest) -> HttpResponse:
    """What the enterprise declares about itself, and what the fund's staff confirmed of it. A
    change counts only once a reviewer confirms it again; coupons already granted keep their rate."""
    user = caller(request)
    assert user.enterprise_id is not None
    enterprise = Enterprise.objects.get(pk=user.enterprise_id)
    initial = {name: getattr(enterprise, name) for name in FlagsForm.base_fields}
    form = FlagsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            enterprise_flags_declare(enterprise=enterprise, actor=user, **form.cleaned_data)
        except ApplicationError as error:
            form.add_error(None, describe(error))
        else:
            messages.success(request, _("Saved. A reviewer will confirm what changed before it counts."))
            return redirect("portal:enterprise_flags")
    context = {"form": form, "enterprise": enterprise}
    return render(request, "portal/enterprise_flags.html", context, status=400 if form.errors else 200)
