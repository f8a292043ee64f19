"""GET /api/v1/stats/programs/: every program's figures for a year side by side, and their totals."""

import pytest

from coupons.selectors import program_year_figures, program_year_figures_from_rows
from coupons.services.redemptions import redemption_create
from coupons.services.years import program_create
from tests.api.conftest import assert_problem
from tests.coupons.conftest import IN_YEAR, POOL_FEN, YEAR, grant_for
from tests.evidence import invoice
from tests.programs import DISTRICT, district_open, grant_in

pytestmark = pytest.mark.django_db

FIGURES = (
    "pool_fen",
    "issued_fen",
    "held_fen",
    "redeemed_fen",
    "settled_fen",
    "lapsed_fen",
    "revoked_fen",
    "available_fen",
)


@pytest.fixture
def funds(cast, year):
    """The default program and a district's, each with grants of its own, and a third program with no
    year yet."""
    grant_for(cast, fee_fen=1_000_000)  # 300,000 in the city's pool
    district_open(cast.admin, pool_fen=2 * POOL_FEN)
    district_grant = grant_in(cast, DISTRICT, fee_fen=500_000)  # 150,000 in the district's pool
    redemption_create(
        grant=district_grant,
        bill_number="D-1",
        bill_amount_fen=100_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )  # 30,000 redeemed in the district
    program_create(
        actor=cast.admin,
        slug="province-test",
        name="测试省算力券",
        name_en="Test Province computing-power coupons",
        authority="测试省",
        level="province",
        region=["33"],
    )


def test_one_row_per_program_with_its_years_figures_and_totals_that_add_up(cast, funds, as_user):
    client = as_user(cast.finance)

    answer = client.get(f"/api/v1/stats/programs/?year={YEAR}")

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["year"] == YEAR
    rows = {row["program"]: row for row in body["programs"]}
    assert list(rows) == [DISTRICT, "hangzhou-compute", "province-test"]
    for slug in (DISTRICT, "hangzhou-compute"):
        figures = program_year_figures(year=YEAR, program=slug).as_dict()
        assert {name: rows[slug][name] for name in FIGURES} == figures
        assert figures == program_year_figures_from_rows(year=YEAR, program=slug).as_dict()
        single = client.get(f"/api/v1/stats/pool/?program={slug}&year={YEAR}").json()
        assert {name: single[name] for name in FIGURES} == figures
        assert rows[slug]["year_status"] == "open" and rows[slug]["status"] == "active"
    assert (rows[DISTRICT]["issued_fen"], rows[DISTRICT]["redeemed_fen"]) == (150_000, 30_000)
    assert (rows["hangzhou-compute"]["issued_fen"], rows["hangzhou-compute"]["redeemed_fen"]) == (300_000, 0)
    assert rows[DISTRICT]["pool_fen"] == 2 * POOL_FEN and rows["hangzhou-compute"]["pool_fen"] == POOL_FEN
    assert rows["province-test"]["year_status"] is None
    assert all(rows["province-test"][name] == 0 for name in FIGURES)
    assert rows["province-test"]["level"] == "province" and rows["province-test"]["name"] == "测试省算力券"
    # Each total is the sum of the rows.
    for name in FIGURES:
        assert body["totals"][name] == sum(row[name] for row in body["programs"]), name
    assert body["totals"]["issued_fen"] == 450_000
    assert body["totals"]["available_fen"] == 3 * POOL_FEN - 450_000


def test_the_year_defaults_to_the_current_one_and_a_year_of_no_program_is_all_zeros(cast, funds, as_user):
    client = as_user(cast.reviewer)

    assert client.get("/api/v1/stats/programs/").json() == client.get(f"/api/v1/stats/programs/?year={YEAR}").json()
    empty = client.get(f"/api/v1/stats/programs/?year={YEAR + 5}").json()
    assert [row["year_status"] for row in empty["programs"]] == [None, None, None]
    assert all(value == 0 for value in empty["totals"].values())
    for bad in ("x", "1999", "3000", "2026.5"):
        assert_problem(client.get(f"/api/v1/stats/programs/?year={bad}"), 400, "validation_error")


def test_only_staff_see_the_overview(cast, funds, as_user, anonymous):
    for user in (cast.member, cast.clerk):
        assert_problem(as_user(user).get("/api/v1/stats/programs/"), 403, "permission_denied")
    assert_problem(anonymous.get("/api/v1/stats/programs/"), 401, "not_authenticated")
    for user in (cast.reviewer, cast.approver, cast.admin):
        assert as_user(user).get("/api/v1/stats/programs/").status_code == 200


def test_an_empty_or_malformed_program_is_400_and_an_unknown_one_finds_nothing(cast, funds, as_user, anonymous):
    staff = as_user(cast.reviewer)

    for bad in ("", "not a slug", "x" * 25):
        query = f"?program={bad}"
        assert "program" in assert_problem(staff.get(f"/api/v1/stats/pool/{query}"), 400, "validation_error")["errors"]
        assert_problem(anonymous.get(f"/api/v1/public/awards/{query}"), 400, "validation_error")
        assert_problem(anonymous.get(f"/api/v1/public/awards.csv{query}"), 400, "validation_error")
    assert_problem(staff.get("/api/v1/stats/pool/?program=nowhere"), 404, "not_found")
    assert anonymous.get("/api/v1/public/awards/?program=nowhere").json()["count"] == 0
    district = anonymous.get(f"/api/v1/public/awards/?program={DISTRICT}").json()["results"]
    assert [(award["program"], award["amount_fen"]) for award in district] == [(DISTRICT, 150_000)]
