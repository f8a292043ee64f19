"""The staff pool dashboard at /dashboard/.

Its figures must be the API's (GET /api/v1/stats/pool/) to the fen, its gauge must add up to the
pool, its burn-down must end at what the pool has available, and its tables must list the right
rows: the enterprises at 80% of their cap or more, and not one at 79.99%.
"""

import dataclasses
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.translation import gettext, override

from accounts.models import Enterprise, Provider, Role, User
from config.money import yuan_text
from coupons.models import DEFAULT_PROGRAM, Grant, ProgramYear
from coupons.selectors import pool_available_by_day, program_year_figures, program_year_figures_from_rows
from coupons.services.applications import (
    application_approve,
    application_confirm,
    application_review,
    application_submit,
)
from coupons.services.redemptions import redemption_capture, redemption_create
from coupons.services.years import PROGRAM_TIME_ZONE, program_year_create, program_year_open
from portal.formatting import bp_text
from portal.words import WORDS
from tests.controls import cap_override_grant, grant_revoke, redemption_reverse, settlement_create, settlement_pay
from tests.coupons.conftest import CAP_FEN, POOL_FEN, Cast
from tests.evidence import checked, contract, invoice
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory
from tests.portal.conftest import FIGURES, this_year
from tests.programs import DISTRICT, DISTRICT_NAME, district_open

pytestmark = pytest.mark.django_db

AsUser = Callable[..., Client]


# --- Reading the page -----------------------------------------------------------------------------


class DashboardPage(HTMLParser):
    """What the dashboard shows: its figures and gauge parts (from their data attributes), the year
    selected, and each table's body rows as cell texts, keyed by the table's id or else by the
    heading (h2) above it."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.figures: dict[str, int] = {}
        self.segments: dict[str, int] = {}
        self.selected_years: list[int] = []
        self.selected_programs: list[str] = []
        self.programs_offered: list[str] = []
        # The "All programs" table: each program's figures by slug, and the totals under "all".
        self.overview: dict[str, dict[str, int]] = {}
        self._select = ""
        self._overview_row = ""
        self.tables: dict[str, list[list[str]]] = {}
        self._heading: list[str] | None = None
        self._last_heading = ""
        self._rows: list[list[str]] | None = None
        self._in_body = False
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if "data-figure" in attributes:
            self.figures[str(attributes["data-figure"])] = int(str(attributes["data-fen"]))
        if "data-segment" in attributes:
            self.segments[str(attributes["data-segment"])] = int(str(attributes["data-fen"]))
        if tag == "select":
            self._select = str(attributes.get("id"))
        if tag == "option" and self._select == "program":
            self.programs_offered.append(str(attributes["value"]))
            if "selected" in attributes:
                self.selected_programs.append(str(attributes["value"]))
        elif tag == "option" and "selected" in attributes:
            self.selected_years.append(int(str(attributes["value"])))
        if tag == "tr" and "data-program" in attributes:
            self._overview_row = str(attributes["data-program"])
            self.overview[self._overview_row] = {}
        if "data-overview-figure" in attributes:
            self.overview[self._overview_row][str(attributes["data-overview-figure"])] = int(
                str(attributes["data-fen"])
            )
        if tag == "h2":
            self._heading = []
        elif tag == "table":
            self._rows = []
            self.tables[attributes.get("id") or self._last_heading] = self._rows
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._rows is not None:
            self._rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2" and self._heading is not None:
            self._last_heading = " ".join("".join(self._heading).split())
            self._heading = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._rows = None
        elif tag == "td" and self._cell is not None and self._rows:
            self._rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)
        if self._cell is not None:
            self._cell.append(data)


def dashboard_of(client: Client, query: str = "") -> DashboardPage:
    response = client.get(f"/dashboard/{query}")
    assert response.status_code == 200, response.content[:500]
    return DashboardPage(response.content.decode())


def zh(text: str) -> str:
    """The portal's words as a person with no language cookie reads them (Simplified Chinese)."""
    with override("zh-hans"):
        return gettext(text)


