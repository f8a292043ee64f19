"""The portal's reads, scoped to the person exactly as the API scopes them (coupons.selectors.scopes)."""

from django.db.models import QuerySet

from accounts.models import User
from coupons.models import Grant
from coupons.selectors.scopes import grants_with_figures


def grants_for(user: User) -> QuerySet[Grant]:
    """The person's grants with available, held (from the ledger account) and redeemed annotated."""
    return grants_with_figures(user).select_related("enterprise", "provider", "application")
