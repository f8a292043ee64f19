"""The public notice (公示) of awards at /public/awards/ and /public/awards.csv: open to anyone.

It lists every approved grant with the enterprise's name and credit code, the amount in yuan and
the day of approval in Asia/Shanghai; a revoked grant is withdrawn from it.
"""

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils.translation import gettext, override

from accounts.models import Enterprise
from coupons.models import Grant, ProgramYear
from coupons.selectors import public_awards_csv_lines
from coupons.services.applications import (
    application_approve,
    application_confirm,
    application_review,
    application_submit,
)
from coupons.services.years import PROGRAM_TIME_ZONE, program_year_create, program_year_open
from tests.controls import grant_revoke
from tests.coupons.conftest import CAP_FEN, Cast
from tests.evidence import checked, contract
from tests.factories import EnterpriseFactory, UserFactory
from tests.portal.conftest import this_year, walk_to_grant

pytestmark = pytest.mark.django_db

AsUser = Callable[..., Client]
CITY = ("hangzhou-compute", "杭州市算力券")
CITY_NAME = CITY[1]
CODE = 4  # The coupon's column, on the page and in the CSV.


class NoticePage(HTMLParser):
    """The notice's table rows as cell texts, and the years its year filter offers."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.years: list[int] = []
        self.selected_years: list[int] = []
        self.programs: list[str] = []
        self.selected_programs: list[str] = []
        self._select = ""
        self._in_body = False
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "select":
            self._select = str(attributes.get("id"))
        elif tag == "option" and self._select == "program":
            self.programs.append(str(attributes["value"]))
            if "selected" in attributes:
                self.selected_programs.append(self.programs[-1])
        elif tag == "option":
            self.years.append(int(str(attributes["value"])))
            if "selected" in attributes:
                self.selected_years.append(self.years[-1])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def notice_of(client: Client, **query: str) -> NoticePage:
    response = client.get("/public/awards/" + ("?" + urlencode(query) if query else ""))
    assert response.status_code == 200, response.content[:500]
    return NoticePage(response.content.decode())


def csv_of(client: Client, **query: str) -> str:
    response = client.get("/public/awards.csv" + ("?" + urlencode(query) if query else ""))
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    year = query.get("year", "")
    name = f"public-awards-{year}.csv" if year.isascii() and year.isdigit() and len(year) == 4 else "public-awards.csv"
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    text = response.getvalue().decode("utf-8")
    assert text.startswith("\ufeff") and not text.startswith("\ufeff\ufeff"), "one byte-order mark, for Excel"
    return text.removeprefix("\ufeff")


def zh(text: str) -> str:
    """The portal's words as a person with no language cookie reads them (Simplified Chinese)."""
    with override("zh-hans"):
        return gettext(text)


def shanghai(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=PROGRAM_TIME_ZONE)


def with_enterprise(cast: Cast, name: str) -> Cast:
    enterprise = EnterpriseFactory.create(name=name)
    return dataclasses.replace(cast, enterprise=enterprise, member=UserFactory.create(enterprise=enterprise))


def approved_at(grant: Grant, moment: dt.datetime) -> Grant:
    """Say the grant was approved at `moment` (coupon rows may be updated; the ledger's may not)."""
    assert Grant.objects.filter(pk=grant.pk).update(issued_at=moment) == 1
    grant.refresh_from_db()
    return grant


@dataclasses.dataclass
class Awards:
    cents: Grant  # ¥1,234.56, approved just after midnight in Hangzhou (the day before in UTC)
    whole: Grant  # ¥3,000.00, by an enterprise whose name looks like a spreadsheet formula
    revoked: Grant
    last_year: Grant
    first: Enterprise
    formula: Enterprise


@pytest.fixture
def awards(cast: Cast, year: ProgramYear) -> Awards:
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(name="西湖智算科技有限公司")
    cast.enterprise.refresh_from_db()
    formula = with_enterprise(cast, "=1+2")
    y = this_year()
    cents = approved_at(walk_to_grant(cast, fee_fen=411_520, number="HZ-1"), shanghai(y, 4, 1, 0, 30))
    whole = approved_at(walk_to_grant(formula, fee_fen=1_000_000, number="HZ-2"), shanghai(y, 5, 20, 10))
    revoked = approved_at(walk_to_grant(cast, fee_fen=100_000, number="HZ-3"), shanghai(y, 4, 15, 9))
    revoked = grant_revoke(grant=revoked, actor=cast.approver, reason="The contract was cancelled.")

    # Last year, applied for while it was open.
    program_year_create(year=y - 1, actor=cast.admin, pool_fen=500_000, default_cap_fen=CAP_FEN)
    program_year_open(year=y - 1, actor=cast.admin)
    application = application_submit(
        actor=cast.member,
        provider=cast.provider,
        contract_number="HZ-OLD",
        contract_fee_fen=200_000,
        compute_source="other",
        purpose="inference",
        now=shanghai(y - 1, 6, 1, 9),
        **contract(cast.member, y - 1),
    )
    application_confirm(application=application, actor=cast.clerk)
    application_review(
        application=application, actor=cast.reviewer, recommended_fen=application.eligible_fen, **checked(application)
    )
    application_approve(application=application, actor=cast.approver)
    last_year = approved_at(Grant.objects.get(application=application), shanghai(y - 1, 6, 2, 15))
    assert last_year.year.year == y - 1 and last_year.amount_fen == 40_000

    return Awards(
        cents=cents,
        whole=whole,
        revoked=revoked,
        last_year=last_year,
        first=cast.enterprise,
        formula=formula.enterprise,
    )