def word(machine_word: str) -> str:
    with override("zh-hans"):
        return str(WORDS[machine_word])


# --- Making history -------------------------------------------------------------------------------


def grant_to(
    cast: Cast,
    *,
    number: str,
    fee_fen: int,
    compute_source: str = "domestic",
    purpose: str = "training",
    amount_fen: int | None = None,
    program: str = DEFAULT_PROGRAM,
) -> Grant:
    """Submit, confirm, review (recommending `amount_fen`, else the eligible amount) and approve,
    at the real time, for `cast`'s enterprise at `cast`'s provider, in `program`."""
    application = application_submit(
        program=program,
        actor=cast.member,
        provider=cast.provider,
        contract_number=number,
        contract_fee_fen=fee_fen,
        compute_source=compute_source,
        purpose=purpose,
        **contract(cast.member, this_year()),
    )
    application_confirm(application=application, actor=cast.clerk)
    application_review(
        application=application,
        actor=cast.reviewer,
        recommended_fen=amount_fen or application.eligible_fen,
        **checked(application),
    )
    application_approve(application=application, actor=cast.approver)
    grant = Grant.objects.get(application=application)
    assert grant.amount_fen == (amount_fen or application.eligible_fen)
    return grant


def another_enterprise(cast: Cast, name: str) -> Cast:
    """The cast, speaking for a new verified enterprise."""
    enterprise = EnterpriseFactory.create(name=name)
    return dataclasses.replace(cast, enterprise=enterprise, member=UserFactory.create(enterprise=enterprise))


def another_provider(cast: Cast, name: str) -> Cast:
    """The cast, with a new listed computing center and its clerk."""
    provider = ProviderFactory.create(name=name)
    return dataclasses.replace(cast, provider=provider, clerk=UserFactory.create(provider=provider))


@dataclasses.dataclass
class History:
    first: Enterprise
    second: Enterprise
    center: Provider
    other_center: Provider
    revoked: Grant


@pytest.fixture
def history(cast: Cast, year: ProgramYear) -> History:
    """Two enterprises, two computing centers, three grants in both compute sources and three
    purposes; captured and held redemptions; a revocation, a reversal into the lapsed account, and
    a paid settlement. Every amount is 30% (domestic) or 20% (other) of a fee."""
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(name="西湖智算科技有限公司")
    cast.enterprise.refresh_from_db()
    at_other = another_provider(cast, "钱塘算力中心")
    second = another_enterprise(cast, "滨江数据服务有限公司")

    g1 = grant_to(cast, number="HZ-1", fee_fen=500_000)  # 150,000
    redemption_create(
        grant=g1, bill_number="B-1", bill_amount_fen=200_000, actor=cast.clerk, capture=True, **invoice(cast.clerk)
    )  # 60,000
    redemption_create(
        grant=g1, bill_number="B-2", bill_amount_fen=100_000, actor=cast.clerk, **invoice(cast.clerk)
    )  # held 30,000
    g2 = grant_to(at_other, number="HZ-2", fee_fen=500_000, compute_source="other", purpose="inference")  # 100,000
    r3 = redemption_create(
        grant=g2, bill_number="B-3", bill_amount_fen=100_000, actor=at_other.clerk, **invoice(at_other.clerk)
    )
    redemption_capture(redemption=r3, actor=at_other.clerk)  # 20,000
    grant_revoke(grant=g2, actor=cast.approver, reason="The contract was cancelled.")  # 80,000 back to the pool
    redemption_reverse(redemption=r3, actor=cast.approver, reason="Billed in error.")  # 20,000 lapse
    g3 = grant_to(second, number="HZ-3", fee_fen=1_000_000, purpose="agent")  # 300,000
    redemption_create(
        grant=g3, bill_number="B-4", bill_amount_fen=500_000, actor=cast.clerk, capture=True, **invoice(cast.clerk)
    )  # 150,000
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    settlement_pay(settlement=settlement, actor=cast.finance, bank_reference="ICBC-1")  # 60,000 + 150,000 paid
    return History(
        first=cast.enterprise,
        second=second.enterprise,
        center=cast.provider,
        other_center=at_other.provider,
        revoked=Grant.objects.get(pk=g2.pk),
    )


