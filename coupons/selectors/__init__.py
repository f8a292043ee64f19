"""Reads of the coupon program: pool figures from ledger totals, and their recomputation from rows."""

import csv
import datetime as dt
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Final, TypedDict

from django.db import connections, router
from django.db.models import BigIntegerField, Count, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from config.errors import NotFound
from coupons import books
from coupons.models import (
    BASIS_POINTS_WHOLE,
    DEFAULT_PROGRAM,
    CapOverride,
    Claim,
    Grant,
    Program,
    ProgramYear,
    Redemption,
    Settlement,
)
from coupons.selectors.scopes import grant_redeemed_fen_expression
from coupons.services.years import PROGRAM_TIME_ZONE, year_end
from ledger.models import Account
from ledger.selectors import account_balance_daily, available_fen_expression, balance_of


@dataclass(frozen=True, kw_only=True)
class PoolFigures:
    """A program year's money, in fen.

    pool = available + issued − revoked, and issued = unspent grant balances + held + redeemed +
    revoked + lapsed; `redeemed` counts captured redemptions and approved claims, and `settled` is
    the part of `redeemed` paid out to providers and to enterprises.
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


def _year_ref(program: str, year: int) -> ProgramYear:
    """A program year as the account codes name it (not read from the database)."""
    return ProgramYear(program_id=program, year=year)


def program_year_figures(*, year: int, program: str = DEFAULT_PROGRAM) -> PoolFigures:
    """The program year's figures, read from ledger account totals (not from domain rows)."""
    ref = _year_ref(program, year)
    appropriation = _totals(books.appropriation_code(ref))
    pool = _totals(books.pool_code(ref))
    lapsed = _totals(books.lapsed_code(ref))
    disbursed = _totals(books.disbursed_code(ref))
    grants = Account.objects.filter(code__startswith=books.grant_code_prefix(ref)).aggregate(
        held=Sum("debits_pending"), available=Sum(available_fen_expression())
    )
    grants_held = int(grants["held"] or 0)
    grants_unspent = int(grants["available"] or 0)
    pool_fen = appropriation.debits_posted
    issued_fen = pool.debits_posted
    revoked_fen = pool.credits_posted - pool_fen
    lapsed_fen = balance_of(lapsed).credit_balance_fen
    return PoolFigures(
        pool_fen=pool_fen,
        issued_fen=issued_fen,
        held_fen=grants_held,
        redeemed_fen=issued_fen - grants_unspent - grants_held - revoked_fen - lapsed_fen,
        settled_fen=balance_of(disbursed).credit_balance_fen,
        lapsed_fen=lapsed_fen,
        revoked_fen=revoked_fen,
        available_fen=balance_of(pool).available_fen,
    )


