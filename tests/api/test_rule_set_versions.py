"""POST /api/v1/programs/{slug}/years/{year}/rule-sets/ and its default-program twin
/api/v1/program-years/{year}/rule-sets/: a superuser asks for a rule-set version from a day (202, an
approval request), another superuser approves it, and the year's read lists its versions in date
order. Refusals are 400 with nothing written, 403 for staff who are not superusers, 404 for an
unknown program or year; the asker may not approve their own request (403 four_eyes)."""

import datetime as dt

import pytest
import yaml

from approvals.models import ApprovalRequest
from coupons.models import Program, ProgramYear, RateRuleSet, RuleSetVersion
from coupons.policy import MEASURES_2024, REVISION_2025_06
from coupons.services.years import program_year_create
from tests.api.conftest import approved, assert_problem
from tests.coupons.conftest import CAP_FEN, POOL_FEN
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DRAFT = 2027  # A year in the future, prepared and not opened: any day of it may take a version.


def rates(policy: dict) -> dict:
    return {"name": policy["name"], "ceiling_bp": policy["ceiling_bp"], "rules": policy["rules"]}


def version(day: str, policy: dict = REVISION_2025_06) -> dict:
    return {"effective_from": day, "rates": rates(policy), "reason": "The revised measures."}


def written() -> tuple[int, int, int]:
    return RuleSetVersion.objects.count(), RateRuleSet.objects.count(), ApprovalRequest.objects.count()


@pytest.fixture
def second_admin():
    """Another superuser: the one who decides what the first asks for."""
    return UserFactory(is_superuser=True, is_staff=True)


def add(as_user, asker, decider, path: str, body: dict) -> dict:
    """Ask as `asker`, approve as `decider`: the year as it reads afterwards."""
    approved(as_user(asker).post(path, body, format="json"), as_user(decider))
    return as_user(decider).get(path.removesuffix("rule-sets/")).json()


@pytest.fixture
def draft(cast) -> ProgramYear:
    return program_year_create(year=DRAFT, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN)


@pytest.fixture
def district(cast) -> Program:
    program = Program.objects.create(
        slug="xihu-compute",
        name="西湖区算力券",
        name_en="Xihu district computing-power coupons",
        authority="西湖区经济和信息化局",
        level=Program.Level.DISTRICT,
        region=["330106"],
    )
    program_year_create(year=DRAFT, actor=cast.admin, program=program.slug, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN)
    return program


@pytest.mark.parametrize(
    "path", [f"/api/v1/program-years/{DRAFT}/rule-sets/", f"/api/v1/programs/hangzhou-compute/years/{DRAFT}/rule-sets/"]
)
def test_a_superuser_asks_another_approves_and_the_year_lists_them_in_date_order(
    cast, draft, as_user, second_admin, path
):
    client = as_user(cast.admin)
    # when asked
    asked = client.post(path, version(f"{DRAFT}-06-13"), format="json")
    # then 202, an approval request, and nothing added yet
    assert asked.status_code == 202, asked.content
    request = asked.json()
    assert (request["action"], request["status"], request["target"]) == (
        "rule_set_version_add",
        "pending",
        f"rule-sets:{draft.pk}",
    )
    assert request["payload"]["effective_from"] == f"{DRAFT}-06-13"
    assert len(client.get(f"/api/v1/program-years/{DRAFT}/").json()["rule_sets"]) == 1
    # the asker may not approve it
    own = client.post(f"/api/v1/approval-requests/{request['id']}/approve/", {}, format="json")
    assert_problem(own, 403, "four_eyes")
    # when another superuser approves it
    approved(asked, as_user(second_admin))
    body = client.get(f"/api/v1/program-years/{DRAFT}/").json()
    assert (body["program"], body["year"]) == ("hangzhou-compute", DRAFT)
    assert [(item["effective_from"], item["name"]) for item in body["rule_sets"]] == [
        (f"{DRAFT}-01-01", "measures-2024"),
        (f"{DRAFT}-06-13", "revision-2025-06"),
    ]
    assert body["rule_sets"][1] == {"effective_from": f"{DRAFT}-06-13", **rates(REVISION_2025_06)}
    assert body["rates"] == rates(MEASURES_2024)  # The first version, for clients from before versions.


