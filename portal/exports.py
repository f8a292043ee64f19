"""Finance exports: grants, redemptions and settlements of a period, as CSV or XLSX.

Grants and redemptions name the program and year their coupon belongs to; a settlement may pay
lines of several programs, so it names none (its lines do, in its own CSV).

Amounts are whole fen (exact integers, as in the API) with a yuan column beside them for people.
The period is in Asia/Shanghai days, both ends included. Text that enterprises or providers chose
is made safe for spreadsheets (no formula), as in the other CSV files.
"""

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from django.db.models import QuerySet
from django.utils import timezone
from openpyxl.cell import WriteOnlyCell

from accounts.models import User
from config.money import yuan_decimal
from coupons.models import Grant, Redemption, Settlement
from coupons.selectors import CSV_LINE_END, CsvLines, spreadsheet_formula_start, spreadsheet_safe
from coupons.selectors.scopes import grants_visible_to, redemptions_visible_to, settlements_visible_to
from coupons.services.years import PROGRAM_TIME_ZONE

EXPORT_ROWS_MAX: Final = 200_000  # An XLSX of this many rows is built in memory; far above a year's grants.
EXPORT_CHUNK_ROWS: Final = 2_000
YUAN_FORMAT: Final = "#,##0.00"


def _when(moment: dt.datetime | None) -> str:
    return timezone.localtime(moment, PROGRAM_TIME_ZONE).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


@dataclass(frozen=True)
class Export:
    name: str
    header: tuple[str, ...]
    money_columns: frozenset[str]  # Columns holding yuan Decimals (formatted in XLSX).
    queryset: Callable[[User, dt.datetime, dt.datetime], QuerySet[Any]]  # What the user sees of a period.
    row: Callable[[Any], tuple[Any, ...]]


def _grant_row(grant: Grant) -> tuple[Any, ...]:
    return (
        grant.code,
        grant.year.program_id,
        grant.year.year,
        spreadsheet_safe(grant.enterprise.name),
        grant.enterprise.uscc,
        spreadsheet_safe(grant.provider.name),
        spreadsheet_safe(grant.application.contract_number),
        grant.rate_bp,
        grant.amount_fen,
        yuan_decimal(grant.amount_fen),
        grant.revoked_fen,
        grant.lapsed_fen,
        grant.status,
        _when(grant.issued_at),
        _when(grant.expires_at),
    )


def _redemption_row(redemption: Redemption) -> tuple[Any, ...]:
    return (
        redemption.pk,
        redemption.grant.code,
        redemption.grant.year.program_id,
        redemption.grant.year.year,
        spreadsheet_safe(redemption.grant.enterprise.name),
        spreadsheet_safe(redemption.provider.name),
        spreadsheet_safe(redemption.grant.application.contract_number),
        spreadsheet_safe(redemption.bill_number),
        redemption.bill_amount_fen,
        redemption.coupon_fen,
        yuan_decimal(redemption.coupon_fen),
        redemption.bill_amount_fen - redemption.coupon_fen,
        redemption.status,
        _when(redemption.created_at),
        _when(redemption.captured_at),
        redemption.settlement_id or "",
    )


def _settlement_row(settlement: Settlement) -> tuple[Any, ...]:
    payee = settlement.provider or settlement.enterprise  # A center, or an enterprise it reimburses.
    assert payee is not None
    return (
        settlement.pk,
        spreadsheet_safe(payee.name),
        payee.uscc,
        settlement.status,
        settlement.redemptions_count,
        settlement.total_fen,
        yuan_decimal(settlement.total_fen),
        spreadsheet_safe(settlement.bank_reference),
        _when(settlement.created_at),
        _when(settlement.paid_at),
    )