# --- The figures ----------------------------------------------------------------------------------


def test_every_figure_is_the_apis_to_the_fen(cast: Cast, history: History, as_user: AsUser) -> None:
    client = as_user(cast.finance)

    page = dashboard_of(client, f"?year={this_year()}")
    api = client.get(f"/api/v1/stats/pool/?year={this_year()}")

    assert api.status_code == 200, api.content
    assert set(page.figures) == set(FIGURES)
    assert page.figures == {name: api.json()[name] for name in FIGURES}
    # And the history is the one meant, so that the equality above is not between two zeros.
    assert page.figures == {
        "pool_fen": POOL_FEN,
        "issued_fen": 550_000,
        "held_fen": 30_000,
        "redeemed_fen": 210_000,
        "settled_fen": 210_000,
        "lapsed_fen": 20_000,
        "revoked_fen": 80_000,
        "available_fen": POOL_FEN - 550_000 + 80_000,
    }
    assert page.figures == program_year_figures_from_rows(year=this_year()).as_dict()


def test_the_figures_are_the_apis_for_every_staff_role(cast: Cast, history: History, as_user: AsUser) -> None:
    for user in (cast.admin, cast.reviewer, cast.approver, UserFactory.create(roles=[Role.AUDITOR])):
        client = as_user(user)
        api = client.get("/api/v1/stats/pool/").json()
        assert dashboard_of(client).figures == {name: api[name] for name in FIGURES}, user.roles


def test_the_figures_show_in_yuan(cast: Cast, history: History, as_user: AsUser) -> None:
    html = as_user(cast.finance).get("/dashboard/").content.decode()

    for name, fen in [("issued_fen", 550_000), ("available_fen", 530_000), ("lapsed_fen", 20_000)]:
        assert f'data-figure="{name}" data-fen="{fen}">{yuan_text(fen)}</dd>' in html


def test_the_gauge_parts_add_up_to_the_pool(cast: Cast, history: History, as_user: AsUser) -> None:
    page = dashboard_of(as_user(cast.reviewer))

    assert page.segments == {
        "redeemed": 210_000,
        "held": 30_000,
        "unspent": 150_000 - 60_000 - 30_000 + 300_000 - 150_000,  # What the two live grants have left.
        "lapsed": 20_000,
        "available": 530_000,
    }
    assert sum(page.segments.values()) == page.figures["pool_fen"] == POOL_FEN


def test_the_gauge_parts_add_up_to_the_pool_before_anything_happens(
    cast: Cast, year: ProgramYear, as_user: AsUser
) -> None:
    page = dashboard_of(as_user(cast.reviewer))

    assert page.segments == {"redeemed": 0, "held": 0, "unspent": 0, "lapsed": 0, "available": POOL_FEN}
    assert sum(page.segments.values()) == page.figures["pool_fen"]


# --- The burn-down --------------------------------------------------------------------------------


def test_the_burn_down_ends_at_what_the_pool_has_available(cast: Cast, history: History) -> None:
    points = pool_available_by_day(year=this_year())

    today = timezone.localtime(timezone.now(), PROGRAM_TIME_ZONE).date()
    assert points == [(today, program_year_figures(year=this_year()).available_fen)]
    assert points[-1][1] == 530_000


