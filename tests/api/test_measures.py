"""The seed's other measures over HTTP: programs show their basis, applications take and show the
loan inputs, and the one-time reward refuses a second application as a problem, writing nothing."""

import pytest

from coupons.services.measures import measure_program_create
from tests.api.conftest import assert_problem
from tests.api.test_applications import submit_body
from tests.coupons.conftest import YEAR
from tests.coupons.test_policy import FILING_NUMBER, set_flags
from tests.evidence import document

pytestmark = pytest.mark.django_db

POOL_FEN = 100_000_000_000


@pytest.fixture
def measures(cast):
    for measure in ("model-filing-reward", "financing-interest"):
        measure_program_create(actor=cast.admin, measure=measure, year=YEAR, pool_fen=POOL_FEN, open_year=True)


def test_programs_show_their_basis_and_the_rules_their_caps(cast, measures, as_user):
    client = as_user(cast.member)
    programs = {p["slug"]: p for p in client.get("/api/v1/programs/").json()["results"]}
    assert (programs["model-filing-reward"]["basis"], programs["model-filing-reward"]["once_per_enterprise"]) == (
        "evaluation_costs",
        True,
    )
    assert (programs["financing-interest"]["basis"], programs["financing-interest"]["once_per_enterprise"]) == (
        "loan_interest",
        False,
    )
    year = as_user(cast.reviewer).get(f"/api/v1/programs/financing-interest/years/{YEAR}/").json()
    rule = year["rates"]["rules"][0]
    assert rule["loan_rate_points_max_bp"] == 150 and rule["when"] == {"project_investment_fen_min": 5_000_000_000}
    assert year["default_cap_fen"] == 1_000_000_000


def test_a_loan_interest_application_over_http(cast, measures, as_user):
    client = as_user(cast.member)
    body = submit_body(
        cast,
        program="financing-interest",
        contract_fee_fen=3_000_000,
        loan_rate_bp=450,
        project_investment_fen=5_000_000_000,
    )
    created = client.post("/api/v1/applications/", body, format="json")
    assert created.status_code == 201, created.content
    answer = created.json()
    assert (answer["program"], answer["rate_bp"], answer["eligible_fen"]) == ("financing-interest", 3333, 999_900)
    assert (answer["loan_rate_bp"], answer["project_investment_fen"]) == (450, 5_000_000_000)


def test_the_loan_inputs_are_refused_where_they_do_not_belong(cast, measures, year, as_user, db_snapshot):
    client = as_user(cast.member)
    before = db_snapshot()
    missing = client.post(
        "/api/v1/applications/", submit_body(cast, program="financing-interest", loan_rate_bp=450), format="json"
    )
    assert "project_investment_fen" in assert_problem(missing, 400, "validation_error")["errors"]
    stray = client.post("/api/v1/applications/", submit_body(cast, loan_rate_bp=450), format="json")
    assert "loan_rate_bp" in assert_problem(stray, 400, "validation_error")["errors"]
    assert db_snapshot() == before


def test_the_reward_a_second_time_is_403_not_eligible(cast, measures, as_user, db_snapshot):
    set_flags(cast.enterprise, has_registered_model=True)
    client = as_user(cast.member)

    def body(number):
        return submit_body(
            cast,
            program="model-filing-reward",
            contract_number=number,
            contract_fee_fen=100_000_00,
            model_filing_number=FILING_NUMBER,
            filing_certificate_document=document(cast.member, "filing_certificate").pk,
        )

    first = client.post("/api/v1/applications/", body("EVAL-1"), format="json")
    assert (first.status_code, first.json()["eligible_fen"]) == (201, 100_000_00), first.content
    second = body("EVAL-2")
    before = db_snapshot()
    problem = assert_problem(client.post("/api/v1/applications/", second, format="json"), 403, "not_eligible")
    assert problem["reason"] == "once_per_enterprise"
    assert db_snapshot() == before


def test_a_year_may_write_the_loan_rule_keys_over_http(cast, measures, as_user, db_snapshot):
    from coupons.policy import FINANCING_INTEREST_SUBSIDY

    client = as_user(cast.admin)
    rates = {key: FINANCING_INTEREST_SUBSIDY["rates"][key] for key in ("name", "ceiling_bp", "rules")}
    bad = {**rates, "name": "bad", "rules": [{**rates["rules"][0], "loan_rate_points_max_bp": 0}]}
    before = db_snapshot()
    refused = client.post("/api/v1/programs/financing-interest/years/", {"year": YEAR + 1, "rates": bad}, format="json")
    assert_problem(refused, 400, "validation_error")
    assert db_snapshot() == before
    created = client.post(
        "/api/v1/programs/financing-interest/years/",
        {"year": YEAR + 1, "pool_fen": POOL_FEN, "default_cap_fen": 1_000_000_000, "rates": rates},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["rates"] == rates
