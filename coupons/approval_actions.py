"""The coupon program's sensitive actions, each asked for by one person and decided by another.

Registered with `approvals` at start-up (`CouponsConfig.ready`). Who may ask and who may decide:

| action | asks | decides |
| --- | --- | --- |
| `cap_override` | reviewer or approver | another approver |
| `redemption_reverse` | reviewer or approver | another approver |
| `grant_revoke` | reviewer or approver | another approver |
| `settlement_pay` | finance | another finance user, who did not create the settlement |
| `provider_change` | superuser | an approver, or another superuser (a superuser holds every role) |
| `sanction_set` | reviewer or approver | another approver |
| `role_grant` | superuser (`POST /users/` with roles) | another superuser, who is not the user receiving them |
| `user_programs_widen` | superuser (`PUT /users/{id}/programs/`, wider) | another superuser, not that user |
| `rule_set_version_add` | superuser | another superuser |
| `stacking_rule_create` | superuser | another superuser |
| `program_close` | superuser (`POST /programs/{slug}/close/`) | another superuser |

Each `execute` re-reads its target and calls the entity's service with both people, so the
service's own checks (state, policy, four eyes) run again at the moment of decision.
"""

from accounts.models import Enterprise, Role, User
from accounts.selectors import PROVIDER_CHANGE_ACTION
from accounts.services import (
    ROLE_GRANT_ACTION,
    USER_PROGRAMS_WIDEN_ACTION,
    provider_change_apply,
    role_grant_apply,
    role_grant_conflict,
    user_programs_widen_apply,
    user_programs_widen_conflict,
)
from approvals.models import ApprovalRequest
from approvals.registry import ApprovalAction, approval_action_register
from coupons.models import DEFAULT_PROGRAM, Grant, Redemption, Settlement
from coupons.services.grants import ACTION_REVOKE, grant_revoke
from coupons.services.redemptions import ACTION_REVERSE, redemption_reverse
from coupons.services.sanctions import SANCTION_ACTION, sanction_request_execute
from coupons.services.settlements import ACTION_PAY, settlement_pay, settlement_payer_conflict
from coupons.services.stacking import ACTION_STACKING_RULE, stacking_rule_request_execute
from coupons.services.years import (
    ACTION_CAP_OVERRIDE,
    ACTION_PROGRAM_CLOSE,
    ACTION_RULE_SET_VERSION,
    cap_override_grant,
    program_close_request_execute,
    rule_set_version_request_execute,
)


def _staff_who_may_ask(user: User) -> bool:
    return user.has_role(Role.REVIEWER) or user.has_role(Role.APPROVER)


def _approver(user: User, request: ApprovalRequest) -> bool:
    return user.has_role(Role.APPROVER)


def _superuser(user: User) -> bool:
    return user.is_active and user.is_superuser


def _cap_override(*, request: ApprovalRequest, decider: User) -> None:
    payload = request.payload
    cap_override_grant(
        year=payload["year"],
        enterprise=Enterprise.objects.get(pk=payload["enterprise"]),
        cap_fen=payload["cap_fen"],
        reason=request.reason,
        requested_by=request.requested_by,
        actor=decider,
        # Requests made before programs name no program: theirs was the default one.
        program=payload.get("program", DEFAULT_PROGRAM),
    )


def _reverse(*, request: ApprovalRequest, decider: User) -> None:
    redemption_reverse(
        redemption=Redemption.objects.get(pk=request.payload["redemption"]),
        actor=decider,
        requested_by=request.requested_by,
        reason=request.reason,
    )


def _revoke(*, request: ApprovalRequest, decider: User) -> None:
    grant_revoke(
        grant=Grant.objects.get(pk=request.payload["grant"]),
        actor=decider,
        requested_by=request.requested_by,
        reason=request.reason,
    )


def _pay(*, request: ApprovalRequest, decider: User) -> None:
    settlement_pay(
        settlement=Settlement.objects.get(pk=request.payload["settlement"]),
        actor=decider,
        requested_by=request.requested_by,
        bank_reference=request.payload["bank_reference"],
    )


def _payer_conflict(request: ApprovalRequest, decider: User) -> str | None:
    settlement = Settlement.objects.get(pk=request.payload["settlement"])
    return settlement_payer_conflict(settlement=settlement, payer=decider, requested_by_id=request.requested_by_id)


def _provider_change(*, request: ApprovalRequest, decider: User) -> None:
    kind, _, provider_id = request.target.partition(":")
    assert kind == "provider" and provider_id.isdigit(), request.target
    provider_change_apply(
        provider_id=int(provider_id),
        changes=request.payload,
        requested_by=request.requested_by,
        decided_by=decider,
        reason=request.reason,
    )


ACTIONS: tuple[ApprovalAction, ...] = (
    ApprovalAction(
        name=ACTION_CAP_OVERRIDE,
        label="relaxed cap",
        may_request=_staff_who_may_ask,
        may_decide=_approver,
        execute=_cap_override,
    ),
    ApprovalAction(
        name=ACTION_REVERSE,
        label="reverse a redemption",
        may_request=_staff_who_may_ask,
        may_decide=_approver,
        execute=_reverse,
    ),
    ApprovalAction(
        name=ACTION_REVOKE,
        label="revoke a coupon",
        may_request=_staff_who_may_ask,
        may_decide=_approver,
        execute=_revoke,
    ),
    ApprovalAction(
        name=ACTION_PAY,
        label="pay a settlement",
        may_request=lambda user: user.has_role(Role.FINANCE),
        may_decide=lambda user, request: user.has_role(Role.FINANCE),
        execute=_pay,
        conflicts=_payer_conflict,
    ),
    ApprovalAction(
        name=PROVIDER_CHANGE_ACTION,
        label="change a computing center",
        may_request=lambda user: user.is_active and user.is_superuser,
        may_decide=_approver,
        execute=_provider_change,
    ),
    ApprovalAction(
        name=SANCTION_ACTION,
        label="sanction an organisation",
        may_request=_staff_who_may_ask,
        may_decide=_approver,
        execute=sanction_request_execute,
    ),
    ApprovalAction(
        name=ROLE_GRANT_ACTION,
        label="grant platform roles",
        may_request=lambda user: user.is_active and user.is_superuser,
        may_decide=lambda user, request: user.is_active and user.is_superuser,
        execute=role_grant_apply,
        conflicts=role_grant_conflict,
    ),
    ApprovalAction(
        name=USER_PROGRAMS_WIDEN_ACTION,
        label="widen the programs a staff user reaches",
        may_request=_superuser,
        may_decide=lambda user, request: _superuser(user),
        execute=user_programs_widen_apply,
        conflicts=user_programs_widen_conflict,
    ),
    ApprovalAction(
        name=ACTION_RULE_SET_VERSION,
        label="add a rule-set version",
        may_request=_superuser,
        may_decide=lambda user, request: _superuser(user),
        execute=rule_set_version_request_execute,
    ),
    ApprovalAction(
        name=ACTION_STACKING_RULE,
        label="write a stacking rule",
        may_request=_superuser,
        may_decide=lambda user, request: _superuser(user),
        execute=stacking_rule_request_execute,
    ),
    ApprovalAction(
        name=ACTION_PROGRAM_CLOSE,
        label="close a program",
        may_request=_superuser,
        may_decide=lambda user, request: _superuser(user),
        execute=program_close_request_execute,
    ),
)


def register() -> None:
    for action in ACTIONS:
        approval_action_register(action)
