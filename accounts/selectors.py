"""Reads about people and organisations: related parties, sanctions, verified flags, model filings, region."""

import datetime as dt
from typing import Final

from django.db.models import Q

from accounts.models import Enterprise, ModelFiling, RelatedParty, Sanction
from approvals.models import ApprovalRequest

# The approvals action of a change to a provider (`coupons.approval_actions` registers it).
PROVIDER_CHANGE_ACTION: Final = "provider_change"

# GB 32100-2015: characters 3 to 8 of a credit code are the registering authority's
# administrative-division code (GB/T 2260).
USCC_DIVISION_SLICE = slice(2, 8)


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


def sanction_in_force(uscc: str, *, on: dt.date) -> Sanction | None:
    """The sanction on the code that covers the day, if any (the one decided last)."""
    return (
        Sanction.objects.filter(uscc=uscc, valid_from__lte=on)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=on))
        .order_by("-id")
        .first()
    )


def uscc_division(uscc: str) -> str:
    """The administrative-division code of a credit code (characters 3-8)."""
    return uscc[USCC_DIVISION_SLICE]


def uscc_in_region(uscc: str, *, division_prefixes: list[str]) -> bool:
    """Whether the code was registered in one of the divisions (by prefix: `3301` is all Hangzhou)."""
    division = uscc_division(uscc)
    return any(division.startswith(prefix) for prefix in division_prefixes)


def enterprise_flags_counted(enterprise: Enterprise) -> dict[str, bool]:
    """Each flag as it counts: declared by the enterprise and confirmed by staff."""
    return {
        "has_registered_model": enterprise.flag_counts("has_registered_model"),
        "foundation_model_developer": enterprise.flag_counts("foundation_model_developer"),
        "small_or_medium": enterprise.flag_counts("small_or_medium"),
    }


def enterprise_is_verified_foundation_model_developer(enterprise: Enterprise) -> bool:
    """A verified enterprise whose foundation-model-developer flag staff confirmed: the only kind
    that may be given a relaxed cap."""
    return enterprise.status == Enterprise.Status.VERIFIED and enterprise.flag_counts("foundation_model_developer")


def model_filing_verified(filing_number: str) -> ModelFiling | None:
    """The register's filing with this number, when staff verified it; else None."""
    filing = ModelFiling.objects.filter(filing_number=filing_number).first()
    return filing if filing is not None and filing.is_verified else None
