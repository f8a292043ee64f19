"""What each caller may see. Staff see everything; an enterprise its own; a provider what names it."""

from typing import TypeVar

from django.db.models import Model, QuerySet

from accounts.models import User
from coupons.models import Application, Claim, Grant, Redemption, Settlement

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
        Application.objects.select_related("grant"), user, enterprise="enterprise_id", provider="provider_id"
    )


def grants_visible_to(user: User) -> QuerySet[Grant]:
    return _scoped(Grant.objects.select_related("account"), user, enterprise="enterprise_id", provider="provider_id")


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