def test_a_revocation_puts_the_burn_down_back_up_by_the_amount_revoked(
    cast: Cast, year: ProgramYear, as_user: AsUser
) -> None:
    # given: two grants, one partly used
    kept = grant_to(cast, number="HZ-1", fee_fen=400_000)  # 120,000
    revoked = grant_to(cast, number="HZ-2", fee_fen=600_000)  # 180,000
    redemption_create(
        grant=revoked, bill_number="B-1", bill_amount_fen=100_000, actor=cast.clerk, capture=True, **invoice(cast.clerk)
    )
    before = pool_available_by_day(year=this_year())
    assert before[-1][1] == POOL_FEN - kept.amount_fen - revoked.amount_fen

    # when
    grant_revoke(grant=revoked, actor=cast.approver, reason="The contract was cancelled.")

    # then: back up by what the grant had left (180,000 − 30,000), no more
    after = pool_available_by_day(year=this_year())
    revoked.refresh_from_db()
    assert revoked.revoked_fen == 150_000
    assert after[-1][1] - before[-1][1] == revoked.revoked_fen
    assert after[-1][1] == program_year_figures(year=this_year()).available_fen
    assert dashboard_of(as_user(cast.reviewer)).figures["available_fen"] == after[-1][1]


def test_the_burn_down_starts_when_the_year_opens(cast: Cast, year: ProgramYear) -> None:
    today = timezone.localtime(timezone.now(), PROGRAM_TIME_ZONE).date()

    assert pool_available_by_day(year=this_year()) == [(today, POOL_FEN)]
    assert pool_available_by_day(year=this_year() + 1) == []  # No such year: no pool account.


# --- The tables -----------------------------------------------------------------------------------


def test_the_breakdowns_list_the_right_rows(cast: Cast, history: History, as_user: AsUser) -> None:
    page = dashboard_of(as_user(cast.approver))

    assert page.tables[zh("By compute source")] == [
        [word("domestic"), "2", yuan_text(450_000), yuan_text(210_000)],
        [word("other"), "1", yuan_text(100_000), yuan_text(0)],
    ]
    assert page.tables[zh("By purpose")] == [
        [word("agent"), "1", yuan_text(300_000)],
        [word("training"), "1", yuan_text(150_000)],
        [word("inference"), "1", yuan_text(100_000)],
    ]
    assert page.tables[zh("By computing center")] == [
        [history.center.name, yuan_text(450_000), yuan_text(210_000)],
        [history.other_center.name, yuan_text(100_000), yuan_text(0)],
    ]
    assert page.tables[zh("Top enterprises")] == [
        # 300,000 of 400,000.
        [history.second.name, yuan_text(300_000), yuan_text(CAP_FEN), bp_text(7500)],
        # 250,000 issued, of which the revocation gave 80,000 back to the cap: 170,000 used.
        [history.first.name, yuan_text(250_000), yuan_text(CAP_FEN), bp_text(4250)],
    ]
    assert page.tables["near-cap"] == [[zh("None.")]]


def test_the_breakdowns_add_up_to_the_figures(cast: Cast, history: History, as_user: AsUser) -> None:
    client = as_user(cast.reviewer)
    api = client.get("/api/v1/stats/pool/").json()
    page = dashboard_of(client)

    issued = [row[2] for row in page.tables[zh("By compute source")]]
    assert issued == [yuan_text(row["issued_fen"]) for row in api["by_compute_source"]]
    assert sum(row["issued_fen"] for row in api["by_compute_source"]) == page.figures["issued_fen"]
    assert sum(row["redeemed_fen"] for row in api["by_provider"]) == page.figures["redeemed_fen"]


def test_an_enterprise_at_exactly_80_percent_of_its_cap_is_listed_and_one_at_79_99_is_not(
    cast: Cast, year: ProgramYear, as_user: AsUser
) -> None:
    # given: the cap is 400,000; 80% of it is 320,000
    at_80 = another_enterprise(cast, "At eighty")
    grant_to(at_80, number="HZ-1", fee_fen=1_100_000, amount_fen=320_000)
    at_79_99 = another_enterprise(cast, "At seventy-nine point nine nine")
    grant_to(at_79_99, number="HZ-2", fee_fen=1_100_000, amount_fen=319_960)
    a_fen_short = another_enterprise(cast, "A fen short")
    grant_to(a_fen_short, number="HZ-3", fee_fen=1_100_000, amount_fen=319_999)

    # when
    page = dashboard_of(as_user(cast.reviewer))

    # then
    assert page.tables["near-cap"] == [
        [at_80.enterprise.name, yuan_text(320_000), yuan_text(CAP_FEN), bp_text(8000)],
    ]
    assert page.tables[zh("Top enterprises")] == [
        [at_80.enterprise.name, yuan_text(320_000), yuan_text(CAP_FEN), bp_text(8000)],
        [a_fen_short.enterprise.name, yuan_text(319_999), yuan_text(CAP_FEN), bp_text(7999)],
        [at_79_99.enterprise.name, yuan_text(319_960), yuan_text(CAP_FEN), bp_text(7999)],
    ]