EXPORTS: Final = {
    "grants": Export(
        name="grants",
        header=(
            "code", "program", "year", "enterprise", "uscc", "provider", "contract_number", "rate_bp", "amount_fen",
            "amount_yuan", "revoked_fen", "lapsed_fen", "status", "issued_at", "expires_at",
        ),
        money_columns=frozenset({"amount_yuan"}),
        queryset=lambda user, start, end: grants_visible_to(user).filter(issued_at__gte=start, issued_at__lt=end)
        .select_related("enterprise", "provider", "application", "year")
        .order_by("issued_at", "pk"),
        row=_grant_row,
    ),
    "redemptions": Export(
        name="redemptions",
        header=(
            "id", "grant_code", "program", "year", "enterprise", "provider", "contract_number", "bill_number",
            "bill_amount_fen", "coupon_fen", "coupon_yuan", "payable_fen", "status", "created_at", "captured_at",
            "settlement",
        ),
        money_columns=frozenset({"coupon_yuan"}),
        queryset=lambda user, start, end: redemptions_visible_to(user).filter(created_at__gte=start, created_at__lt=end)
        .select_related("grant__enterprise", "grant__application", "grant__year", "provider")
        .order_by("created_at", "pk"),
        row=_redemption_row,
    ),
    "settlements": Export(
        name="settlements",
        header=(
            "id", "provider", "uscc", "status", "redemptions_count", "total_fen", "total_yuan", "bank_reference",
            "created_at", "paid_at",
        ),
        money_columns=frozenset({"total_yuan"}),
        queryset=lambda user, start, end: settlements_visible_to(user).filter(created_at__gte=start, created_at__lt=end)
        .select_related("provider")
        .order_by("created_at", "pk"),
        row=_settlement_row,
    ),
}  # fmt: skip


def period_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start 00:00, the day after end 00:00) in Asia/Shanghai."""
    return (
        dt.datetime.combine(start, dt.time(), tzinfo=PROGRAM_TIME_ZONE),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=PROGRAM_TIME_ZONE),
    )


def export_rows(export: Export, start: dt.date, end: dt.date, *, user: User) -> Iterator[tuple[Any, ...]]:
    """The rows of the period that the user sees (`coupons.selectors.scopes`: staff limited to programs
    export only their programs' grants and redemptions, and the settlements wholly of theirs)."""
    since, until = period_bounds(start, end)
    for item in export.queryset(user, since, until)[:EXPORT_ROWS_MAX].iterator(chunk_size=EXPORT_CHUNK_ROWS):
        yield export.row(item)


def export_csv_lines(export: Export, start: dt.date, end: dt.date, *, user: User) -> Iterator[str]:
    """CSV lines, header first; a byte-order mark first so that Excel reads the Chinese names right."""
    writer = csv.writer(CsvLines(), lineterminator=CSV_LINE_END)
    yield "\ufeff" + writer.writerow(export.header)
    for row in export_rows(export, start, end, user=user):
        yield writer.writerow(row)


def _xlsx_text(sheet: Any, value: Any) -> Any:
    """Text made spreadsheet-safe ('=…) goes into XLSX as text with Excel's quote prefix, so the
    cell shows exactly what was typed and is never a formula; other values go in as they are."""
    if isinstance(value, str) and value.startswith("'") and spreadsheet_formula_start(value[1:]):
        cell = WriteOnlyCell(sheet, value=value[1:])
        cell.data_type = "s"
        cell.quotePrefix = True
        return cell
    return value


def export_xlsx(export: Export, start: dt.date, end: dt.date, *, user: User) -> bytes:
    """One worksheet: the header in bold, yuan columns formatted #,##0.00, fen columns as integers."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=export.name)
    bold = Font(bold=True)
    header = []
    for title in export.header:
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    money = [index for index, title in enumerate(export.header) if title in export.money_columns]
    for row in export_rows(export, start, end, user=user):
        cells: list[Any] = [_xlsx_text(sheet, value) for value in row]
        for index in money:
            cell = WriteOnlyCell(sheet, value=row[index])
            cell.number_format = YUAN_FORMAT
            cells[index] = cell
        sheet.append(cells)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
