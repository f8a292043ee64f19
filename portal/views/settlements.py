"""Settlements: finance creates, exports and pays them (to a computing center for its redemptions, or to
an enterprise for its approved claims); a computing center reads its own."""

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.caller import caller
from accounts.models import Enterprise, Provider, Role, User
from config.errors import ApplicationError
from config.replica import reads_from_replica
from coupons.models import Claim, Redemption, Settlement
from coupons.selectors import settlement_lines_csv
from coupons.selectors.scopes import claims_visible_to, redemptions_visible_to, settlements_visible_to
from coupons.services.acknowledgements import settleable
from coupons.services.claims import settlement_create_for_enterprise
from coupons.services.settlements import settlement_create, settlement_pay_request
from portal import access
from portal.errors import describe
from portal.forms import EnterpriseSettlementForm, PayForm, SettlementForm, program_slug
from portal.views.common import attempt_with, page_of


def _visible(user: User) -> bool:
    return user.provider_id is not None or user.is_staff_member


def _unsettled_by_provider(user: User) -> list[dict[str, object]]:
    """Per provider, what the next settlement would hold (the captured bills it may take), and how
    many captured bills it may not take yet: awaiting their enterprise in their window, or disputed."""
    now = timezone.now()
    ready = settleable(now=now)
    unsettled = Q(status=Redemption.Status.CAPTURED, settlement__isnull=True)
    awaiting = unsettled & Q(acknowledgement=Redemption.Acknowledgement.AWAITING, acknowledge_by__gt=now)
    disputed = unsettled & Q(acknowledgement=Redemption.Acknowledgement.DISPUTED)
    return list(
        # Within the programs the caller's roles reach, as the settlements API reads them.
        redemptions_visible_to(user)
        .filter(ready | awaiting | disputed)
        .values("grant__year__program__name", "provider_id", "provider__name")
        .annotate(
            count=Count("pk", filter=ready),
            total=Coalesce(Sum("coupon_fen", filter=ready), 0),
            awaiting=Count("pk", filter=awaiting),
            disputed=Count("pk", filter=disputed),
        )
        .order_by("grant__year__program__name", "provider__name")
    )


def _unsettled_claims_by_enterprise(user: User) -> list[dict[str, object]]:
    """Approved claims not yet in a settlement, per enterprise (enterprise reimbursement)."""
    return list(
        claims_visible_to(user)
        .filter(status=Claim.Status.APPROVED, settlement__isnull=True)
        .values("grant__year__program__name", "enterprise_id", "enterprise__name")
        .annotate(count=Count("pk"), total=Sum("coupon_fen"))
        .order_by("grant__year__program__name", "enterprise__name")
    )


@access.signed_in
@reads_from_replica
def settlement_list(request: HttpRequest) -> HttpResponse:
    user = caller(request)
    if not _visible(user):
        return redirect("portal:home")
    is_finance = user.has_role(Role.FINANCE)
    # Two forms on the page: settle a computing center, or settle an enterprise (its approved claims).
    to_enterprise = request.method == "POST" and request.POST.get("payee") == "enterprise"
    form = SettlementForm(None if to_enterprise else request.POST or None) if is_finance else None
    enterprise_form = (
        # Ids of its own: the page holds both forms, and each has a program to choose.
        EnterpriseSettlementForm(request.POST if to_enterprise else None, auto_id="id_payee_enterprise_%s")
        if is_finance
        else None
    )
    if request.method == "POST":
        if form is None or enterprise_form is None:
            return redirect("portal:settlements")
        posted = enterprise_form if to_enterprise else form
        if posted.is_valid():
            try:
                if to_enterprise:
                    enterprise: Enterprise = enterprise_form.cleaned_data["enterprise"]
                    settlement = settlement_create_for_enterprise(
                        enterprise=enterprise, actor=user, program=program_slug(enterprise_form.cleaned_data)
                    )
                else:
                    provider: Provider = form.cleaned_data["provider"]
                    settlement = settlement_create(
                        provider=provider, actor=user, program=program_slug(form.cleaned_data)
                    )
            except ApplicationError as error:
                posted.add_error(None, describe(error))
            else:
                return redirect("portal:settlement", pk=settlement.pk)
    queryset = (
        settlements_visible_to(user).select_related("program", "provider", "enterprise").order_by("-created_at", "-id")
    )
    context = {
        "page": page_of(request, queryset),
        "form": form,
        "enterprise_form": enterprise_form,
        "unsettled": _unsettled_by_provider(user) if is_finance else [],
        "unsettled_claims": _unsettled_claims_by_enterprise(user) if is_finance else [],
    }
    refused = any(f is not None and f.errors for f in (form, enterprise_form))
    return render(request, "portal/settlements.html", context, status=400 if refused else 200)


@access.signed_in
def settlement_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = caller(request)
    settlement = get_object_or_404(
        settlements_visible_to(user).select_related("provider", "enterprise", "paid_by"), pk=pk
    )
    related = ("grant__enterprise", "grant__application")
    context = {
        "settlement": settlement,
        "lines": settlement.redemptions.select_related(*related).order_by("pk"),
        "claims": settlement.claims.select_related(*related).order_by("pk"),
        "clawbacks": settlement.clawbacks.select_related(*related).order_by("pk"),
        "pay_form": PayForm(),
        "can_pay": user.has_role(Role.FINANCE) and settlement.status == Settlement.Status.OPEN,
    }
    return render(request, "portal/settlement.html", context)


@access.signed_in
@reads_from_replica
def settlement_lines(request: HttpRequest, pk: int) -> HttpResponse:
    user = caller(request)
    settlement = get_object_or_404(settlements_visible_to(user), pk=pk)
    # A byte-order mark first, so that Excel reads the Chinese names as UTF-8.
    response = HttpResponse("\ufeff" + settlement_lines_csv(settlement), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="settlement-{settlement.pk}.csv"'
    return response


@require_POST
@access.role(Role.FINANCE)
def settlement_pay_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = caller(request)
    settlement = get_object_or_404(settlements_visible_to(user), pk=pk)
    attempt_with(
        request,
        PayForm(request.POST),
        lambda data: settlement_pay_request(
            settlement=settlement, requester=user, bank_reference=data["bank_reference"]
        ),
        _("Payment requested: a different finance user, who did not create the settlement, confirms it."),
    )
    return redirect("portal:settlement", pk=pk)
