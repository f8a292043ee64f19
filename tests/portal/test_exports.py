"""Finance exports at /exports/: grants, redemptions and settlements of a period, as CSV or XLSX.

The period is whole days in Asia/Shanghai with both ends included, so each export is tried with a
row a microsecond before the first day, one at its first instant, one at the last second of the
last day and one at the first instant after it. Amounts are exact fen with a yuan column beside
them; names people chose never reach a spreadsheet as a formula.
"""

import csv
import dataclasses
import datetime as dt
import html
import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils.translation import gettext, override
from openpyxl import load_workbook

from accounts.models import Enterprise, Provider, Role, User
from coupons.models import Grant, ProgramYear, Redemption, Settlement
from coupons.services.redemptions import redemption_create
from coupons.services.years import PROGRAM_TIME_ZONE
from tests.controls import grant_revoke, settlement_create, settlement_pay
from tests.coupons.conftest import Cast
from tests.evidence import invoice
from tests.factories import EnterpriseFactory, UserFactory
from tests.portal.conftest import this_year, walk_to_grant

pytestmark = pytest.mark.django_db

AsUser = Callable[..., Client]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

GRANTS_HEADER = [
    "code", "program", "year", "enterprise", "uscc", "provider", "contract_number", "rate_bp", "amount_fen",
    "amount_yuan", "revoked_fen", "lapsed_fen", "status", "issued_at", "expires_at",
]  # fmt: skip
REDEMPTIONS_HEADER = [
    "id", "grant_code", "program", "year", "enterprise", "provider", "contract_number", "bill_number",
    "bill_amount_fen", "coupon_fen", "coupon_yuan", "payable_fen", "status", "created_at", "captured_at", "settlement",
]  # fmt: skip
SETTLEMENTS_HEADER = [
    "id", "provider", "uscc", "status", "redemptions_count", "total_fen", "total_yuan", "bank_reference",
    "created_at", "paid_at",
]  # fmt: skip


def shanghai(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0
) -> dt.datetime:
    """A moment on the wall clocks of Hangzhou."""
    return dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=PROGRAM_TIME_ZONE)


def start() -> dt.date:
    return dt.date(this_year(), 3, 1)


def end() -> dt.date:
    return dt.date(this_year(), 3, 31)


def moments() -> dict[str, dt.datetime]:
    """Around the period March 1 to March 31 of this year, Asia/Shanghai."""
    year = this_year()
    return {
        "just_before": shanghai(year, 2, 28, 23, 59, 59, 999_999),
        "first": shanghai(year, 3, 1, 0, 0, 0),
        "last": shanghai(year, 3, 31, 23, 59, 59),
        "just_after": shanghai(year, 4, 1, 0, 0, 0),
    }


def local_text(moment: dt.datetime | None) -> str:
    return moment.astimezone(PROGRAM_TIME_ZONE).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def export_query(what: str, file_format: str = "csv", /, **changes: str) -> str:
    query = {"what": what, "start": start().isoformat(), "end": end().isoformat(), "file_format": file_format}
    return "/exports/?" + urlencode({**query, **changes})


def csv_rows(client: Client, what: str) -> list[list[str]]:
    """The export's rows, header first, after checking it is a CSV file that opens right in Excel."""
    response = client.get(export_query(what))
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="{what}-{start().isoformat()}-{end().isoformat()}.csv"'
    )
    text = response.getvalue().decode("utf-8")
    assert text.startswith("\ufeff") and not text.startswith("\ufeff\ufeff")
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


def xlsx_sheet(client: Client, what: str) -> Any:  # Any: openpyxl's read-write worksheet, loosely typed.
    response = client.get(export_query(what, "xlsx"))
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == XLSX_TYPE
    assert response["Content-Disposition"] == (
        f'attachment; filename="{what}-{start().isoformat()}-{end().isoformat()}.xlsx"'
    )
    workbook = load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == [what]
    return workbook[what]


