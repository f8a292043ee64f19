"""Hostile input answers problem details (4xx), never a 500 or an HTML page."""

import pytest

from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/auth/token/", "/api/v1/applications/", "/api/v1/redemptions/batch/"])
def test_deeply_nested_json_is_400(path, cast, year, as_user):
    client = as_user(cast.clerk)
    body = "[" * 5000 + "]" * 5000
    response = client.post(path, body, content_type="application/json")
    assert_problem(response, 400, "validation_error")


def test_a_body_over_the_limit_is_400(cast, year, as_user):
    client = as_user(cast.member)
    body = '{"contract_number": "' + "x" * 2_000_000 + '"}'
    assert_problem(client.post("/api/v1/applications/", body, content_type="application/json"), 400, "validation_error")


@pytest.mark.parametrize("path", ["/api/v1/nonexistent/", "/api/v1/grants/abc/", "/api/v1/grants/-1/"])
def test_unknown_api_paths_are_problem_details(path, cast, as_user):
    assert_problem(as_user(cast.member).get(path), 404, "not_found")


def test_a_nul_in_an_unknown_field_name_is_a_400_that_replays(cast, year, as_user):
    # Found by schemathesis: the problem echoed the field's name, NUL included, and PostgreSQL
    # refused to store it in the idempotency record (a 500).
    client = as_user(cast.clerk)
    body = '{"c\\u0000x": 1, "grant": 1, "bill_number": "B-1", "bill_amount_fen": 100}'
    first = client.post("/api/v1/redemptions/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="nul-1")
    problem = assert_problem(first, 400, "validation_error")
    assert "\x00" not in first.content.decode() and "c\ufffdx" in problem["errors"]
    again = client.post("/api/v1/redemptions/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="nul-1")
    assert (again.status_code, again.json()) == (400, problem)
