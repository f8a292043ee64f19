"""The computing center's pages: contracts to confirm, the manual redeem form, API keys; the
redemptions list every role sees (scoped), with capture, void, reversal, acknowledgement and
dispute where allowed; and the reviewers' list of disputed bills."""

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.caller import caller
from accounts.credentials import api_key_create, api_key_get, api_key_revoke
from accounts.models import ApiKey, Role
from config.errors import ApplicationError, ValidationFailed
from config.money import yuan_text
from config.replica import reads_from_replica
from coupons.grant_codes import grant_code_valid
from coupons.models import Application, Redemption
from coupons.selectors.scopes import applications_visible_to, redemptions_visible_to
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
)
from evidence.models import Kind
from portal import access
from portal.errors import describe
from portal.forms import ApiKeyForm, DisputeResolveForm, ReasonForm, RedeemForm
from portal.queries import grants_for
from portal.uploads import UploadRefused, files_kept_only_if_committed, upload
from portal.views.common import attempt, attempt_with, back, page_of

R = Redemption.Status


@access.provider_member
def provider_home(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    to_confirm = (
        applications_visible_to(user)
        .filter(status=Application.Status.SUBMITTED)
        .select_related("enterprise")
        .order_by("created_at", "id")
    )
    held = (
        redemptions_visible_to(user).filter(status=R.PENDING).select_related("grant__enterprise").order_by("expires_at")
    )
    context = {"to_confirm": to_confirm, "held": held, "now": timezone.now()}
    return render(request, "portal/provider_home.html", context)


@access.signed_in
@reads_from_replica
def redemption_list(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    queryset = (
        redemptions_visible_to(user)
        .select_related("grant__enterprise", "provider", "grant__application")
        .order_by("-created_at", "-id")
    )
    status = request.GET.get("status", "")
    if status in R.values:
        queryset = queryset.filter(status=status)
    context = {
        "page": page_of(request, queryset),
        "status": status,
        "statuses": R.values,
        "can_reverse": user.has_role(Role.REVIEWER) or user.has_role(Role.APPROVER),
        "reverse_form": ReasonForm(),
    }
    return render(request, "portal/redemptions.html", context)


@require_POST
@access.signed_in
def redemption_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """The provider captures or voids; staff ask for a reversal; the enterprise acknowledges or
    disputes its bill; a reviewer upholds or dismisses a dispute. The services judge who may."""
    user = caller(request)
    redemption = get_object_or_404(redemptions_visible_to(user), pk=pk)
    if action == "capture":
        attempt(request, lambda: redemption_capture(redemption=redemption, actor=user), _("Redemption captured."))
    elif action == "void":
        attempt(
            request,
            lambda: redemption_void(redemption=redemption, actor=user),
            _("Hold voided; the coupon amount is back on the grant."),
        )
    elif action == "reverse":
        attempt_with(
            request,
            ReasonForm(request.POST),
            lambda data: redemption_reverse_request(redemption=redemption, requester=user, reason=data["reason"]),
            _("Reversal requested: it is done when a different approver approves it under Approval requests."),
        )
    elif action == "acknowledge":
        attempt(
            request,
            lambda: redemption_acknowledge(redemption=redemption, actor=user),
            _("Bill acknowledged: it will be paid to the computing center."),
        )
    elif action == "dispute":
        attempt_with(
            request,
            ReasonForm(request.POST),
            lambda data: redemption_dispute(redemption=redemption, actor=user, reason=data["reason"]),
            _("Bill disputed: it is not paid unless a reviewer dismisses your dispute."),
        )
    elif action in (DECISION_UPHOLD, DECISION_DISMISS):
        attempt_with(
            request,
            DisputeResolveForm(request.POST),
            lambda data: redemption_dispute_resolve(
                redemption=redemption, actor=user, decision=action, note=data["note"]
            ),
            _("Dispute upheld: the redemption is reversed.")
            if action == DECISION_UPHOLD
            else _("Dispute dismissed: the bill may be settled."),
        )
    else:
        raise Http404("No such action.")
    return back(request, "portal:redemptions")


@access.role(Role.REVIEWER, Role.APPROVER)
@reads_from_replica
def disputes(request: HttpRequest) -> HttpResponse:
    """Bills their enterprise disputed, with the invoice behind each, for a reviewer to uphold or dismiss."""
    user = caller(request)
    queryset = (
        redemptions_visible_to(user)
        .filter(acknowledgement=Redemption.Acknowledgement.DISPUTED, status=R.CAPTURED)
        .select_related("grant__enterprise", "provider", "acknowledged_by")
        .order_by("acknowledged_at", "id")
    )
    return render(request, "portal/disputes.html", {"page": page_of(request, queryset)})


@access.provider_member
def redeem(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    form = RedeemForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        code = data["grant_code"].upper()
        grant = grants_for(user).filter(code=code).first() if grant_code_valid(code) else None
        if grant is None:
            form.add_error(
                "grant_code",
                _("No coupon of your computing center has this code. Check the code and its last character."),
            )
        else:
            try:
                # One transaction: a refused bill leaves no invoice document behind, and no file.
                with files_kept_only_if_committed(), transaction.atomic():
                    redemption = redemption_create(
                        grant=grant,
                        bill_number=data["bill_number"],
                        bill_amount_fen=data["bill_amount"],
                        requested_fen=data.get("requested"),
                        capture=data["capture"],
                        invoice_number=data["invoice_number"],
                        invoice_document=upload(user, Kind.INVOICE, data["invoice_file"], "invoice_file"),
                        invoice_amount_fen=data.get("invoice_amount"),
                        actor=user,
                    )
            except UploadRefused as refused:
                form.add_error(refused.field, describe(refused.error))
            except ApplicationError as error:
                form.add_error(_redeem_field(error), describe(error))
            else:
                messages.success(
                    request,
                    _("Bill %(bill)s: coupon %(coupon)s applied; the enterprise pays %(payable)s.")
                    % {
                        "bill": redemption.bill_number,
                        "coupon": yuan_text(redemption.coupon_fen),
                        "payable": yuan_text(redemption.bill_amount_fen - redemption.coupon_fen),
                    },
                )
                return redirect("portal:redemptions")
    grants = grants_for(user).filter(status="active").order_by("code")
    return render(request, "portal/redeem.html", {"form": form, "grants": grants}, status=400 if form.errors else 200)


def _redeem_field(error: ApplicationError) -> str | None:
    """The form's field a refusal is about, so it is shown beside it."""
    if error.code == "invalid_invoice_number" or error.code == "duplicate_invoice":
        return "invoice_number"
    if isinstance(error, ValidationFailed) and "invoice_amount_fen" in error.errors:
        return "invoice_amount"
    return None


@never_cache
@access.provider_member
def api_keys(request: HttpRequest) -> HttpResponse:
    """The provider's API keys. A new key's secret is shown once, on the answer to its creation."""
    user = caller(request)
    form = ApiKeyForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        try:
            _key, secret = api_key_create(provider=user.provider, name=form.cleaned_data["name"], actor=user)  # type: ignore[arg-type]
        except ApplicationError as error:
            form.add_error(None, describe(error))
        else:
            form = ApiKeyForm()
    assert user.provider_id is not None
    keys = ApiKey.objects.filter(provider_id=user.provider_id).select_related("created_by").order_by("-created_at")
    return render(request, "portal/api_keys.html", {"form": form, "keys": keys, "secret": secret})


@require_POST
@access.provider_member
def api_key_revoke_view(request: HttpRequest, key_id: int) -> HttpResponse:
    user = caller(request)
    try:
        key = api_key_get(provider=user.provider, key_id=key_id)  # type: ignore[arg-type]
    except ApplicationError:
        raise Http404 from None
    attempt(request, lambda: api_key_revoke(key=key, actor=user), _("Key revoked: it stops working at once."))
    return redirect("portal:api_keys")
