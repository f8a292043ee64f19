"""The enterprise's word on its bills (docs/evidence.md, "Acknowledgement and disputes").

A captured redemption is a bill the computing center says it served under the enterprise's contract.
The enterprise has the year's `acknowledgement_window_days` from capture to acknowledge it
(`confirmed`) or dispute it with a reason (`disputed`); silence past the window confirms it
(`deemed_confirmed`, set by `acknowledgements_deem_confirmed` on beat, or by the settlement that
takes it). A reviewer resolves a dispute: `dismissed` (the bill stands), or `upheld`, which reverses
the redemption at once through the reversal every reversal uses: the enterprise's dispute is the
request and the reviewer's decision the second person's, so no approval request is made.

Only `confirmed`, `deemed_confirmed` and `dismissed` redemptions are settled
(`coupons/services/settlements.py`; the database's `coupons_redemption_settled_only_if_acknowledged`
is the backstop). Every write here locks the redemption row, so an acknowledgement, a dispute, the
job and a settlement taking the redemption are ordered: whichever locks first wins, and the others
see its result.
"""

import datetime as dt
from typing import Final

from django.db import transaction
from django.db.models import Q, Subquery
from django.utils import timezone

from accounts.models import Role, User
from accounts.roles import require_enterprise_member, require_role
from approvals.services import reason_clean
from config.errors import InvalidState, ValidationFailed
from coupons.errors import FourEyes
from coupons.locks import grant_lock, redemption_lock
from coupons.models import Grant, Redemption
from coupons.services.reach import program_of_redemption, reach_program
from coupons.services.redemptions import redemption_reverse_locked

DEEM_BATCH_SIZE: Final = 1000
A = Redemption.Acknowledgement
# The acknowledgements a settlement may take.
SETTLEABLE: Final = (A.CONFIRMED, A.DEEMED_CONFIRMED, A.DISMISSED)
DECISION_UPHOLD: Final = "uphold"
DECISION_DISMISS: Final = "dismiss"


def window_closed(*, now: dt.datetime) -> Q:
    """Captured redemptions still awaiting the enterprise whose window has passed: deemed confirmed."""
    return Q(status=Redemption.Status.CAPTURED, acknowledgement=A.AWAITING, acknowledge_by__lte=now)


def settleable(*, now: dt.datetime) -> Q:
    """Captured redemptions the enterprise stands behind (or left unanswered past the window), not
    yet in a settlement."""
    return Q(status=Redemption.Status.CAPTURED, settlement__isnull=True) & (
        Q(acknowledgement__in=SETTLEABLE) | window_closed(now=now)
    )


def is_settleable(redemption: Redemption, *, now: dt.datetime) -> bool:
    """`settleable` for one row read under its lock."""
    if redemption.status != Redemption.Status.CAPTURED or redemption.settlement_id is not None:
        return False
    if redemption.acknowledgement in SETTLEABLE:
        return True
    return (
        redemption.acknowledgement == A.AWAITING
        and redemption.acknowledge_by is not None
        and redemption.acknowledge_by <= now
    )


def _require_enterprise_of(redemption: Redemption, actor: User) -> None:
    enterprise_id = Grant.objects.values_list("enterprise_id", flat=True).get(pk=redemption.grant_id)
    require_enterprise_member(actor, enterprise_id)


def _require_window_open(redemption: Redemption, *, now: dt.datetime, doing: str) -> None:
    """Refuse (409) unless the enterprise may still answer for the bill. The caller holds its lock."""
    if redemption.status != Redemption.Status.CAPTURED:
        raise InvalidState(f"Only a captured bill is {doing}; this one is {redemption.status}.")
    if redemption.settlement_id is not None:
        raise InvalidState(
            f"The bill is in settlement {redemption.settlement_id} already.", settlement=redemption.settlement_id
        )
    if redemption.acknowledgement != A.AWAITING:
        raise InvalidState(f"The bill is {redemption.acknowledgement} already.")
    assert redemption.acknowledge_by is not None, "a captured redemption awaiting acknowledgement has its window"
    if now >= redemption.acknowledge_by:
        raise InvalidState(
            f"The window to answer for this bill closed at {redemption.acknowledge_by.isoformat()}: "
            "it is deemed confirmed.",
            reason="window_closed",
        )