# --- The page -------------------------------------------------------------------------------------


def test_anyone_sees_this_years_awards_without_signing_in(awards: Awards) -> None:
    y = this_year()

    page = notice_of(Client())

    assert page.rows == [
        [awards.first.name, awards.first.uscc, "¥1,234.56", f"{y}-04-01", awards.cents.code, CITY_NAME],
        [awards.formula.name, awards.formula.uscc, "¥3,000.00", f"{y}-05-20", awards.whole.code, CITY_NAME],
    ]
    assert page.selected_years == [y]


def test_signed_in_people_see_the_same_notice(cast: Cast, awards: Awards, as_user: AsUser) -> None:
    anonymous = notice_of(Client()).rows

    for user in (cast.member, cast.clerk, cast.reviewer, cast.admin):
        assert notice_of(as_user(user)).rows == anonymous


def test_a_revoked_grant_is_withdrawn(cast: Cast, awards: Awards) -> None:
    client = Client()

    page = notice_of(client)
    text = csv_of(client, year=str(this_year()))

    assert awards.revoked.status == Grant.Status.REVOKED
    assert awards.revoked.code not in {row[CODE] for row in page.rows}
    assert awards.revoked.code not in text
    assert len(page.rows) == 2


def test_a_grant_revoked_after_it_was_listed_leaves_the_notice(cast: Cast, year: ProgramYear) -> None:
    grant = walk_to_grant(cast, fee_fen=100_000)
    listed = notice_of(Client()).rows

    grant_revoke(grant=grant, actor=cast.approver, reason="The contract was cancelled.")

    assert [row[CODE] for row in listed] == [grant.code]
    assert notice_of(Client()).rows == [[zh("No awards yet.")]]


def test_the_day_of_approval_is_the_day_in_hangzhou(cast: Cast, year: ProgramYear) -> None:
    y = this_year()
    # 23:59 in Hangzhou is 15:59 UTC the same day; 00:00 in Hangzhou is 16:00 UTC the day before.
    late = approved_at(walk_to_grant(cast, fee_fen=100_000, number="HZ-1"), shanghai(y, 6, 30, 23, 59))
    early = approved_at(walk_to_grant(cast, fee_fen=100_000, number="HZ-2"), shanghai(y, 7, 1, 0, 0))

    page = notice_of(Client())
    lines = csv_of(Client(), year=str(y)).splitlines()

    assert [(row[3], row[4]) for row in page.rows] == [(f"{y}-06-30", late.code), (f"{y}-07-01", early.code)]
    assert [line.split(",")[3] for line in lines[1:]] == [f"{y}-06-30", f"{y}-07-01"]


def test_the_year_asked_for_is_shown(awards: Awards) -> None:
    page = notice_of(Client(), year=str(this_year() - 1))

    assert page.rows == [
        [awards.first.name, awards.first.uscc, "¥400.00", f"{this_year() - 1}-06-02", awards.last_year.code, CITY_NAME],
    ]
    assert page.selected_years == [this_year() - 1]
    assert page.years == [this_year(), this_year() - 1]


@pytest.mark.parametrize(
    "asked",
    [
        "1999",
        "2999",
        "abc",
        "",
        "99999999999999999999",
        pytest.param("²", id="superscript-two"),  # A digit to str.isdigit(), not to int().
    ],
)
def test_a_year_that_does_not_exist_falls_back_to_this_one(awards: Awards, asked: str) -> None:
    page = notice_of(Client(), year=asked)

    assert page.selected_years == [this_year()]
    assert [row[CODE] for row in page.rows] == [awards.cents.code, awards.whole.code]


def test_a_draft_year_is_not_offered(cast: Cast, awards: Awards) -> None:
    program_year_create(year=this_year() + 1, actor=cast.admin, pool_fen=500_000, default_cap_fen=CAP_FEN)

    page = notice_of(Client(), year=str(this_year() + 1))

    assert this_year() + 1 not in page.years
    assert page.selected_years == [this_year()]


def test_with_no_open_year_the_notice_is_empty(cast: Cast) -> None:
    page = notice_of(Client())

    assert page.years == []
    assert page.rows == [[zh("No awards yet.")]]


# --- The CSV --------------------------------------------------------------------------------------


