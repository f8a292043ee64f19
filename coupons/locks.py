"""Named row locks. Each takes FOR UPDATE on one row; callers follow the order in
`coupons/services/__init__.py`. Every function here must be called inside a transaction."""

from collections.abc import Sequence
from typing import TypeVar

from django.db.models import QuerySet

from accounts.models import Enterprise, Provider
from config.errors import NotFound
from coupons.models import DEFAULT_PROGRAM, Application, Claim, Grant, ProgramYear, Redemption, Settlement

T = TypeVar("T", Application, Claim, Enterprise, Grant, ProgramYear, Provider, Redemption, Settlement)


def _one(queryset: "QuerySet[T]", pk: int, what: str) -> T:
    # of=("self",): lock this row only, not the rows select_related joins in (the year, the provider).
    try:
        return queryset.select_for_update(of=("self",)).get(pk=pk)
    except queryset.model.DoesNotExist:
        raise NotFound(f"No {what} {pk}.") from None


def program_year_lock(year: int, program: str = DEFAULT_PROGRAM) -> ProgramYear:
    """Program `program`'s year `year` (the default program's when none is named)."""
    try:
        return ProgramYear.objects.select_for_update(of=("self",)).get(program_id=program, year=year)
    except ProgramYear.DoesNotExist:
        raise NotFound(f"No program year {year} in program {program}.") from None


def application_lock(pk: int) -> Application:
    return _one(Application.objects.select_related("enterprise", "provider", "year"), pk, "application")


def grant_lock(pk: int) -> Grant:
    return _one(Grant.objects.select_related("provider", "enterprise", "year", "application"), pk, "grant")


def redemption_lock(pk: int) -> Redemption:
    return _one(Redemption.objects.all(), pk, "redemption")


def redemptions_lock(pks: Sequence[int]) -> list[Redemption]:
    return list(Redemption.objects.select_for_update().filter(pk__in=pks).order_by("pk"))


def claim_lock(pk: int) -> Claim:
    return _one(Claim.objects.all(), pk, "claim")


def claims_lock(pks: Sequence[int]) -> list[Claim]:
    return list(Claim.objects.select_for_update().filter(pk__in=pks).order_by("pk"))


def enterprise_lock(pk: int) -> Enterprise:
    return _one(Enterprise.objects.all(), pk, "enterprise")


def provider_lock(pk: int) -> Provider:
    # FOR NO KEY UPDATE: it orders settlements of the provider, and lets a redemption's foreign key on
    # the provider (KEY SHARE, checked at its commit, after it locked the provider's ledger account)
    # through; FOR UPDATE would make that redemption wait here while holding the ledger account.
    try:
        return Provider.objects.select_for_update(no_key=True).get(pk=pk)
    except Provider.DoesNotExist:
        raise NotFound(f"No provider {pk}.") from None


def settlement_lock(pk: int) -> Settlement:
    return _one(Settlement.objects.select_related("provider"), pk, "settlement")