def as_text(row: tuple[object, ...]) -> list[str]:
    """An XLSX row as the CSV would say it (an empty cell is an empty string)."""
    return ["" if value is None else str(value) for value in row]


def cells_as_text(cells: tuple[Any, ...]) -> list[str]:
    """XLSX cells as the CSV would say them: a quote-prefixed text cell is the CSV's '-prefixed text."""
    for cell in cells:
        if cell.quotePrefix:
            assert cell.data_type == "s" and not str(cell.value).startswith("'")
    return ["'" + str(cell.value) if cell.quotePrefix else cell for cell in cells]


def with_enterprise(cast: Cast, name: str) -> Cast:
    enterprise = EnterpriseFactory.create(name=name)
    return dataclasses.replace(cast, enterprise=enterprise, member=UserFactory.create(enterprise=enterprise))


def move(model: type[Grant] | type[Redemption] | type[Settlement], pk: int, field: str, moment: dt.datetime) -> None:
    """Put a row at another moment (coupon rows may be updated; the ledger's may not)."""
    assert model.objects.filter(pk=pk).update(**{field: moment}) == 1


# --- Grants ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Grants:
    by_moment: dict[str, Grant]
    formula: Enterprise
    chinese: Enterprise


@pytest.fixture
def grants(cast: Cast, year: ProgramYear) -> Grants:
    """A grant at each of the four moments; the two inside belong to an enterprise whose name looks
    like a formula and to one with a Chinese name, and one of them has cents."""
    Provider.objects.filter(pk=cast.provider.pk).update(name="@算力中心")
    cast.provider.refresh_from_db()
    formula = with_enterprise(cast, '=HYPERLINK("http://evil.example","点我")')
    chinese = with_enterprise(cast, "杭州西湖智算科技有限公司")
    by_moment = {
        "just_before": walk_to_grant(cast, fee_fen=100_000, number="HZ-0"),
        "first": walk_to_grant(formula, fee_fen=411_520, number="-HZ-1"),  # 123,456 fen: ¥1,234.56
        "last": walk_to_grant(chinese, fee_fen=1_000_000, number="HZ-2"),  # 300,000 fen
        "just_after": walk_to_grant(cast, fee_fen=100_000, number="HZ-3"),
    }
    for name, moment in moments().items():
        move(Grant, by_moment[name].pk, "issued_at", moment)
        by_moment[name].refresh_from_db()
    return Grants(by_moment=by_moment, formula=formula.enterprise, chinese=chinese.enterprise)


def expected_grant_rows(grants: Grants) -> list[list[str]]:
    first, last = grants.by_moment["first"], grants.by_moment["last"]
    expires = f"{this_year() + 1}-01-01 00:00:00"
    year = str(this_year())
    return [
        GRANTS_HEADER,
        [
            first.code, "hangzhou-compute", year, '\'=HYPERLINK("http://evil.example","点我")', grants.formula.uscc,
            "'@算力中心", "'-HZ-1", "3000", "123456", "1234.56", "0", "0", "active", f"{year}-03-01 00:00:00", expires,
        ],
        [
            last.code, "hangzhou-compute", year, "杭州西湖智算科技有限公司", grants.chinese.uscc, "'@算力中心",
            "HZ-2", "3000", "300000", "3000.00", "0", "0", "active", f"{year}-03-31 23:59:59", expires,
        ],
    ]  # fmt: skip


def test_grants_csv_has_the_rows_of_the_period_exactly(cast: Cast, grants: Grants, as_user: AsUser) -> None:
    rows = csv_rows(as_user(cast.finance), "grants")

    assert rows == expected_grant_rows(grants)


def test_grants_csv_is_utf8_with_a_byte_order_mark(cast: Cast, grants: Grants, as_user: AsUser) -> None:
    raw = as_user(cast.finance).get(export_query("grants")).getvalue()

    assert raw.startswith(b"\xef\xbb\xbfcode,program,year,enterprise,")
    assert "杭州西湖智算科技有限公司".encode() in raw
    assert b",123456,1234.56," in raw


