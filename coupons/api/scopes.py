"""What each caller may see. Staff see everything; an enterprise its own; a provider what names it."""

from django.db.models import QuerySet

from accounts.models import User
from coupons.models import Application, Grant, Redemption, Settlement


def applications_visible_to(user: User) -> QuerySet[Application]:
    queryset = Application.objects.select_related("grant")
    if user.is_staff_member:
        return queryset
    if user.enterprise_id is not None:
        return queryset.filter(enterprise_id=user.enterprise_id)
    if user.provider_id is not None:
        return queryset.filter(provider_id=user.provider_id)
    return queryset.none()


def grants_visible_to(user: User) -> QuerySet[Grant]:
    queryset = Grant.objects.select_related("account")
    if user.is_staff_member:
        return queryset
    if user.enterprise_id is not None:
        return queryset.filter(enterprise_id=user.enterprise_id)
    if user.provider_id is not None:
        return queryset.filter(provider_id=user.provider_id)
    return queryset.none()


def redemptions_visible_to(user: User) -> QuerySet[Redemption]:
    queryset = Redemption.objects.select_related("grant")
    if user.is_staff_member:
        return queryset
    if user.enterprise_id is not None:
        return queryset.filter(grant__enterprise_id=user.enterprise_id)
    if user.provider_id is not None:
        return queryset.filter(provider_id=user.provider_id)
    return queryset.none()


def settlements_visible_to(user: User) -> QuerySet[Settlement]:
    """Finance (and other staff) see all settlements; a provider its own; enterprises none."""
    if user.is_staff_member:
        return Settlement.objects.all()
    if user.provider_id is not None:
        return Settlement.objects.filter(provider_id=user.provider_id)
    return Settlement.objects.none()
