"""Who may see what, read by the API and the portal alike: staff see everything; an enterprise its
own; a provider what names it. A view looks objects up only through these querysets, so another
organisation's object is not found (404), never forbidden."""

from typing import TypeVar

from django.db.models import BigIntegerField, F, Model, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce

from accounts.models import User
from coupons.models import Application, Claim, Grant, Redemption, Settlement
from ledger.selectors import available_fen_expression

M = TypeVar("M", bound=Model)


def _scoped(queryset: QuerySet[M], user: User, *, enterprise: str | None, provider: str) -> QuerySet[M]:
    """Staff: everything. A member: the rows whose `enterprise` (or `provider`) path names its
    organisation; `enterprise=None` means enterprises see none of these rows."""
    if user.is_staff_member:
        return queryset
    if user.enterprise_id is not None and enterprise is not None:
        return queryset.filter(**{enterprise: user.enterprise_id})
    if user.provider_id is not None:
        return queryset.filter(**{provider: user.provider_id})
    return queryset.none()


def applications_visible_to(user: User) -> QuerySet[Application]:
    return _scoped(
        Application.objects.select_related("grant", "year"), user, enterprise="enterprise_id", provider="provider_id"
    )


def grants_visible_to(user: User) -> QuerySet[Grant]:
    return _scoped(
        Grant.objects.select_related("account", "year"), user, enterprise="enterprise_id", provider="provider_id"
    )


def redemptions_visible_to(user: User) -> QuerySet[Redemption]:
    queryset = Redemption.objects.select_related("grant")
    return _scoped(queryset, user, enterprise="grant__enterprise_id", provider="provider_id")


def claims_visible_to(user: User) -> QuerySet[Claim]:
    """Staff see every claim; an enterprise its own; a computing center, read-only, the claims on its
    grants (it issued the invoice and is a party to the claim's documents)."""
    queryset = Claim.objects.select_related("grant")
    return _scoped(queryset, user, enterprise="enterprise_id", provider="grant__provider_id")


def settlements_visible_to(user: User) -> QuerySet[Settlement]:
    """Finance (and other staff) see all settlements; a provider its own; an enterprise those that pay it
    (enterprise reimbursement)."""
    return _scoped(Settlement.objects.all(), user, enterprise="enterprise_id", provider="provider_id")


def grant_redeemed_fen_expression() -> CombinedExpression:
    """The captured coupons and approved (or paid) claims of the grant in the outer query, in fen:
    redeemed, as the ledger counts it (a reversed redemption went back to its grant or to the lapsed
    account). In a year of enterprise reimbursement the coupons are claimed, not redeemed."""
    captured = (
        Redemption.objects.filter(grant=OuterRef("pk"), status=Redemption.Status.CAPTURED)
        .order_by()
        .values("grant")
        .annotate(total=Sum("coupon_fen"))
        .values("total")
    )
    claimed = (
        Claim.objects.filter(grant=OuterRef("pk"), status__in=[Claim.Status.APPROVED, Claim.Status.PAID])
        .order_by()
        .values("grant")
        .annotate(total=Sum("coupon_fen"))
        .values("total")
    )
    return Coalesce(Subquery(captured, output_field=BigIntegerField()), Value(0)) + Coalesce(
        Subquery(claimed, output_field=BigIntegerField()), Value(0)
    )


def grants_with_figures(user: User) -> QuerySet[Grant]:
    """The caller's grants, each with its ledger account joined and its figures annotated.

    One query for a whole page: `available_fen` and `held_fen` come from the account's running
    totals, and `redeemed_fen` (captured coupons, approved claims) from one correlated sum per row,
    never a query per grant.
    """
    return grants_visible_to(user).annotate(
        available_fen=available_fen_expression("account__"),
        held_fen=F("account__debits_pending"),
        redeemed_fen=grant_redeemed_fen_expression(),
    )
