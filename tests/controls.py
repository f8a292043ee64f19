"""The four sensitive actions as most tests need them: done by two people, in one call; and a
settlement of bills the enterprises acknowledged, as tests of other things need it.

The services take both people (`requested_by`, the person who asked; `actor`, the different person
who decides), as the approval of a request calls them. Tests of other things pass the decider they
care about and get a fresh colleague as the requester; for a payment, a fresh finance user confirms
it when the given one created the settlement. The controls themselves are tested in
`tests/approvals/` and `tests/api/test_approval_requests.py`.
"""

import datetime as dt

from accounts.models import Enterprise, Provider, Role, User
from coupons.models import CapOverride, Grant, Redemption, Settlement
from coupons.services import grants, redemptions, settlements, years
from coupons.services.acknowledgements import redemption_acknowledge
from tests.factories import UserFactory


def colleague(role: Role) -> User:
    return UserFactory(roles=[role])


def redemption_reverse(
    *, redemption: Redemption, actor: User, reason: str, now: dt.datetime | None = None
) -> Redemption:
    return redemptions.redemption_reverse(
        redemption=redemption, actor=actor, requested_by=colleague(Role.REVIEWER), reason=reason, now=now
    )


def grant_revoke(*, grant: Grant, actor: User, reason: str, now: dt.datetime | None = None) -> Grant:
    return grants.grant_revoke(grant=grant, actor=actor, requested_by=colleague(Role.REVIEWER), reason=reason, now=now)


def settlement_pay(*, settlement: Settlement, actor: User, bank_reference: str) -> Settlement:
    payer = colleague(Role.FINANCE) if actor.pk == settlement.created_by_id else actor
    return settlements.settlement_pay(
        settlement=settlement, actor=payer, requested_by=colleague(Role.FINANCE), bank_reference=bank_reference
    )


def cap_override_grant(
    *, year: int, enterprise: Enterprise, cap_fen: int, reason: str, requested_by: User, actor: User
) -> CapOverride:
    return years.cap_override_grant(
        year=year, enterprise=enterprise, cap_fen=cap_fen, reason=reason, requested_by=requested_by, actor=actor
    )


def bills_acknowledged(provider: Provider) -> list[Redemption]:
    """Each of the provider's captured bills still awaiting its enterprise, acknowledged by a member
    of that enterprise at the moment it was captured (so inside its window, whatever the clock)."""
    awaiting = Redemption.objects.filter(
        provider=provider, status=Redemption.Status.CAPTURED, acknowledgement=Redemption.Acknowledgement.AWAITING
    ).select_related("grant")
    members: dict[int, User] = {}
    done = []
    for redemption in awaiting.order_by("pk"):
        enterprise_id = redemption.grant.enterprise_id
        member = members.get(enterprise_id) or UserFactory(enterprise_id=enterprise_id)
        members[enterprise_id] = member
        done.append(redemption_acknowledge(redemption=redemption, actor=member, now=redemption.captured_at))
    return done


def settlement_create(*, provider: Provider, actor: User, now: dt.datetime | None = None) -> Settlement:
    """`settlements.settlement_create` once the enterprises acknowledged the provider's captured bills."""
    bills_acknowledged(provider)
    return settlements.settlement_create(provider=provider, actor=actor, now=now)
