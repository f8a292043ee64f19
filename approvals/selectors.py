"""Reading approval requests."""

from django.db.models import QuerySet

from accounts.models import User
from api.scoping import staff_only
from approvals.models import ApprovalRequest


def approval_requests_visible_to(user: User) -> QuerySet[ApprovalRequest]:
    """Platform staff see every request (deciders find theirs by status and action); members of
    organisations see none: a request is an internal control of the fund. Staff whose roles are
    limited to programs (`User.programs`) see only the requests whose payload names one of their
    programs (`payload["program"]`, which the owning app writes); a request that names no program
    (a sanction, a computing center's change, a role grant, a settlement's payment, or a request made
    before programs) is for staff whose roles reach every program."""
    requests = staff_only(ApprovalRequest.objects.select_related("requested_by", "decided_by"), user)
    limit = user.program_limit
    return requests if limit is None else requests.filter(payload__program__in=sorted(limit))


def approval_request_within_reach(user: User, request: ApprovalRequest) -> bool:
    """Whether `approval_requests_visible_to(user)` holds this request, for one already loaded."""
    limit = user.program_limit
    return limit is None or (isinstance(request.payload, dict) and request.payload.get("program") in limit)


def approval_request_of(*, action: str, target: str) -> ApprovalRequest | None:
    """The newest request for an action on a target (pending, or the last decided)."""
    return ApprovalRequest.objects.filter(action=action, target=target).order_by("-pk").first()
