"""The actions that need a second person, registered by the apps that own them.

An app registers each of its sensitive actions once, at start-up (`AppConfig.ready`), with who
may ask for it, who may decide it, and what carrying it out means. The approvals app calls these
and nothing else of the owning app, so it stays ignorant of what the actions do.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from accounts.models import User
    from approvals.models import ApprovalRequest


class Execute(Protocol):
    def __call__(self, *, request: "ApprovalRequest", decider: "User") -> None: ...


@dataclass(frozen=True)
class ApprovalAction:
    """One kind of sensitive action.

    - `may_request(user)`: whether this person may ask for it (else 403 permission_denied).
    - `may_decide(user, request)`: whether this person may decide this request (else 403
      permission_denied); the requester never may (403 four_eyes), whatever this says.
    - `execute(request=, decider=)`: carry it out. Called inside the decision's transaction with the
      request row locked and still pending; an ApplicationError refuses the decision and changes nothing.
    - `conflicts(request, decider)`: an extra four-eyes rule of the action (for example, the payer of a
      settlement may not be the finance user who created it): a message, or None.
    """

    name: str
    may_request: Callable[["User"], bool]
    may_decide: Callable[["User", "ApprovalRequest"], bool]
    execute: Execute
    conflicts: Callable[["ApprovalRequest", "User"], str | None] = lambda request, decider: None
    label: str = ""


_ACTIONS: dict[str, ApprovalAction] = {}


def approval_action_register(action: ApprovalAction) -> None:
    """Register an action once; registering another action under a taken name is a bug."""
    existing = _ACTIONS.get(action.name)
    assert existing is None or existing == action, f"approval action {action.name!r} registered twice"
    _ACTIONS[action.name] = action


def approval_action(name: str) -> ApprovalAction:
    action = _ACTIONS.get(name)
    assert action is not None, f"no approval action {name!r} is registered"
    return action


def approval_action_names() -> list[str]:
    return sorted(_ACTIONS)