def test_grants_xlsx_has_the_same_rows_with_yuan_formatted(cast: Cast, grants: Grants, as_user: AsUser) -> None:
    sheet = xlsx_sheet(as_user(cast.finance), "grants")

    rows = list(sheet.iter_rows())
    yuan = GRANTS_HEADER.index("amount_yuan")
    expected = expected_grant_rows(grants)
    assert len(rows) == len(expected)
    for row, expected_row in zip(rows, expected, strict=True):
        values = as_text(tuple(c if isinstance(c, str) else c.value for c in cells_as_text(row)))
        assert values[:yuan] + values[yuan + 1 :] == expected_row[:yuan] + expected_row[yuan + 1 :]
    assert all(cell.font.b for cell in rows[0])
    for row, fen in zip(rows[1:], [123_456, 300_000], strict=True):
        cell = row[yuan]
        assert cell.number_format == "#,##0.00"
        assert cell.value == fen / 100
        assert Decimal(str(cell.value)) == Decimal(fen) / 100
        # Fen stay whole numbers, as numbers, in the general format.
        assert row[GRANTS_HEADER.index("amount_fen")].value == fen
        assert isinstance(row[GRANTS_HEADER.index("amount_fen")].value, int)
        assert row[GRANTS_HEADER.index("amount_fen")].number_format == "General"


def test_a_revoked_grant_is_exported_with_what_was_revoked(cast: Cast, year: ProgramYear, as_user: AsUser) -> None:
    grant = walk_to_grant(cast, fee_fen=100_000)  # 30,000
    redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=10_000, actor=cast.clerk, capture=True, **invoice(cast.clerk)
    )
    grant_revoke(grant=grant, actor=cast.approver, reason="The contract was cancelled.")
    move(Grant, grant.pk, "issued_at", moments()["first"])

    rows = csv_rows(as_user(cast.finance), "grants")

    amounts = {name: value for name, value in zip(GRANTS_HEADER, rows[1], strict=True) if "fen" in name}
    assert amounts == {"amount_fen": "30000", "revoked_fen": "27000", "lapsed_fen": "0"}
    assert rows[1][GRANTS_HEADER.index("status")] == "revoked"


def test_an_empty_period_gives_the_header_only(cast: Cast, grants: Grants, as_user: AsUser) -> None:
    response = as_user(cast.finance).get(export_query("grants", start="2001-01-01", end="2001-12-31"))

    assert response.status_code == 200
    assert response.getvalue().decode() == "\ufeff" + ",".join(GRANTS_HEADER) + "\r\n"


# --- Redemptions ----------------------------------------------------------------------------------


@pytest.fixture
def redemptions(cast: Cast, year: ProgramYear) -> dict[str, Redemption]:
    """A redemption at each of the four moments on one grant; the first carries five fen, the
    last is a hold, and the others are settled."""
    grant = walk_to_grant(cast, fee_fen=1_000_000)  # 300,000 at 30%

    def redeem(bill: str, bill_amount_fen: int, *, capture: bool = True) -> Redemption:
        return redemption_create(
            grant=grant,
            bill_number=bill,
            bill_amount_fen=bill_amount_fen,
            actor=cast.clerk,
            capture=capture,
            **invoice(cast.clerk),
        )

    by_moment = {
        "just_before": redeem("B-0", 10_000),
        "first": redeem("=SUM(A1:A9)", 17),  # 5 fen: ¥0.05
        "last": redeem("B-2", 411_520, capture=False),  # 123,456 fen held
        "just_after": redeem("B-3", 10_000),
    }
    settlement_create(provider=cast.provider, actor=cast.finance)
    for name, moment in moments().items():
        move(Redemption, by_moment[name].pk, "created_at", moment)
        by_moment[name].refresh_from_db()
    return by_moment


