"""Hostile input answers problem details (4xx), never a 500 or an HTML page."""

import json

import pytest
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.test import Client

from tests.api.conftest import assert_problem, signed_in

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/auth/token/", "/api/v1/applications/", "/api/v1/redemptions/batch/"])
def test_deeply_nested_json_is_400(path, cast, year, as_user):
    client = as_user(cast.clerk)
    body = "[" * 5000 + "]" * 5000
    response = client.post(path, body, content_type="application/json")
    assert_problem(response, 400, "validation_error")


@pytest.mark.parametrize("path", ["/api/v1/applications/", "/api/v1/redemptions/batch/"])
def test_a_body_over_the_limit_is_413(path, cast, year, as_user, db_snapshot):
    client = as_user(cast.clerk if "redemptions" in path else cast.member)
    body = '{"contract_number": "' + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1) + '"}'
    before = db_snapshot()
    assert_problem(client.post(path, body, content_type="application/json"), 413, "request_too_large")
    assert db_snapshot() == before


def test_a_body_too_big_outside_the_api_handler_is_413_under_the_api_only(rf):
    # Django's own handler400 gets RequestDataTooBig when a middleware or a plain view reads the body.
    from api.problems import bad_request

    answer = bad_request(rf.post("/api/v1/anything/"), RequestDataTooBig("too big"))
    assert (answer.status_code, answer["Content-Type"]) == (413, "application/problem+json")
    assert json.loads(answer.content)["code"] == "request_too_large"
    page = bad_request(rf.post("/apply/"), RequestDataTooBig("too big"))
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")


class Explode:
    """A middleware that fails the way a broken one does, for requests that ask it to."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "HTTP_X_EXPLODE" in request.META:
            raise RuntimeError("middleware broke: secret-internal-detail")
        return self.get_response(request)


def assert_bare_server_error(response) -> None:
    body = assert_problem(response, 500, "server_error")
    text = response.content.decode()
    assert "secret-internal-detail" not in text and "Traceback" not in text and "<html" not in text.lower()
    assert set(body) == {"type", "title", "status", "detail", "code"}


def test_a_database_error_in_a_view_is_a_problem_without_internals(cast, year, monkeypatch):
    def database_down(**kwargs):
        raise OperationalError("could not connect to server at secret-internal-detail:5432")

    monkeypatch.setattr("coupons.api.stats.pool_stats", database_down)
    client = signed_in(cast.admin)
    client.raise_request_exception = False
    assert_bare_server_error(client.get("/api/v1/stats/pool/"))


def test_a_bug_in_a_view_is_a_problem_without_internals(cast, year, monkeypatch):
    def bug(**kwargs):
        raise KeyError("secret-internal-detail")

    monkeypatch.setattr("coupons.api.stats.pool_stats", bug)
    client = signed_in(cast.admin)
    client.raise_request_exception = False
    assert_bare_server_error(client.get("/api/v1/stats/pool/"))


def test_an_error_in_a_middleware_is_a_problem_under_the_api_and_a_page_elsewhere(settings, db):
    settings.MIDDLEWARE = [f"{__name__}.Explode", *settings.MIDDLEWARE]
    client = Client(raise_request_exception=False)
    assert_bare_server_error(client.get("/api/v1/stats/pool/", HTTP_X_EXPLODE="1"))
    assert_bare_server_error(client.post("/api/v1/auth/token/", {}, HTTP_X_EXPLODE="1"))
    page = client.get("/", HTTP_X_EXPLODE="1")
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")
    assert "secret-internal-detail" not in page.content.decode()


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
