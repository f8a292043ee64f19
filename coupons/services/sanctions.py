"""Sanctions under maker-checker: a reviewer or an approver asks (an approval request, action
`sanction_set`); a different approver decides, which writes the `accounts.Sanction` row."""

import datetime as dt

from accounts.models import Role, User
from accounts.roles import require_role
from accounts.services import sanction_check_request, sanction_set
from approvals.models import ApprovalRequest
from approvals.services import approval_request_create
from coupons.services.reach import reach_every_program

SANCTION_ACTION = "sanction_set"


def sanction_request(
    *, uscc: str, reason: str, valid_from: dt.date, valid_until: dt.date | None, requester: User
) -> ApprovalRequest:
    """Ask for a sanction (pending until a different approver decides it); one pending request per code.
    A sanction excludes the organisation from every program, so it is asked for by staff whose roles
    reach every program."""
    require_role(requester, Role.REVIEWER, Role.APPROVER)
    reach_every_program(requester, "A sanction")
    uscc, reason, valid_from, valid_until = sanction_check_request(
        uscc=uscc, reason=reason, valid_from=valid_from, valid_until=valid_until
    )
    return approval_request_create(
        action=SANCTION_ACTION,
        target=f"sanction:{uscc}",
        payload={
            "uscc": uscc,
            "reason": reason,
            "valid_from": valid_from.isoformat(),
            "valid_until": valid_until.isoformat() if valid_until else None,
        },
        reason=reason,
        requester=requester,
    )


def sanction_request_execute(*, request: ApprovalRequest, decider: User) -> None:
    """The decision's effect (inside its transaction): the sanction, checked again, as the decider sets it."""
    payload = request.payload
    until = payload.get("valid_until")
    sanction_set(
        uscc=payload["uscc"],
        reason=payload["reason"],
        valid_from=dt.date.fromisoformat(payload["valid_from"]),
        valid_until=dt.date.fromisoformat(until) if until else None,
        requested_by=request.requested_by,
        actor=decider,
    )
