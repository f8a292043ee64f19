"""Who may take part, checked at every step that gives or spends a coupon.

Submission checks the region (by the enterprise's credit code); submission, confirmation,
approval and redemption all check that neither party is sanctioned on the day and that the
provider is neither the enterprise itself nor a listed related party: a sanction or an
affiliation recorded after an application was made stops it at the next step.
"""

import datetime as dt

from django.utils import timezone

from accounts.models import Enterprise, Provider
from accounts.selectors import related_parties, sanction_in_force, uscc_division, uscc_in_region
from coupons.errors import AffiliatedProvider, NotEligible
from coupons.models import ProgramYear
from coupons.services.years import PROGRAM_TIME_ZONE


def program_day(moment: dt.datetime | None) -> dt.date:
    """The day in Asia/Shanghai of a moment (now by default): sanctions run by day."""
    return timezone.localtime(moment or timezone.now(), PROGRAM_TIME_ZONE).date()


def require_in_region(*, enterprise: Enterprise, year: ProgramYear) -> None:
    """The enterprise's credit code was issued in the year's region."""
    if not uscc_in_region(enterprise.uscc, division_prefixes=list(year.region_division_prefixes)):
        raise NotEligible(
            f"{enterprise.name} is registered in division {uscc_division(enterprise.uscc)}, outside the "
            f"{year.year} program's region ({', '.join(year.region_division_prefixes)}).",
            reason="outside_region",
        )


def require_not_sanctioned(*, enterprise: Enterprise, provider: Provider, now: dt.datetime | None = None) -> None:
    day = program_day(now)
    for organisation in (enterprise, provider):
        sanction = sanction_in_force(organisation.uscc, on=day)
        if sanction is not None:
            until = sanction.valid_until.isoformat() if sanction.valid_until else "further notice"
            raise NotEligible(
                f"{organisation.name} is sanctioned from {sanction.valid_from.isoformat()} until {until}: "
                f"{sanction.reason}",
                reason="sanctioned",
            )


def require_not_affiliated(*, enterprise: Enterprise, provider: Provider) -> None:
    if provider.uscc == enterprise.uscc or related_parties(provider.uscc, enterprise.uscc):
        raise AffiliatedProvider(f"{provider.name} is {enterprise.name} itself or a related party.")


def require_pair_eligible(*, enterprise: Enterprise, provider: Provider, now: dt.datetime | None = None) -> None:
    """Neither party sanctioned today, and the provider not the enterprise nor related to it."""
    require_not_affiliated(enterprise=enterprise, provider=provider)
    require_not_sanctioned(enterprise=enterprise, provider=provider, now=now)
