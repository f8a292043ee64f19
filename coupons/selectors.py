"""Reads of the coupon program: pool figures from ledger totals, and their recomputation from rows."""

from dataclasses import asdict, dataclass

from django.db.models import Q, Sum

from coupons import books
from coupons.models import Grant, ProgramYear, Redemption, Settlement
from ledger.models import Account


@dataclass(frozen=True, kw_only=True)
class PoolFigures:
    """A program year's money, in fen.

    pool = available + issued − revoked, and issued = unspent grant balances + held + redeemed +
    revoked + lapsed; `settled` is the part of `redeemed` paid out to providers.
    """

    pool_fen: int
    issued_fen: int
    held_fen: int
    redeemed_fen: int
    settled_fen: int
    lapsed_fen: int
    revoked_fen: int
    available_fen: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _totals(code: str) -> Account:
    account = Account.objects.filter(code=code).first()
    return account if account is not None else Account(code=code)


def program_year_figures(*, year: int) -> PoolFigures:
    """The year's figures, read from ledger account totals (not from domain rows)."""
    appropriation = _totals(books.appropriation_code(year))
    pool = _totals(books.pool_code(year))
    lapsed = _totals(books.lapsed_code(year))
    disbursed = _totals(books.disbursed_code(year))
    grants = Account.objects.filter(code__startswith=books.grant_code_prefix(year)).aggregate(
        debits_pending=Sum("debits_pending"), debits_posted=Sum("debits_posted"), credits_posted=Sum("credits_posted")
    )
    grants_held = int(grants["debits_pending"] or 0)
    grants_unspent = int(grants["credits_posted"] or 0) - int(grants["debits_posted"] or 0) - grants_held
    pool_fen = appropriation.debits_posted
    issued_fen = pool.debits_posted
    revoked_fen = pool.credits_posted - pool_fen
    lapsed_fen = lapsed.credits_posted - lapsed.debits_posted
    return PoolFigures(
        pool_fen=pool_fen,
        issued_fen=issued_fen,
        held_fen=grants_held,
        redeemed_fen=issued_fen - grants_unspent - grants_held - revoked_fen - lapsed_fen,
        settled_fen=disbursed.credits_posted - disbursed.debits_posted,
        lapsed_fen=lapsed_fen,
        revoked_fen=revoked_fen,
        available_fen=pool.credits_posted - pool.debits_posted - pool.debits_pending,
    )


def program_year_figures_from_rows(*, year: int) -> PoolFigures:
    """The same figures recomputed from grants, redemptions and settlements: the audit's cross-check."""
    program_year = ProgramYear.objects.get(year=year)
    grants = Grant.objects.filter(year=program_year)
    redemptions = Redemption.objects.filter(grant__year=program_year)

    def total(queryset: object, field: str) -> int:
        return int(queryset.aggregate(total=Sum(field))["total"] or 0)  # type: ignore[attr-defined]

    issued_fen = total(grants, "amount_fen")
    revoked_fen = total(grants, "revoked_fen")
    held_fen = total(redemptions.filter(status=Redemption.Status.PENDING), "coupon_fen")
    redeemed_fen = total(redemptions.filter(status=Redemption.Status.CAPTURED), "coupon_fen")
    lapsed_fen = total(redemptions.filter(status=Redemption.Status.REVERSED, reversed_to="lapsed"), "coupon_fen")
    paid = Q(settlement__status=Settlement.Status.PAID)
    settled_fen = total(redemptions.filter(paid), "coupon_fen") - total(
        redemptions.filter(clawback_settlement__status=Settlement.Status.PAID), "coupon_fen"
    )
    opened = program_year.status != ProgramYear.Status.DRAFT
    pool_fen = program_year.pool_fen if opened else 0
    return PoolFigures(
        pool_fen=pool_fen,
        issued_fen=issued_fen,
        held_fen=held_fen,
        redeemed_fen=redeemed_fen,
        settled_fen=settled_fen,
        lapsed_fen=lapsed_fen,
        revoked_fen=revoked_fen,
        available_fen=pool_fen - issued_fen + revoked_fen,
    )


def grant_figures(grant: Grant) -> dict[str, int]:
    """available, held and redeemed for one grant, from its ledger account and its redemptions."""
    account = Account.objects.get(pk=grant.account_id)
    redeemed = grant.redemptions.filter(status=Redemption.Status.CAPTURED).aggregate(total=Sum("coupon_fen"))["total"]
    return {
        "available_fen": account.credits_posted - account.debits_posted - account.debits_pending,
        "held_fen": account.debits_pending,
        "redeemed_fen": int(redeemed or 0),
    }


SETTLEMENT_CSV_HEADER = (
    "line",
    "kind",
    "redemption_id",
    "grant_code",
    "enterprise",
    "contract_number",
    "bill_number",
    "bill_amount_fen",
    "coupon_fen",
    "captured_at",
)


def settlement_lines_csv(settlement: Settlement) -> str:
    """The settlement's lines for the bank and the provider: each redemption paid (kind
    `redemption`, positive) and each clawback netted (kind `clawback`, negative), in fen."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SETTLEMENT_CSV_HEADER)
    lines = [("redemption", 1, r) for r in settlement.redemptions.order_by("pk")]
    lines += [("clawback", -1, r) for r in settlement.clawbacks.order_by("pk")]
    related = Redemption.objects.select_related("grant__application", "grant__enterprise")
    rows = {r.pk: r for r in related.filter(pk__in=[r.pk for _, _, r in lines])}
    for number, (kind, sign, line) in enumerate(lines, start=1):
        redemption = rows[line.pk]
        writer.writerow(
            (
                number,
                kind,
                redemption.pk,
                redemption.grant.code,
                redemption.grant.enterprise.name,
                redemption.grant.application.contract_number,
                redemption.bill_number,
                redemption.bill_amount_fen,
                sign * redemption.coupon_fen,
                redemption.captured_at.isoformat() if redemption.captured_at else "",
            )
        )
    writer.writerow(("", "total", "", "", "", "", "", "", settlement.total_fen, ""))
    return out.getvalue()