def program_year_figures_from_rows(*, year: int, program: str = DEFAULT_PROGRAM) -> PoolFigures:
    """The same figures recomputed from grants, redemptions, claims and settlements: the audit's cross-check."""
    program_year = ProgramYear.objects.get(program_id=program, year=year)
    grants = Grant.objects.filter(year=program_year)
    redemptions = Redemption.objects.filter(grant__year=program_year)
    claims = Claim.objects.filter(grant__year=program_year)

    def total(queryset: object, field: str) -> int:
        return int(queryset.aggregate(total=Sum(field))["total"] or 0)  # type: ignore[attr-defined]

    issued_fen = total(grants, "amount_fen")
    revoked_fen = total(grants, "revoked_fen")
    held_fen = total(redemptions.filter(status=Redemption.Status.PENDING), "coupon_fen") + total(
        claims.filter(status=Claim.Status.SUBMITTED), "coupon_fen"
    )
    redeemed_fen = total(redemptions.filter(status=Redemption.Status.CAPTURED), "coupon_fen") + total(
        claims.filter(status__in=[Claim.Status.APPROVED, Claim.Status.PAID]), "coupon_fen"
    )
    lapsed_fen = total(grants, "lapsed_fen") + total(
        redemptions.filter(status=Redemption.Status.REVERSED, reversed_to="lapsed"), "coupon_fen"
    )
    paid = Q(settlement__status=Settlement.Status.PAID)
    settled_fen = (
        total(redemptions.filter(paid), "coupon_fen")
        - total(redemptions.filter(clawback_settlement__status=Settlement.Status.PAID), "coupon_fen")
        + total(claims.filter(paid), "coupon_fen")
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
    """available, held and redeemed for one grant, from its ledger account, its redemptions and its
    claims: the figures `grants_with_figures` annotates on a list, in one query."""
    figures = (
        Grant.objects.filter(pk=grant.pk)
        .annotate(
            available_fen=available_fen_expression("account__"),
            held_fen=F("account__debits_pending"),
            redeemed_fen=grant_redeemed_fen_expression(),
        )
        .values("available_fen", "held_fen", "redeemed_fen")
        .get()
    )
    return {name: int(value) for name, value in figures.items()}


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
    """The settlement's lines for the bank and the payee: each redemption paid (kind `redemption`,
    positive) and each clawback netted (kind `clawback`, negative), in fen. An enterprise settlement's
    lines are its claims (kind `claim`): the claim's id, its invoice number as the bill number, and
    when it was approved as the capture time."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator=CSV_LINE_END)
    writer.writerow(SETTLEMENT_CSV_HEADER)
    lines = [("redemption", 1, r) for r in settlement.redemptions.order_by("pk")]
    lines += [("clawback", -1, r) for r in settlement.clawbacks.order_by("pk")]
    related = Redemption.objects.select_related("grant__application", "grant__enterprise")
    rows = {r.pk: r for r in related.filter(pk__in=[r.pk for _, _, r in lines])}
    for number, (kind, sign, line) in enumerate(lines, start=1):
        redemption = rows[line.pk]
        captured_at = redemption.captured_at
        writer.writerow(
            (
                number,
                kind,
                redemption.pk,
                redemption.grant.code,
                # Names and numbers the enterprise or the provider chose: never a spreadsheet formula.
                spreadsheet_safe(redemption.grant.enterprise.name),
                spreadsheet_safe(redemption.grant.application.contract_number),
                spreadsheet_safe(redemption.bill_number),
                redemption.bill_amount_fen,
                sign * redemption.coupon_fen,
                timezone.localtime(captured_at, PROGRAM_TIME_ZONE).isoformat() if captured_at else "",
            )
        )
    for number, claim in enumerate(
        settlement.claims.select_related("grant__application", "grant__enterprise").order_by("pk"),
        start=len(lines) + 1,
    ):
        writer.writerow(
            (
                number,
                "claim",
                claim.pk,
                claim.grant.code,
                spreadsheet_safe(claim.grant.enterprise.name),
                spreadsheet_safe(claim.grant.application.contract_number),
                claim.invoice_number,
                claim.bill_amount_fen,
                claim.coupon_fen,
                timezone.localtime(claim.decided_at, PROGRAM_TIME_ZONE).isoformat() if claim.decided_at else "",
            )
        )
    writer.writerow(("", "total", "", "", "", "", "", "", settlement.total_fen, ""))
    return out.getvalue()


# --- Pool statistics -------------------------------------------------------------------------------

TOP_ENTERPRISES_COUNT: Final = 10
# The forecast averages net issuance over at least this long: the first hours of a year say little.
FORECAST_AVERAGING_S_MIN: Final = 86_400


class ComputeSourceFigures(TypedDict):
    compute_source: str
    issued_fen: int
    redeemed_fen: int
    grants_count: int


class ProviderFigures(TypedDict):
    provider: int
    name: str
    issued_fen: int
    redeemed_fen: int


class EnterpriseFigures(TypedDict):
    enterprise: int
    name: str
    issued_fen: int
    cap_fen: int
    cap_used_share_bp: int


@dataclass(frozen=True, kw_only=True)
class PoolStats:
    """A program year's figures (from the ledger) and their breakdowns (from grant and redemption rows)."""

    program: str
    year: int
    figures: PoolFigures
    by_compute_source: list[ComputeSourceFigures]
    by_provider: list[ProviderFigures]
    top_enterprises: list[EnterpriseFigures]
    forecast_exhausted_on: dt.date | None

    def as_dict(self) -> dict[str, object]:
        return {
            "program": self.program,
            "year": self.year,
            **self.figures.as_dict(),
            "by_compute_source": self.by_compute_source,
            "by_provider": self.by_provider,
            "top_enterprises": self.top_enterprises,
            "forecast_exhausted_on": self.forecast_exhausted_on,
        }


def _cap_fen_of_enterprise(program_year: ProgramYear) -> Coalesce:
    """The cap of the enterprise in the outer query: its latest override for the year, or the default."""
    latest = CapOverride.objects.filter(enterprise_id=OuterRef("enterprise_id"), year=program_year).order_by("-id")
    return Coalesce(
        Subquery(latest.values("cap_fen")[:1], output_field=BigIntegerField()),
        Value(program_year.default_cap_fen, output_field=BigIntegerField()),
    )


def pool_by_compute_source(*, year: ProgramYear) -> list[ComputeSourceFigures]:
    """Grants issued, coupons redeemed and the number of grants, per compute source (one query)."""
    rows = (
        Grant.objects.filter(year=year)
        .values("application__compute_source")
        .annotate(issued=Sum("amount_fen"), redeemed=Sum(grant_redeemed_fen_expression()), count=Count("pk"))
        .order_by("application__compute_source")
    )
    return [
        ComputeSourceFigures(
            compute_source=row["application__compute_source"],
            issued_fen=int(row["issued"]),
            redeemed_fen=int(row["redeemed"]),
            grants_count=row["count"],
        )
        for row in rows
    ]


class PurposeFigures(TypedDict):
    purpose: str
    issued_fen: int
    grants_count: int


def pool_by_purpose(*, year: ProgramYear) -> list[PurposeFigures]:
    """Grants issued and their number per purpose of the contract, largest issuance first (one query)."""
    rows = (
        Grant.objects.filter(year=year)
        .values("application__purpose")
        .annotate(issued=Sum("amount_fen"), count=Count("pk"))
        .order_by("-issued", "application__purpose")
    )
    return [
        PurposeFigures(purpose=row["application__purpose"], issued_fen=int(row["issued"]), grants_count=row["count"])
        for row in rows
    ]


def pool_by_provider(*, year: ProgramYear) -> list[ProviderFigures]:
    """Grants issued and coupons redeemed per provider, largest issuance first (one query)."""
    rows = (
        Grant.objects.filter(year=year)
        .values("provider_id", "provider__name")
        .annotate(issued=Sum("amount_fen"), redeemed=Sum(grant_redeemed_fen_expression()))
        .order_by("-issued", "provider_id")
    )
    return [
        ProviderFigures(
            provider=row["provider_id"],
            name=row["provider__name"],
            issued_fen=int(row["issued"]),
            redeemed_fen=int(row["redeemed"]),
        )
        for row in rows
    ]


def pool_top_enterprises(*, program_year: ProgramYear, count: int = TOP_ENTERPRISES_COUNT) -> list[EnterpriseFigures]:
    """The enterprises granted most in the year (one query), with their cap and the share of it used.

    The cap used is what was issued less what revocations gave back to the cap, as in `cap:E:Y`.
    """
    rows = (
        Grant.objects.filter(year=program_year)
        .values("enterprise_id", "enterprise__name")
        .annotate(issued=Sum("amount_fen"), revoked=Sum("revoked_fen"), cap=_cap_fen_of_enterprise(program_year))
        .order_by("-issued", "enterprise_id")[:count]
    )
    return [
        EnterpriseFigures(
            enterprise=row["enterprise_id"],
            name=row["enterprise__name"],
            issued_fen=int(row["issued"]),
            cap_fen=int(row["cap"]),
            cap_used_share_bp=(int(row["issued"]) - int(row["revoked"])) * BASIS_POINTS_WHOLE // int(row["cap"]),
        )
        for row in rows
    ]


def pool_forecast_exhausted_on(*, program_year: ProgramYear, figures: PoolFigures, now: dt.datetime) -> dt.date | None:
    """The day (Asia/Shanghai) the pool runs out if net issuance (issued − revoked) goes on at its
    average daily pace since the year opened (or began, if it opened before); None when nothing
    was issued net, or when the pool would outlast the year."""
    net_issued_fen = figures.issued_fen - figures.revoked_fen
    if net_issued_fen <= 0 or program_year.opened_at is None:
        return None
    since = max(program_year.opened_at, year_end(program_year.year - 1))
    elapsed_s = max(int((now - since).total_seconds()), FORECAST_AVERAGING_S_MIN)
    # available ÷ (net issued ÷ elapsed), in whole seconds, rounded down: integers only.
    remaining_s = max(figures.available_fen, 0) * elapsed_s // net_issued_fen
    if remaining_s >= (year_end(program_year.year) - now).total_seconds():
        return None
    return timezone.localtime(now + dt.timedelta(seconds=remaining_s), PROGRAM_TIME_ZONE).date()


def pool_stats(*, year: int, now: dt.datetime | None = None, program: str = DEFAULT_PROGRAM) -> PoolStats:
    """The program year's figures exactly as `program_year_figures` reads them from the ledger, with
    their breakdowns and the forecast. A fixed number of queries, however many grants the year has."""
    program_year = ProgramYear.objects.filter(program_id=program, year=year).first()
    if program_year is None:
        raise NotFound(f"No program year {year} in program {program}.")
    figures = program_year_figures(year=year, program=program)
    return PoolStats(
        program=program,
        year=year,
        figures=figures,
        by_compute_source=pool_by_compute_source(year=program_year),
        by_provider=pool_by_provider(year=program_year),
        top_enterprises=pool_top_enterprises(program_year=program_year),
        forecast_exhausted_on=pool_forecast_exhausted_on(
            program_year=program_year, figures=figures, now=now or timezone.now()
        ),
    )


# --- Every program side by side: an administrator's overview ------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProgramFigures:
    """One program's year in the overview: who it is and its year's figures from the ledger. A program
    without that year shows `year_status` None and zero figures."""

    program: str
    name: str
    name_en: str
    level: str
    status: str
    year_status: str | None
    figures: PoolFigures

    def as_dict(self) -> dict[str, object]:
        return {
            "program": self.program,
            "name": self.name,
            "name_en": self.name_en,
            "level": self.level,
            "status": self.status,
            "year_status": self.year_status,
            **self.figures.as_dict(),
        }


@dataclass(frozen=True, kw_only=True)
class ProgramsOverview:
    """Every program's figures for one calendar year, and their totals: each total is the sum of the
    programs' figures (the funds are separate pools; the totals say what the administrators run)."""

    year: int
    programs: list[ProgramFigures]
    totals: PoolFigures

    def as_dict(self) -> dict[str, object]:
        return {
            "year": self.year,
            "programs": [row.as_dict() for row in self.programs],
            "totals": self.totals.as_dict(),
        }


def pool_figures_sum(figures: list[PoolFigures]) -> PoolFigures:
    """Figure by figure, the sum of several program years' figures."""
    names = PoolFigures.__dataclass_fields__
    return PoolFigures(**{name: sum(getattr(each, name) for each in figures) for name in names})


def programs_overview(*, year: int, programs: list[str] | None = None) -> ProgramsOverview:
    """Each program's year `year` (or only the `programs` named, by slug), in slug order, with the
    figures exactly as `program_year_figures` reads them from the ledger, and the totals across them.
    The API (`GET /stats/programs/`) and the portal's dashboard read it alike."""
    chosen = Program.objects.order_by("slug")
    if programs is not None:
        chosen = chosen.filter(slug__in=programs)
    year_status = dict(ProgramYear.objects.filter(year=year).values_list("program_id", "status"))
    rows = [
        ProgramFigures(
            program=program.slug,
            name=program.name,
            name_en=program.name_en,
            level=program.level,
            status=program.status,
            year_status=year_status.get(program.slug),
            figures=program_year_figures(year=year, program=program.slug)
            if program.slug in year_status
            else PoolFigures(**dict.fromkeys(PoolFigures.__dataclass_fields__, 0)),
        )
        for program in chosen
    ]
    return ProgramsOverview(year=year, programs=rows, totals=pool_figures_sum([row.figures for row in rows]))


# --- The dashboard: the pool over the year and the enterprises near their cap ---------------------


@dataclass(frozen=True, kw_only=True)
class EnterpriseCapUse:
    enterprise: int
    name: str
    used_fen: int
    cap_fen: int

    @property
    def left_fen(self) -> int:
        return self.cap_fen - self.used_fen

    @property
    def used_share_bp(self) -> int:
        return self.used_fen * BASIS_POINTS_WHOLE // self.cap_fen if self.cap_fen else BASIS_POINTS_WHOLE


def pool_available_by_day(*, year: int, program: str = DEFAULT_PROGRAM) -> list[tuple[dt.date, int]]:
    """What the pool had available at the end of each day (Asia/Shanghai) on which it changed,
    oldest first, read from the totals the ledger recorded on the pool account's transfers: the
    last point is `program_year_figures(year=year).available_fen`."""
    pool = Account.objects.filter(code=books.pool_code(_year_ref(program, year))).first()
    if pool is None:
        return []
    return [
        (day, balance.available_fen)
        for day, balance in account_balance_daily(account_id=pool.pk, time_zone=PROGRAM_TIME_ZONE)
    ]


def enterprises_near_cap(*, program_year: ProgramYear, threshold_bp: int) -> list[EnterpriseCapUse]:
    """Enterprises that used (issued less revoked) at least `threshold_bp` of their cap for the year,
    the closest to their cap first. One query, however many grants the year has. Raw SQL, so it asks
    the router which database reads go to (the replica under the dashboard: config/replica.py)."""
    with connections[router.db_for_read(Grant)].cursor() as cursor:
        cursor.execute(
            """
            WITH caps AS (
                SELECT DISTINCT ON (enterprise_id) enterprise_id, cap_fen FROM coupons_capoverride
                 WHERE year_id = %(year)s ORDER BY enterprise_id, id DESC
            )
            SELECT g.enterprise_id, e.name, sum(g.amount_fen - g.revoked_fen) AS used_fen,
                   coalesce(c.cap_fen, %(default_cap)s) AS cap_fen
              FROM coupons_grant g JOIN accounts_enterprise e ON e.id = g.enterprise_id
              LEFT JOIN caps c ON c.enterprise_id = g.enterprise_id
             WHERE g.year_id = %(year)s
             GROUP BY g.enterprise_id, e.name, c.cap_fen
            HAVING sum(g.amount_fen - g.revoked_fen) * 10000 >= coalesce(c.cap_fen, %(default_cap)s) * %(bp)s
             ORDER BY sum(g.amount_fen - g.revoked_fen)::numeric
                      / greatest(coalesce(c.cap_fen, %(default_cap)s), 1) DESC, g.enterprise_id
            """,
            {"year": program_year.pk, "default_cap": program_year.default_cap_fen, "bp": threshold_bp},
        )
        return [
            EnterpriseCapUse(enterprise=enterprise_id, name=name, used_fen=int(used), cap_fen=int(cap))
            for enterprise_id, name, used, cap in cursor.fetchall()
        ]


def enterprise_cap_use(*, enterprise_id: int, program_year: ProgramYear) -> EnterpriseCapUse:
    """The enterprise's cap for the year and how much of it its grants use, from its ledger cap account."""
    from coupons.services.years import enterprise_cap_fen

    cap_fen = enterprise_cap_fen(enterprise_id=enterprise_id, year=program_year)
    account = Account.objects.filter(code=books.cap_code(enterprise_id, program_year)).first()
    used_fen = 0
    if account is not None:
        used_fen = cap_fen - balance_of(account).available_fen
    return EnterpriseCapUse(enterprise=enterprise_id, name="", used_fen=used_fen, cap_fen=cap_fen)


# --- The public notice (公示) ----------------------------------------------------------------------

PUBLIC_AWARDS_CSV_HEADER: Final = (
    "enterprise",
    "uscc",
    "amount_fen",
    "approved_on",
    "grant_code",
    "program",
    "program_name",
)
PUBLIC_AWARDS_CSV_CHUNK_ROWS: Final = 2_000  # Rows fetched at a time while the CSV streams out.
# A cell starting with one of these is a formula to a spreadsheet; enterprise names are public input.
# They are compared after NFKC folding, so full-width ＝ ＋ － ＠ and the small ﹦ ﹢ ﹣ ﹫ (which
# spreadsheets with East Asian input settings may fold the same way) count as well.
SPREADSHEET_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
# CRLF, as RFC 4180 and Excel write it. Python's csv quotes a field only for the characters of the
# line end, so with a bare "\n" a name holding "\r" went out unquoted and split its row in two.
CSV_LINE_END: Final = "\r\n"


def public_awards(*, year: int | None = None, program: str | None = None) -> QuerySet[Grant]:
    """Approved grants for the public notice, oldest first, each naming its program (`program_slug`,
    `program_name`); a revoked grant is withdrawn from it. Every program's, or only `program`'s."""
    grants = (
        Grant.objects.exclude(status=Grant.Status.REVOKED)
        .select_related("enterprise")
        .only("code", "amount_fen", "issued_at", "enterprise__name", "enterprise__uscc")
        .annotate(program_slug=F("year__program_id"), program_name=F("year__program__name"))
        .order_by("issued_at", "pk")
    )
    if program is not None:
        grants = grants.filter(year__program_id=program)
    return grants if year is None else grants.filter(year__year=year)


def approved_on(grant: Grant) -> dt.date:
    """The day of approval in Asia/Shanghai: the grant is issued when its application is approved."""
    return timezone.localtime(grant.issued_at, PROGRAM_TIME_ZONE).date()


def spreadsheet_formula_start(text: str) -> bool:
    """True when a spreadsheet could read the text as a formula, look-alike characters included."""
    return unicodedata.normalize("NFKC", text[:1]).startswith(SPREADSHEET_FORMULA_STARTS)


def spreadsheet_safe(text: str) -> str:
    """The text, with a leading quote when it could start a formula (the text itself unchanged)."""
    return "'" + text if spreadsheet_formula_start(text) else text


class CsvLines:
    """A file-like object whose write returns the line: csv.writer then yields lines one by one."""

    def write(self, line: str) -> str:
        return line


def public_awards_csv_lines(*, year: int | None = None, program: str | None = None) -> Iterator[str]:
    """The public notice as CSV lines (header first, amounts in fen), read with one streaming query."""
    writer = csv.writer(CsvLines(), lineterminator=CSV_LINE_END)
    yield writer.writerow(PUBLIC_AWARDS_CSV_HEADER)
    for grant in public_awards(year=year, program=program).iterator(chunk_size=PUBLIC_AWARDS_CSV_CHUNK_ROWS):
        yield writer.writerow(
            (
                spreadsheet_safe(grant.enterprise.name),
                grant.enterprise.uscc,
                grant.amount_fen,
                approved_on(grant).isoformat(),
                grant.code,
                grant.program_slug,  # type: ignore[attr-defined]
                grant.program_name,  # type: ignore[attr-defined]
            )
        )