def test_the_csv_of_a_year_is_the_selectors_lines(awards: Awards) -> None:
    y = this_year()

    text = csv_of(Client(), year=str(y))

    assert text == "".join(public_awards_csv_lines(year=y))
    assert list(csv.reader(io.StringIO(text))) == [
        ["enterprise", "uscc", "amount_fen", "approved_on", "grant_code", "program", "program_name"],
        [awards.first.name, awards.first.uscc, "123456", f"{y}-04-01", awards.cents.code, *CITY],
        ["'=1+2", awards.formula.uscc, "300000", f"{y}-05-20", awards.whole.code, *CITY],
    ]


def test_the_csv_of_last_year_has_last_years_awards_only(awards: Awards) -> None:
    y = this_year() - 1

    text = csv_of(Client(), year=str(y))

    assert text == "".join(public_awards_csv_lines(year=y))
    assert text.splitlines()[1:] == [
        f"{awards.first.name},{awards.first.uscc},40000,{y}-06-02,{awards.last_year.code},{','.join(CITY)}",
    ]


@pytest.mark.parametrize("asked", [None, "abc", "20260", "1"])
def test_the_csv_without_a_year_has_every_year(awards: Awards, asked: str | None) -> None:
    text = csv_of(Client()) if asked is None else csv_of(Client(), year=asked)

    assert text == "".join(public_awards_csv_lines())
    codes = [line.split(",")[CODE] for line in text.splitlines()[1:]]
    assert codes == [awards.last_year.code, awards.cents.code, awards.whole.code]


def test_a_csv_year_that_is_no_number_is_every_year_not_an_error(awards: Awards) -> None:
    # "²²²²" has four characters that str.isdigit() calls digits; int() refuses them.
    text = csv_of(Client(), year="²²²²")

    assert text == "".join(public_awards_csv_lines())


def test_the_pages_csv_link_keeps_the_year(awards: Awards) -> None:
    html = Client().get("/public/awards/", {"year": this_year() - 1}).content.decode()

    assert f'href="/public/awards.csv?year={this_year() - 1}"' in html


# --- Programs -------------------------------------------------------------------------------------


@pytest.fixture
def district_award(cast: Cast, awards: Awards) -> Grant:
    """Beside the city's awards, one in a district's program this year."""
    from coupons.models import DEFAULT_PROGRAM
    from tests.programs import DISTRICT, district_open, grant_now_in

    district_open(cast.admin, year=this_year())
    grant = grant_now_in(cast, DISTRICT, fee_fen=100_000, number="BJ-1", year=this_year())
    assert grant.year.program_id != DEFAULT_PROGRAM
    return approved_at(grant, shanghai(this_year(), 6, 1, 9))


def test_every_programs_awards_are_listed_each_naming_its_program(awards: Awards, district_award: Grant) -> None:
    from tests.programs import DISTRICT, DISTRICT_NAME

    page = notice_of(Client())

    assert [(row[CODE], row[-1]) for row in page.rows] == [
        (awards.cents.code, CITY_NAME),
        (awards.whole.code, CITY_NAME),
        (district_award.code, DISTRICT_NAME),
    ]
    assert page.selected_programs == [""]  # All programs.
    assert set(page.programs) == {"", "hangzhou-compute", DISTRICT}


def test_one_programs_awards_when_asked(awards: Awards, district_award: Grant) -> None:
    from tests.programs import DISTRICT, DISTRICT_NAME

    district = notice_of(Client(), program=DISTRICT)
    city = notice_of(Client(), program="hangzhou-compute")
    unknown = notice_of(Client(), program="nowhere")

    assert [(row[CODE], row[-1]) for row in district.rows] == [(district_award.code, DISTRICT_NAME)]
    assert district.selected_programs == [DISTRICT] and district.years == [this_year()]
    assert [row[CODE] for row in city.rows] == [awards.cents.code, awards.whole.code]
    assert unknown.selected_programs == [""] and len(unknown.rows) == 3  # Every program's, as with none asked.


def test_the_csv_of_one_program_and_of_all(awards: Awards, district_award: Grant) -> None:
    from tests.programs import DISTRICT, DISTRICT_NAME

    y = this_year()
    district = csv_of(Client(), year=str(y), program=DISTRICT)
    everything = csv_of(Client(), year=str(y))

    assert district == "".join(public_awards_csv_lines(year=y, program=DISTRICT))
    assert [row[CODE:] for row in csv.reader(io.StringIO(district))][1:] == [
        [district_award.code, DISTRICT, DISTRICT_NAME]
    ]
    assert [row[-2] for row in csv.reader(io.StringIO(everything))][1:] == [
        "hangzhou-compute",
        "hangzhou-compute",
        DISTRICT,
    ]
    html = Client().get("/public/awards/", {"year": y, "program": DISTRICT}).content.decode()
    assert f'href="/public/awards.csv?year={y}&amp;program={DISTRICT}"' in html
