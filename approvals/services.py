"""Asking for a sensitive action and deciding it (maker-checker).

Lock order: the approval request first, then whatever the action's own service locks.
"""

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from approvals.errors import FourEyes
from approvals.models import TARGET_LENGTH_MAX, ApprovalRequest
from approvals.registry import approval_action
from approvals.selectors import approval_request_within_reach
from config.errors import InvalidState, NotFound, PermissionDenied, ValidationFailed
from config.limits import REASON_LENGTH_MAX

EVIDENCE_ITEMS_MAX = 20


def reason_clean(reason: str, field: str = "reason") -> str:
    """A written reason: stripped, 1 to REASON_LENGTH_MAX characters (the one limit for every reason)."""
    reason = (reason or "").strip()
    if not 0 < len(reason) <= REASON_LENGTH_MAX:
        raise ValidationFailed(f"{field} has 1 to {REASON_LENGTH_MAX} characters.", field=field)
    return reason


def approval_request_create(
    *,
    action: str,
    target: str,
    payload: dict[str, Any],  # Any: the action's own JSON, checked by the action before it asks.
    reason: str,
    requester: User,
    evidence: list[Any] | None = None,  # Any: JSON items the requester cites.
) -> ApprovalRequest:
    """Ask for `action` on `target`. The caller (the owning app) has checked the payload already.

    One pending request per action and target: a second is 409 invalid_state, so two people cannot
    race the same change through two requests.
    """
    kind = approval_action(action)
    if not requester.is_active or not kind.may_request(requester):
        raise PermissionDenied(f"You may not ask for {action}.")
    assert 0 < len(target) <= TARGET_LENGTH_MAX, target
    reason = reason_clean(reason)
    evidence = list(evidence or [])
    if len(evidence) > EVIDENCE_ITEMS_MAX:
        raise ValidationFailed(f"At most {EVIDENCE_ITEMS_MAX} items of evidence.", field="evidence")
    with transaction.atomic():
        # The partial unique index is the backstop; this lock gives the clear answer under a race.
        pending = (
            ApprovalRequest.objects.select_for_update()
            .filter(action=action, target=target, status=ApprovalRequest.Status.PENDING)
            .first()
        )
        if pending is not None:
            raise InvalidState(
                f"Approval request {pending.pk} for {action} on {target} is already pending.", request=pending.pk
            )
        try:
            with transaction.atomic():
                return ApprovalRequest.objects.create(
                    action=action,
                    target=target,
                    payload=payload,
                    reason=reason,
                    evidence=evidence,
                    requested_by=requester,
                )
        except IntegrityError:
            # Another request for this target was inserted after our look (no row existed to lock):
            # the partial unique index refused ours.
            raise InvalidState(f"A request for {action} on {target} is already pending.") from None


def _lock(request_id: int) -> ApprovalRequest:
    request = ApprovalRequest.objects.select_for_update().filter(pk=request_id).first()
    if request is None:
        raise NotFound(f"No approval request {request_id}.")
    return request


def _check_decider(request: ApprovalRequest, decider: User, *, approving: bool) -> None:
    if not approval_request_within_reach(decider, request):
        # A request of a program the decider's roles do not reach is out of their scope: not found.
        raise NotFound(f"No approval request {request.pk}.")
    if request.status != ApprovalRequest.Status.PENDING:
        raise InvalidState(f"Approval request {request.pk} is already {request.status}.")
    if request.requested_by_id == decider.pk:
        raise FourEyes("You asked for this; a different person must decide it.")
    kind = approval_action(request.action)
    if not decider.is_active or not kind.may_decide(decider, request):
        raise PermissionDenied(f"You may not decide {request.action}.")
    # The action's own four-eyes rules guard doing it; refusing it does nothing, so they do not apply.
    conflict = kind.conflicts(request, decider) if approving else None
    if conflict:
        raise FourEyes(conflict)


def approval_request_approve(*, request_id: int, decider: User, reason: str = "") -> ApprovalRequest:
    """A different person with the right role approves: the action is carried out, in this transaction.

    Two deciders at once: the row lock orders them; the second finds the request decided (409).
    If the action refuses (its state changed since the request), nothing is written and the request
    stays pending, to be rejected or approved once the cause is gone.
    """
    reason = (reason or "").strip()
    if len(reason) > REASON_LENGTH_MAX:
        raise ValidationFailed(f"reason has at most {REASON_LENGTH_MAX} characters.", field="reason")
    with transaction.atomic():
        request = _lock(request_id)
        _check_decider(request, decider, approving=True)
        approval_action(request.action).execute(request=request, decider=decider)
        request.status = ApprovalRequest.Status.APPROVED
        request.decided_by = decider
        request.decided_at = timezone.now()
        request.decision_reason = reason
        request.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
        return request


def approval_request_reject(*, request_id: int, decider: User, reason: str) -> ApprovalRequest:
    """A different person with the right role refuses the request, saying why; nothing is done."""
    reason = reason_clean(reason)
    with transaction.atomic():
        request = _lock(request_id)
        _check_decider(request, decider, approving=False)
        request.status = ApprovalRequest.Status.REJECTED
        request.decided_by = decider
        request.decided_at = timezone.now()
        request.decision_reason = reason
        request.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
        return request