def redemption_acknowledge(*, redemption: Redemption, actor: User, now: dt.datetime | None = None) -> Redemption:
    """A member of the grant's enterprise confirms a captured bill within its window. Acknowledging a
    confirmed bill again answers it unchanged."""
    _require_enterprise_of(redemption, actor)
    now = now or timezone.now()
    with transaction.atomic():
        locked = redemption_lock(redemption.pk)
        if locked.acknowledgement == A.CONFIRMED:
            return locked
        _require_window_open(locked, now=now, doing="acknowledged")
        locked.acknowledgement = A.CONFIRMED
        locked.acknowledged_by = actor
        locked.acknowledged_at = now
        locked.save(update_fields=["acknowledgement", "acknowledged_by", "acknowledged_at"])
        return locked


def redemption_dispute(
    *, redemption: Redemption, actor: User, reason: str, now: dt.datetime | None = None
) -> Redemption:
    """A member of the grant's enterprise disputes a captured bill within its window, saying why. The
    bill is not settled unless a reviewer dismisses the dispute."""
    _require_enterprise_of(redemption, actor)
    reason = reason_clean(reason)
    now = now or timezone.now()
    with transaction.atomic():
        locked = redemption_lock(redemption.pk)
        _require_window_open(locked, now=now, doing="disputed")
        locked.acknowledgement = A.DISPUTED
        locked.acknowledged_by = actor
        locked.acknowledged_at = now
        locked.dispute_reason = reason
        locked.save(update_fields=["acknowledgement", "acknowledged_by", "acknowledged_at", "dispute_reason"])
        return locked


def redemption_dispute_resolve(
    *, redemption: Redemption, actor: User, decision: str, note: str, now: dt.datetime | None = None
) -> Redemption:
    """A reviewer (or an approver) decides a dispute, with a note: `dismiss` lets the bill be settled;
    `uphold` reverses the redemption at once, with the disputer as the person who asked for the
    reversal and the reviewer as the one who decided it."""
    require_role(actor, Role.REVIEWER, Role.APPROVER)
    reach_program(actor, program_of_redemption(redemption), f"redemption {redemption.pk}")
    if decision not in (DECISION_UPHOLD, DECISION_DISMISS):
        raise ValidationFailed("decision is uphold or dismiss.", field="decision")
    note = reason_clean(note, field="note")
    now = now or timezone.now()
    with transaction.atomic():
        grant = grant_lock(redemption.grant_id)  # Lock order: grant, then redemption (the reversal needs both).
        locked = redemption_lock(redemption.pk)
        if locked.acknowledgement != A.DISPUTED:
            raise InvalidState(f"Only a disputed bill is resolved; this one is {locked.acknowledgement}.")
        if locked.status != Redemption.Status.CAPTURED:
            raise InvalidState(f"The disputed redemption is {locked.status}: nothing is left to decide.")
        assert locked.acknowledged_by_id is not None, "a dispute records who disputed"
        if locked.acknowledged_by_id == actor.pk:
            raise FourEyes("The person who disputed a bill may not resolve the dispute.")
        locked.dispute_resolved_by = actor
        locked.dispute_resolved_at = now
        locked.dispute_note = note
        locked.acknowledgement = A.UPHELD if decision == DECISION_UPHOLD else A.DISMISSED
        locked.save(update_fields=["acknowledgement", "dispute_resolved_by", "dispute_resolved_at", "dispute_note"])
        if decision == DECISION_UPHOLD:
            redemption_reverse_locked(
                grant=grant,
                redemption=locked,
                actor=actor,
                requested_by=User.objects.get(pk=locked.acknowledged_by_id),
                reason=f"Dispute upheld. The enterprise: {locked.dispute_reason} The reviewer: {note}",
                now=now,
            )
        return locked


def acknowledgements_deem_confirmed(*, now: dt.datetime | None = None, limit: int = DEEM_BATCH_SIZE) -> int:
    """Deem confirmed the captured bills still awaiting the enterprise past their window, at most
    `limit` of them; return how many this call changed. One conditional UPDATE: two runs at once,
    or a run racing an acknowledgement, change each row once (PostgreSQL re-checks the condition on
    a row another transaction changed while this one waited for it)."""
    now = now or timezone.now()
    due = Redemption.objects.filter(window_closed(now=now)).order_by("acknowledge_by", "pk").values("pk")[:limit]
    return Redemption.objects.filter(window_closed(now=now), pk__in=Subquery(due)).update(
        acknowledgement=A.DEEMED_CONFIRMED
    )