def test_redemptions_csv_has_the_rows_of_the_period_exactly(
    cast: Cast, redemptions: dict[str, Redemption], as_user: AsUser
) -> None:
    rows = csv_rows(as_user(cast.finance), "redemptions")

    first, last = redemptions["first"], redemptions["last"]
    assert first.settlement_id is not None and first.captured_at is not None
    code, contract = first.grant.code, first.grant.application.contract_number
    enterprise, provider = cast.enterprise.name, cast.provider.name
    year = this_year()
    assert rows == [
        REDEMPTIONS_HEADER,
        [
            str(first.pk), code, "hangzhou-compute", str(year), enterprise, provider, contract, "'=SUM(A1:A9)", "17",
            "5", "0.05", "12",
            "captured", f"{year}-03-01 00:00:00", local_text(first.captured_at), str(first.settlement_id),
        ],
        [
            str(last.pk), code, "hangzhou-compute", str(year), enterprise, provider, contract, "B-2", "411520",
            "123456", "1234.56", "288064",
            "pending", f"{year}-03-31 23:59:59", "", "",
        ],
    ]  # fmt: skip


def test_redemptions_xlsx_has_the_same_rows_with_yuan_formatted(
    cast: Cast, redemptions: dict[str, Redemption], as_user: AsUser
) -> None:
    client = as_user(cast.finance)
    sheet = xlsx_sheet(client, "redemptions")

    rows = list(sheet.iter_rows())
    yuan = REDEMPTIONS_HEADER.index("coupon_yuan")
    from_csv = csv_rows(client, "redemptions")
    assert len(rows) == len(from_csv) == 3
    for row, csv_row in zip(rows, from_csv, strict=True):
        values = as_text(tuple(c if isinstance(c, str) else c.value for c in cells_as_text(row)))
        assert values[:yuan] + values[yuan + 1 :] == csv_row[:yuan] + csv_row[yuan + 1 :]
    for row, fen in zip(rows[1:], [5, 123_456], strict=True):
        assert row[yuan].number_format == "#,##0.00"
        assert row[yuan].value == fen / 100
        assert Decimal(str(row[yuan].value)) == Decimal(fen) / 100
        assert row[REDEMPTIONS_HEADER.index("coupon_fen")].value == fen


# --- Settlements ----------------------------------------------------------------------------------


@pytest.fixture
def settlements(cast: Cast, year: ProgramYear) -> dict[str, Settlement]:
    """A settlement at each of the four moments; the first is paid with a bank reference that
    looks like a formula, the others are open."""
    Provider.objects.filter(pk=cast.provider.pk).update(name="+Compute Center")
    cast.provider.refresh_from_db()
    grant = walk_to_grant(cast, fee_fen=1_000_000)  # 300,000
    by_moment = {}
    for number, name in enumerate(moments(), start=1):
        for bill in range(number):  # 1, 2, 3, 4 redemptions of 3,000 fen each
            redemption_create(
                grant=grant,
                bill_number=f"B-{number}-{bill}",
                bill_amount_fen=10_000,
                actor=cast.clerk,
                capture=True,
                **invoice(cast.clerk),
            )
        by_moment[name] = settlement_create(provider=cast.provider, actor=cast.finance)
    settlement_pay(settlement=by_moment["first"], actor=cast.finance, bank_reference="-ICBC-0001")
    for name, moment in moments().items():
        move(Settlement, by_moment[name].pk, "created_at", moment)
        by_moment[name].refresh_from_db()
    return by_moment


def test_settlements_csv_has_the_rows_of_the_period_exactly(
    cast: Cast, settlements: dict[str, Settlement], as_user: AsUser
) -> None:
    rows = csv_rows(as_user(cast.finance), "settlements")

    first, last = settlements["first"], settlements["last"]
    assert first.paid_at is not None
    uscc, year = cast.provider.uscc, this_year()
    assert rows == [
        SETTLEMENTS_HEADER,
        [
            str(first.pk), "'+Compute Center", uscc, "paid", "2", "6000", "60.00", "'-ICBC-0001",
            f"{year}-03-01 00:00:00", local_text(first.paid_at),
        ],
        [
            str(last.pk), "'+Compute Center", uscc, "open", "3", "9000", "90.00", "",
            f"{year}-03-31 23:59:59", "",
        ],
    ]  # fmt: skip


