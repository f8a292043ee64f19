"""Reading approval requests."""

from django.db.models import QuerySet

from accounts.models import User
from api.scoping import staff_only
from approvals.models import ApprovalRequest


def approval_requests_visible_to(user: User) -> QuerySet[ApprovalRequest]:
    """Platform staff see every request (deciders find theirs by status and action); members of
    organisations see none: a request is an internal control of the fund."""
    return staff_only(ApprovalRequest.objects.select_related("requested_by", "decided_by"), user)


def approval_request_of(*, action: str, target: str) -> ApprovalRequest | None:
    """The newest request for an action on a target (pending, or the last decided)."""
    return ApprovalRequest.objects.filter(action=action, target=target).order_by("-pk").first()