def test_a_revocation_takes_an_enterprise_off_the_near_cap_list(cast: Cast, year: ProgramYear, as_user: AsUser) -> None:
    # given: 330,000 of a 400,000 cap, 82.5%
    enterprise = another_enterprise(cast, "Revoked below")
    grant_to(enterprise, number="HZ-1", fee_fen=1_000_000, amount_fen=300_000)
    given_back = grant_to(enterprise, number="HZ-2", fee_fen=100_000)  # 30,000
    client = as_user(cast.reviewer)
    before = dashboard_of(client).tables["near-cap"]

    # when: 30,000 go back to the cap: 75%
    grant_revoke(grant=given_back, actor=cast.approver, reason="The contract was cancelled.")

    # then
    assert before == [[enterprise.enterprise.name, yuan_text(330_000), yuan_text(CAP_FEN), bp_text(8250)]]
    assert dashboard_of(client).tables["near-cap"] == [[zh("None.")]]


def test_the_near_cap_list_uses_a_relaxed_cap_and_puts_the_closest_first(
    cast: Cast, year: ProgramYear, as_user: AsUser
) -> None:
    # given: one enterprise at 90% of the default cap,
    at_90 = another_enterprise(cast, "At ninety")
    grant_to(at_90, number="HZ-1", fee_fen=1_200_000, amount_fen=360_000)
    # and a foundation-model enterprise whose relaxed cap of 500,000 makes 400,000 exactly 80%
    # (of the default cap it would be 100%, and first)
    relaxed = another_enterprise(cast, "Relaxed")
    Enterprise.objects.filter(pk=relaxed.enterprise.pk).update(
        foundation_model_developer=True, foundation_model_developer_verified=True
    )
    relaxed.enterprise.refresh_from_db()
    cap_override_grant(
        year=this_year(),
        enterprise=relaxed.enterprise,
        cap_fen=500_000,
        reason="A registered foundation model.",
        requested_by=cast.approver2,
        actor=cast.approver,
    )
    grant_to(relaxed, number="HZ-2", fee_fen=1_400_000, amount_fen=200_000)
    grant_to(relaxed, number="HZ-3", fee_fen=1_400_000, amount_fen=200_000)

    # when
    page = dashboard_of(as_user(cast.reviewer))

    # then
    assert page.tables["near-cap"] == [
        [at_90.enterprise.name, yuan_text(360_000), yuan_text(CAP_FEN), bp_text(9000)],
        [relaxed.enterprise.name, yuan_text(400_000), yuan_text(500_000), bp_text(8000)],
    ]


# --- Who may see it, and which year ---------------------------------------------------------------