def test_settlements_xlsx_has_the_same_rows_with_yuan_formatted(
    cast: Cast, settlements: dict[str, Settlement], as_user: AsUser
) -> None:
    sheet = xlsx_sheet(as_user(cast.finance), "settlements")

    rows = [tuple(cell.value for cell in row) for row in sheet.iter_rows()]
    assert [row[0] for row in rows] == ["id", settlements["first"].pk, settlements["last"].pk]
    assert [row[SETTLEMENTS_HEADER.index("total_fen")] for row in rows[1:]] == [6000, 9000]
    references = [row[SETTLEMENTS_HEADER.index("bank_reference")] for row in sheet.iter_rows(min_row=2)]
    # Text that looks like a formula is text with Excel's quote prefix, shown exactly as typed.
    assert [(cell.value, cell.quotePrefix) for cell in references] == [("-ICBC-0001", True), (None, False)]
    assert references[0].data_type == "s"
    yuan = SETTLEMENTS_HEADER.index("total_yuan")
    cells = [row[yuan] for row in sheet.iter_rows(min_row=2)]
    assert [(cell.value, cell.number_format) for cell in cells] == [(60, "#,##0.00"), (90, "#,##0.00")]


# --- Refusals -------------------------------------------------------------------------------------


def zh(text: str) -> str:
    with override("zh-hans"):
        return gettext(text)


CHOICE_ERROR = "Select a valid choice. %(value)s is not one of the available choices."


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"start": "2026-03-31", "end": "2026-03-01"}, "The end comes before the start.", id="end-first"),
        pytest.param(
            {"start": "2020-01-01", "end": "2023-12-31"}, "Choose a period of at most three years.", id="long"
        ),
        pytest.param({"start": "2026-02-30"}, "Enter a valid date.", id="no-such-day"),
        pytest.param({"end": "31/03/2026"}, "Enter a valid date.", id="not-iso"),
        pytest.param({"end": ""}, "This field is required.", id="no-end"),
        pytest.param({"what": "users"}, CHOICE_ERROR, id="unknown-what"),
        pytest.param({"file_format": "pdf"}, CHOICE_ERROR, id="unknown-format"),
    ],
)
def test_bad_input_is_a_400_with_the_error_and_no_file(
    cast: Cast, grants: Grants, as_user: AsUser, changes: dict[str, str], message: str
) -> None:
    response = as_user(cast.finance).get(export_query("grants", **changes))

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert "Content-Disposition" not in response
    body = response.content.decode()
    expected = zh(message)
    if message == CHOICE_ERROR:
        expected %= {"value": changes.get("what") or changes.get("file_format")}
    assert expected != message  # Said in Chinese, the page's language.
    assert html.escape(expected) in body
    assert grants.by_moment["first"].code not in body


def test_three_whole_years_are_allowed(cast: Cast, grants: Grants, as_user: AsUser) -> None:
    first_year = this_year() - 2
    response = as_user(cast.finance).get(
        export_query("grants", start=f"{first_year}-01-01", end=f"{this_year()}-12-31")
    )

    assert response.status_code == 200
    assert len(list(csv.reader(io.StringIO(response.getvalue().decode())))) == 1 + 4


def test_the_form_alone_is_shown_to_finance(cast: Cast, year: ProgramYear, as_user: AsUser) -> None:
    response = as_user(cast.finance).get("/exports/")

    assert response.status_code == 200
    assert "Content-Disposition" not in response
    assert 'name="start"' in response.content.decode()