def test_a_reviewer_or_approver_may_not_decide_it(cast, draft, as_user):
    asked = as_user(cast.admin).post(
        f"/api/v1/program-years/{DRAFT}/rule-sets/", version(f"{DRAFT}-06-13"), format="json"
    )
    for decider in (cast.approver, cast.reviewer):
        response = as_user(decider).post(f"/api/v1/approval-requests/{asked.json()['id']}/approve/", {}, format="json")
        assert_problem(response, 403, "permission_denied")
    assert RuleSetVersion.objects.filter(program_year=draft).count() == 1


def test_a_version_that_became_retroactive_while_waiting_is_refused_on_approval(
    cast, year, draft, as_user, second_admin
):
    # given a request whose day has gone by when it is decided: asked on the draft year, then (as
    # if the year had opened and months had passed) its terms name a past day of the open year
    asked = as_user(cast.admin).post(
        f"/api/v1/program-years/{DRAFT}/rule-sets/", version(f"{DRAFT}-06-02"), format="json"
    )
    assert asked.status_code == 202, asked.content
    payload = {**asked.json()["payload"], "year": year.year, "effective_from": f"{year.year}-06-02"}
    ApprovalRequest.objects.filter(pk=asked.json()["id"]).update(payload=payload)
    # when approved: checked again, and refused, nothing added; the request stays pending
    response = as_user(second_admin).post(f"/api/v1/approval-requests/{asked.json()['id']}/approve/", {}, format="json")
    problem = assert_problem(response, 400, "validation_error")
    assert "retroactive" in problem["errors"]["effective_from"][0]
    assert RuleSetVersion.objects.filter(program_year=year).count() == 1
    assert ApprovalRequest.objects.get(pk=asked.json()["id"]).status == "pending"


def test_one_request_per_year_waits_at_a_time(cast, draft, as_user):
    client = as_user(cast.admin)
    assert (
        client.post(f"/api/v1/program-years/{DRAFT}/rule-sets/", version(f"{DRAFT}-06-13"), format="json").status_code
        == 202
    )
    before = written()
    second = client.post(f"/api/v1/program-years/{DRAFT}/rule-sets/", version(f"{DRAFT}-09-01"), format="json")
    assert_problem(second, 409, "invalid_state")
    assert written() == before


def test_a_version_of_another_program_leaves_the_default_programs_year_alone(
    cast, draft, district, as_user, second_admin
):
    path = f"/api/v1/programs/xihu-compute/years/{DRAFT}/rule-sets/"
    added = add(as_user, cast.admin, second_admin, path, version(f"{DRAFT}-03-01"))
    assert len(added["rule_sets"]) == 2
    assert len(as_user(cast.admin).get(f"/api/v1/program-years/{DRAFT}/").json()["rule_sets"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (version(f"{DRAFT - 1}-12-31"), "effective_from"),  # outside the year
        (version(f"{DRAFT + 1}-01-01"), "effective_from"),  # outside the year
        (version(f"{DRAFT}-01-01"), "effective_from"),  # the year's first version is from 1 January
        (version("13 June"), "effective_from"),
        ({"rates": rates(REVISION_2025_06)}, "effective_from"),
        ({"effective_from": f"{DRAFT}-06-13"}, "rates"),
        (version(f"{DRAFT}-06-13") | {"extra": 1}, "extra"),
        ({"effective_from": f"{DRAFT}-06-13", "rates": rates(REVISION_2025_06)}, "reason"),
        (
            {"effective_from": f"{DRAFT}-06-13", "rates": {**rates(REVISION_2025_06), "ceiling_bp": 10_001}},
            "rates.ceiling_bp",
        ),
    ],
    ids=[
        "year-before",
        "year-after",
        "overlaps-first",
        "not-a-date",
        "no-day",
        "no-rates",
        "unknown-field",
        "no-reason",
        "bad-rates",
    ],
)
def test_a_refused_version_is_400_and_writes_nothing(cast, draft, as_user, body, field):
    before = written()
    response = as_user(cast.admin).post(f"/api/v1/program-years/{DRAFT}/rule-sets/", body, format="json")
    problem = assert_problem(response, 400, "validation_error")
    assert any(name.startswith(field) for name in problem["errors"]), problem
    assert written() == before


def test_two_versions_on_one_day_are_400(cast, draft, as_user, second_admin):
    client = as_user(cast.admin)
    add(as_user, cast.admin, second_admin, f"/api/v1/program-years/{DRAFT}/rule-sets/", version(f"{DRAFT}-06-13"))
    before = written()
    again = version(f"{DRAFT}-06-13", {**MEASURES_2024, "name": "measures-again"})
    assert_problem(
        client.post(f"/api/v1/program-years/{DRAFT}/rule-sets/", again, format="json"), 400, "validation_error"
    )
    assert written() == before


