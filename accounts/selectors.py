"""Reads about people and organisations."""

from typing import Final

from accounts.models import RelatedParty
from approvals.models import ApprovalRequest

# The approvals action of a change to a provider (`coupons.approval_actions` registers it).
PROVIDER_CHANGE_ACTION: Final = "provider_change"


def related_parties(uscc_a: str, uscc_b: str) -> bool:
    """Whether the administrators list the two codes as related parties."""
    low, high = sorted((uscc_a, uscc_b))
    return RelatedParty.objects.filter(uscc_low=low, uscc_high=high).exists()


def provider_changes_pending() -> dict[int, ApprovalRequest]:
    """The pending change request of each provider that has one, by provider id."""
    pending = ApprovalRequest.objects.filter(
        action=PROVIDER_CHANGE_ACTION, status=ApprovalRequest.Status.PENDING, target__startswith="provider:"
    )
    return {int(request.target.removeprefix("provider:")): request for request in pending}