@pytest.mark.parametrize("who", ["reviewer", "approver", "auditor", "member", "clerk", "nobody"])
def test_no_one_but_finance_gets_a_file(cast: Cast, grants: Grants, as_user: AsUser, who: str) -> None:
    users: dict[str, Callable[[], User]] = {
        "reviewer": lambda: cast.reviewer,
        "approver": lambda: cast.approver,
        "auditor": lambda: UserFactory.create(roles=[Role.AUDITOR]),
        "member": lambda: cast.member,
        "clerk": lambda: cast.clerk,
        "nobody": lambda: UserFactory.create(),
    }
    client = as_user(users[who]())

    for path in (export_query("grants"), export_query("grants", "xlsx"), "/exports/"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Content-Disposition" not in response


def test_a_superuser_holds_the_finance_role(cast: Cast, grants: Grants, as_user: AsUser) -> None:
    # accounts.models.User.has_role: a superuser holds every platform role, finance included.
    assert csv_rows(as_user(cast.admin), "grants") == expected_grant_rows(grants)


def test_anonymous_people_are_sent_to_sign_in(year: ProgramYear) -> None:
    response = Client().get(export_query("grants"))

    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/exports/")
    assert "Content-Disposition" not in response


# --- Formula look-alikes ---------------------------------------------------------------------------

# Text a spreadsheet may take for a formula once it folds full-width and compatibility forms:
# full-width ＝ ＋ － ＠, the small ﹦ ﹢ ﹣ ﹫, and the tab and carriage return starts.
FORMULA_LOOK_ALIKES = ["＝1+1", "＋1+1", "－1+1", "＠SUM(A1)", "﹦1+1", "﹢1", "﹣1", "﹫A1", "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("text", [*FORMULA_LOOK_ALIKES, "=1", "+1", "-1", "@A1"])
def test_formula_starts_are_found_after_folding_look_alikes(text: str) -> None:
    from coupons.selectors import spreadsheet_safe

    assert spreadsheet_safe(text) == "'" + text


@pytest.mark.parametrize("text", ["杭州算力", "1+1", "Ｈ公司", "'quoted", ""])
def test_other_text_is_left_as_it_is(text: str) -> None:
    from coupons.selectors import spreadsheet_safe

    assert spreadsheet_safe(text) == text


@pytest.mark.parametrize("name", FORMULA_LOOK_ALIKES)
def test_a_full_width_formula_never_reaches_the_csv_or_xlsx_as_a_formula(
    name: str, cast: Cast, year: ProgramYear, as_user: AsUser
) -> None:
    grant = walk_to_grant(with_enterprise(cast, name), fee_fen=100_000, number="HZ-9")
    move(Grant, grant.pk, "issued_at", moments()["first"])
    column = GRANTS_HEADER.index("enterprise")

    assert csv_rows(as_user(cast.finance), "grants")[1][column] == "'" + name
    cell = next(iter(xlsx_sheet(as_user(cast.finance), "grants").iter_rows(min_row=2)))[column]
    # XML reads a stored CR back as LF (line-end normalisation); the cell is still quoted text.
    assert (cell.value, cell.quotePrefix, cell.data_type) == (name.replace("\r", "\n"), True, "s")


def test_a_redemption_names_the_program_and_year_of_its_coupon(cast: Cast, year: ProgramYear, as_user: AsUser) -> None:
    from tests.programs import DISTRICT, district_open, grant_now_in

    district_open(cast.admin, year=this_year())
    grant = grant_now_in(cast, DISTRICT, fee_fen=1_000_000, number="BJ-1", year=this_year())
    redemption = redemption_create(
        grant=grant, bill_number="BJ-B-1", bill_amount_fen=10_000, actor=cast.clerk, capture=True, **invoice(cast.clerk)
    )
    move(Redemption, redemption.pk, "created_at", shanghai(this_year(), 3, 15, 12))  # Inside the period.

    rows = csv_rows(as_user(cast.finance), "redemptions")

    program, year_column = REDEMPTIONS_HEADER.index("program"), REDEMPTIONS_HEADER.index("year")
    assert [(row[0], row[program], row[year_column]) for row in rows[1:]] == [
        (str(redemption.pk), DISTRICT, str(this_year()))
    ]