def test_a_past_day_of_an_open_year_is_400(cast, year, as_user):
    # given the open year of the coupon tests (2026), a day of it gone by
    before = written()
    response = as_user(cast.admin).post(
        f"/api/v1/program-years/{year.year}/rule-sets/", version(f"{year.year}-02-01"), format="json"
    )
    problem = assert_problem(response, 400, "validation_error")
    assert "retroactive" in problem["errors"]["effective_from"][0]
    assert written() == before


def test_staff_who_are_not_superusers_are_403(cast, draft, as_user):
    before = written()
    for user in (cast.reviewer, cast.approver, cast.finance):
        response = as_user(user).post(
            f"/api/v1/program-years/{DRAFT}/rule-sets/", version(f"{DRAFT}-06-13"), format="json"
        )
        assert_problem(response, 403, "permission_denied")
    assert_problem(
        as_user(cast.member).post(
            f"/api/v1/program-years/{DRAFT}/rule-sets/", version(f"{DRAFT}-06-13"), format="json"
        ),
        403,
        "permission_denied",
    )
    assert written() == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/program-years/2031/rule-sets/",
        "/api/v1/programs/no-such-program/years/2027/rule-sets/",
        "/api/v1/programs/hangzhou-compute/years/2031/rule-sets/",
    ],
)
def test_an_unknown_program_or_year_is_404(cast, draft, as_user, path):
    assert_problem(as_user(cast.admin).post(path, version("2031-06-13"), format="json"), 404, "not_found")


def test_a_year_is_prepared_with_its_versions_and_priced_by_contract(cast, as_user):
    client = as_user(cast.admin)
    body = {
        "year": DRAFT,
        "priced_by": "contract",
        "rule_sets": [version(f"{DRAFT}-01-01", MEASURES_2024), version(f"{DRAFT}-06-13")],
    }
    created = client.post("/api/v1/program-years/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["priced_by"] == "contract"
    assert [item["effective_from"] for item in created.json()["rule_sets"]] == [f"{DRAFT}-01-01", f"{DRAFT}-06-13"]


@pytest.mark.parametrize(
    ("rule_sets", "field"),
    [
        ([version(f"{DRAFT}-02-01", MEASURES_2024)], "rule_sets.0.effective_from"),  # a gap from 1 January
        ([version(f"{DRAFT}-01-01", MEASURES_2024), version(f"{DRAFT}-01-01")], "rule_sets.1.effective_from"),
        ([version(f"{DRAFT}-01-01", MEASURES_2024), version(f"{DRAFT + 1}-03-01")], "rule_sets.1.effective_from"),
    ],
    ids=["gap", "overlap", "outside"],
)
def test_a_year_whose_versions_leave_a_gap_overlap_or_leave_the_year_is_400(cast, as_user, rule_sets, field):
    before = written(), ProgramYear.objects.count()
    response = as_user(cast.admin).post(
        "/api/v1/program-years/", {"year": DRAFT, "rule_sets": rule_sets}, format="json"
    )
    problem = assert_problem(response, 400, "validation_error")
    assert field in problem["errors"], problem
    assert (written(), ProgramYear.objects.count()) == before


def test_rates_and_rule_sets_together_are_400(cast, as_user):
    body = {"year": DRAFT, "rates": rates(MEASURES_2024), "rule_sets": [version(f"{DRAFT}-01-01", MEASURES_2024)]}
    assert_problem(as_user(cast.admin).post("/api/v1/program-years/", body, format="json"), 400, "validation_error")
    assert not ProgramYear.objects.filter(year=DRAFT).exists()


def test_the_schema_documents_the_rule_set_paths(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    for path in ("/api/v1/program-years/{year}/rule-sets/", "/api/v1/programs/{program}/years/{year}/rule-sets/"):
        operation = schema["paths"][path]["post"]
        assert "202" in operation["responses"]
        for code in ("validation_error", "permission_denied", "not_found", "program_year_closed"):
            assert code in operation["description"], code
    year_fields = schema["components"]["schemas"]["ProgramYear"]["properties"]
    assert {"rule_sets", "priced_by", "rates"} <= set(year_fields)


def test_dates_are_read_as_days(cast, draft):
    assert RuleSetVersion.objects.get(program_year=draft).effective_from == dt.date(DRAFT, 1, 1)
