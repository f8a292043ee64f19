"""Who may see what, read by the API and the portal alike: staff see everything in the programs their
roles reach (every program unless `User.programs` limits them); an enterprise its own; a provider what
names it. A view looks objects up only through these querysets, so another organisation's object, or
another program's for a staff member limited to programs, is not found (404), never forbidden."""

from collections.abc import Collection
from typing import TypeVar

from django.db.models import BigIntegerField, CharField, F, Model, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Cast, Coalesce, Concat

from accounts.models import User
from accounts.roles import require_program
from coupons.models import DEFAULT_PROGRAM, Alert, Application, Claim, Grant, Program, Redemption, Settlement
from ledger.selectors import available_fen_expression

M = TypeVar("M", bound=Model)


def _scoped(queryset: QuerySet[M], user: User, *, enterprise: str | None, provider: str, program: str) -> QuerySet[M]:
    """Staff: everything in the programs their roles reach (the `program` path names a row's program).
    A member: the rows whose `enterprise` (or `provider`) path names its organisation;
    `enterprise=None` means enterprises see none of these rows."""
    if user.is_staff_member:
        limit = user.program_limit
        return queryset if limit is None else queryset.filter(**{f"{program}__in": sorted(limit)})
    if user.enterprise_id is not None and enterprise is not None:
        return queryset.filter(**{enterprise: user.enterprise_id})
    if user.provider_id is not None:
        return queryset.filter(**{provider: user.provider_id})
    return queryset.none()


def applications_visible_to(user: User) -> QuerySet[Application]:
    return _scoped(
        Application.objects.select_related("grant", "year"),
        user,
        enterprise="enterprise_id",
        provider="provider_id",
        program="program_id",
    )


def grants_visible_to(user: User) -> QuerySet[Grant]:
    return _scoped(
        Grant.objects.select_related("account", "year"),
        user,
        enterprise="enterprise_id",
        provider="provider_id",
        program="year__program_id",
    )


def redemptions_visible_to(user: User) -> QuerySet[Redemption]:
    queryset = Redemption.objects.select_related("grant")
    return _scoped(
        queryset, user, enterprise="grant__enterprise_id", provider="provider_id", program="grant__year__program_id"
    )


def claims_visible_to(user: User) -> QuerySet[Claim]:
    """Staff see every claim; an enterprise its own; a computing center, read-only, the claims on its
    grants (it issued the invoice and is a party to the claim's documents)."""
    queryset = Claim.objects.select_related("grant")
    return _scoped(
        queryset, user, enterprise="enterprise_id", provider="grant__provider_id", program="grant__year__program_id"
    )


def settlements_visible_to(user: User) -> QuerySet[Settlement]:
    """Finance (and other staff) see all settlements; a provider its own; an enterprise those that pay it
    (enterprise reimbursement). A settlement is paid from one program's fund, so staff limited to
    programs see those of their programs."""
    return _scoped(
        Settlement.objects.all(), user, enterprise="enterprise_id", provider="provider_id", program="program_id"
    )


def alerts_visible_to(user: User) -> QuerySet[Alert]:
    """Staff see the alerts; staff limited to programs those naming one of theirs (`details.program`):
    an alert of no program (a failed audit) is for staff whose roles reach every program."""
    alerts = Alert.objects.all() if user.is_staff_member else Alert.objects.none()
    limit = user.program_limit
    return alerts if limit is None else alerts.filter(details__program__in=sorted(limit))


def programs_visible_to(user: User) -> QuerySet[Program]:
    """Every program, except to staff limited to programs: theirs. (Enterprises and providers see every
    program: they apply to and redeem in any.)"""
    limit = user.program_limit if user.is_staff_member else None
    programs = Program.objects.all()
    return programs if limit is None else programs.filter(slug__in=sorted(limit))


def program_default_for(user: User) -> str:
    """The program a page or a figure shows when none is asked for: the default program, or for staff
    limited to programs that do not include it, the first of theirs (by slug)."""
    limit = user.program_limit if user.is_staff_member else None
    return DEFAULT_PROGRAM if limit is None or DEFAULT_PROGRAM in limit else min(limit)


def program_slugs_unknown(slugs: Collection[str]) -> list[str]:
    """The slugs among `slugs` that name no program (registered with `accounts.programs`)."""
    known = set(Program.objects.filter(slug__in=list(slugs)).values_list("slug", flat=True))
    return sorted(set(slugs) - known)


# How documents' citations name the coupon program's objects (`coupons.evidence`, `services.claims.subject`).
_CITING = ((Application, "application:", "program_id"), (Redemption, "redemption:", "grant__year__program_id"))
_CITING_CLAIMS = (Claim, "claim:", "grant__year__program_id")


def citations_within_reach(user: User) -> Q:
    """The citations (a filter on `evidence.Citation`) a staff member limited to programs reaches: those
    of the applications, redemptions and claims of their programs, and those of no coupon object
    (registered with `evidence.selectors`, which knows nothing of programs)."""
    programs = sorted(user.program_limit or ())
    reach = ~Q(subject__regex=r"^(application|redemption|claim):")
    for model, prefix, program_path in (*_CITING, _CITING_CLAIMS):
        subjects = (
            model.objects.filter(**{f"{program_path}__in": programs})
            .annotate(subject=Concat(Value(prefix), Cast("pk", CharField())))
            .values("subject")
        )
        reach |= Q(subject__in=subjects)
    return reach


def program_within_reach(user: User, program: str) -> None:
    """A staff member's roles reach the program (slug), else NotFound as for any object out of scope.
    Members of organisations are not limited by program here (their own objects scope them)."""
    if user.is_staff_member:
        require_program(user, program)


def grant_redeemed_fen_expression() -> CombinedExpression:
    """The captured coupons and approved (or paid) claims of the grant in the outer query, in fen:
    redeemed, as the ledger counts it (a reversed redemption went back to its grant or to the lapsed
    account). In a year of enterprise reimbursement the coupons are claimed, not redeemed."""
    captured = (
        Redemption.objects.filter(grant=OuterRef("pk"), status=Redemption.Status.CAPTURED)
        .order_by()
        .values("grant")
        .annotate(total=Sum("coupon_fen"))
        .values("total")
    )
    claimed = (
        Claim.objects.filter(grant=OuterRef("pk"), status__in=[Claim.Status.APPROVED, Claim.Status.PAID])
        .order_by()
        .values("grant")
        .annotate(total=Sum("coupon_fen"))
        .values("total")
    )
    return Coalesce(Subquery(captured, output_field=BigIntegerField()), Value(0)) + Coalesce(
        Subquery(claimed, output_field=BigIntegerField()), Value(0)
    )


def grants_with_figures(user: User) -> QuerySet[Grant]:
    """The caller's grants, each with its ledger account joined and its figures annotated.

    One query for a whole page: `available_fen` and `held_fen` come from the account's running
    totals, and `redeemed_fen` (captured coupons, approved claims) from one correlated sum per row,
    never a query per grant.
    """
    return grants_visible_to(user).annotate(
        available_fen=available_fen_expression("account__"),
        held_fen=F("account__debits_pending"),
        redeemed_fen=grant_redeemed_fen_expression(),
    )