def test_anonymous_people_are_sent_to_sign_in(year: ProgramYear) -> None:
    response = Client().get("/dashboard/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/dashboard/"


@pytest.mark.parametrize("who", ["member", "clerk", "nobody"])
def test_members_of_organisations_and_people_without_a_role_are_refused(
    cast: Cast, year: ProgramYear, as_user: AsUser, who: str
) -> None:
    user = UserFactory.create() if who == "nobody" else getattr(cast, who)

    response = as_user(user).get("/dashboard/")

    assert response.status_code == 403
    assert b"data-figure" not in response.content


@pytest.mark.parametrize("role", ["reviewer", "approver", "finance", "auditor", "superuser"])
def test_every_staff_role_sees_the_dashboard(cast: Cast, year: ProgramYear, as_user: AsUser, role: str) -> None:
    users: dict[str, User] = {
        "reviewer": cast.reviewer,
        "approver": cast.approver,
        "finance": cast.finance,
        "auditor": UserFactory.create(roles=[Role.AUDITOR]),
        "superuser": cast.admin,
    }

    page = dashboard_of(as_user(users[role]))

    assert page.figures["pool_fen"] == POOL_FEN
    assert page.selected_years == [this_year()]


def test_the_year_asked_for_is_shown(cast: Cast, year: ProgramYear, as_user: AsUser) -> None:
    # given: last year, opened with a smaller pool
    last_year = this_year() - 1
    program_year_create(year=last_year, actor=cast.admin, pool_fen=500_000, default_cap_fen=CAP_FEN)
    program_year_open(year=last_year, actor=cast.admin)
    grant_to(cast, number="HZ-1", fee_fen=100_000)  # This year's: 30,000.
    client = as_user(cast.finance)

    # when
    asked = dashboard_of(client, f"?year={last_year}")
    by_default = dashboard_of(client)

    # then
    assert asked.selected_years == [last_year]
    assert asked.figures == {name: client.get(f"/api/v1/stats/pool/?year={last_year}").json()[name] for name in FIGURES}
    assert (asked.figures["pool_fen"], asked.figures["issued_fen"]) == (500_000, 0)
    assert by_default.selected_years == [this_year()]
    assert (by_default.figures["pool_fen"], by_default.figures["issued_fen"]) == (POOL_FEN, 30_000)


def test_a_draft_year_shows_an_empty_pool(cast: Cast, year: ProgramYear, as_user: AsUser) -> None:
    program_year_create(year=this_year() + 1, actor=cast.admin, pool_fen=2_000_000, default_cap_fen=CAP_FEN)

    page = dashboard_of(as_user(cast.finance), f"?year={this_year() + 1}")

    assert page.selected_years == [this_year() + 1]
    assert page.figures == dict.fromkeys(FIGURES, 0)
    assert page.segments == {"redeemed": 0, "held": 0, "unspent": 0, "lapsed": 0, "available": 0}


@pytest.mark.parametrize(
    "asked",
    [
        "1999",
        "2999",
        "abc",
        "",
        "-1",
        "99999999999999999999",
        pytest.param("²", id="superscript-two"),  # A digit to str.isdigit(), not to int().
    ],
)
def test_a_year_that_does_not_exist_falls_back_to_this_one(
    cast: Cast, year: ProgramYear, as_user: AsUser, asked: str
) -> None:
    page = dashboard_of(as_user(cast.reviewer), "?" + urlencode({"year": asked}))

    assert page.selected_years == [this_year()]
    assert page.figures["pool_fen"] == POOL_FEN


def test_without_this_year_the_latest_year_is_shown(cast: Cast, as_user: AsUser) -> None:
    program_year_create(year=this_year() - 2, actor=cast.admin, pool_fen=300_000, default_cap_fen=CAP_FEN)
    program_year_open(year=this_year() - 2, actor=cast.admin)
    program_year_create(year=this_year() - 1, actor=cast.admin, pool_fen=700_000, default_cap_fen=CAP_FEN)
    program_year_open(year=this_year() - 1, actor=cast.admin)

    page = dashboard_of(as_user(cast.reviewer), f"?year={this_year()}")

    assert page.selected_years == [this_year() - 1]
    assert page.figures["pool_fen"] == 700_000


def test_with_no_year_at_all_the_page_says_so(cast: Cast, as_user: AsUser) -> None:
    response = as_user(cast.reviewer).get("/dashboard/?year=2026")

    assert response.status_code == 200
    assert zh("No program year yet.") in response.content.decode()
    assert DashboardPage(response.content.decode()).figures == {}


def test_the_page_is_in_english_when_asked(cast: Cast, history: History, as_user: AsUser) -> None:
    page = dashboard_of(as_user(cast.reviewer, language="en"))

    with override("en"):
        assert page.tables[gettext("By compute source")][0][0] == str(WORDS["domestic"])
    assert page.figures["issued_fen"] == 550_000


# --- Programs side by side ------------------------------------------------------------------------

OVERVIEW_FIGURES = ("pool_fen", "issued_fen", "redeemed_fen", "settled_fen", "lapsed_fen", "available_fen")


@pytest.fixture
def two_programs(cast: Cast, history: History) -> None:
    """Beside the city's history, a district's program this year with a larger pool and a grant of its own."""
    district_open(cast.admin, pool_fen=3 * POOL_FEN, year=this_year())
    grant_to(cast, number="BJ-1", fee_fen=200_000, program=DISTRICT)  # 60,000 in the district's pool


def test_the_dashboard_shows_each_program_and_all_of_them(cast: Cast, two_programs: None, as_user: AsUser) -> None:
    client = as_user(cast.finance)
    y = this_year()

    city = dashboard_of(client)
    district = dashboard_of(client, f"?program={DISTRICT}")

    # The default program is chosen unless another is asked for; each shows its own figures, to the fen.
    assert city.selected_programs == [DEFAULT_PROGRAM] and district.selected_programs == [DISTRICT]
    assert set(city.programs_offered) == {DEFAULT_PROGRAM, DISTRICT}
    assert city.figures == {name: client.get(f"/api/v1/stats/pool/?year={y}").json()[name] for name in FIGURES}
    assert district.figures == {
        name: client.get(f"/api/v1/stats/pool/?program={DISTRICT}&year={y}").json()[name] for name in FIGURES
    }
    assert (district.figures["pool_fen"], district.figures["issued_fen"]) == (3 * POOL_FEN, 60_000)
    assert city.figures["issued_fen"] == 550_000
    # Both: every program's row as the API reads it, and the totals, each the sum of the rows.
    api = client.get(f"/api/v1/stats/programs/?year={y}").json()
    for page in (city, district):
        assert set(page.overview) == {DEFAULT_PROGRAM, DISTRICT, "all"}
        for row in api["programs"]:
            assert page.overview[row["program"]] == {name: row[name] for name in OVERVIEW_FIGURES}
        assert page.overview["all"] == {name: api["totals"][name] for name in OVERVIEW_FIGURES}
        for name in OVERVIEW_FIGURES:
            assert page.overview["all"][name] == page.overview[DEFAULT_PROGRAM][name] + page.overview[DISTRICT][name]
    assert city.overview["all"]["issued_fen"] == 550_000 + 60_000
    assert city.overview["all"]["pool_fen"] == POOL_FEN + 3 * POOL_FEN
    assert DISTRICT_NAME in client.get(f"/dashboard/?program={DISTRICT}").content.decode()


@pytest.mark.parametrize("asked", ["nowhere", "", "HANGZHOU-COMPUTE", "<script>"])
def test_a_program_that_does_not_exist_falls_back_to_the_default_one(
    cast: Cast, two_programs: None, as_user: AsUser, asked: str
) -> None:
    page = dashboard_of(as_user(cast.reviewer), "?" + urlencode({"program": asked}))

    assert page.selected_programs == [DEFAULT_PROGRAM]
    assert page.figures["issued_fen"] == 550_000


def test_a_program_without_a_year_shows_the_overview_and_says_it_has_no_year(
    cast: Cast, two_programs: None, as_user: AsUser
) -> None:
    from coupons.services.years import program_create

    program_create(
        actor=cast.admin, slug="no-year", name="无年度", name_en="No year", authority="x", level="city", region=["3301"]
    )

    response = as_user(cast.reviewer).get("/dashboard/?program=no-year")

    assert response.status_code == 200
    page = DashboardPage(response.content.decode())
    assert zh("No program year yet.") in response.content.decode()
    assert page.selected_programs == ["no-year"] and page.figures == {}
    assert page.overview["no-year"] == dict.fromkeys(OVERVIEW_FIGURES, 0)
    assert page.overview["all"]["issued_fen"] == 550_000 + 60_000
