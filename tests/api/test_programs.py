"""/api/v1/programs/: a superuser sets up a program and closes it; an unknown program is 404 on every
path under it; a closed program takes no new year and no new application."""

import threading

import pytest
from django.db import connection, connections, transaction

from approvals.models import ApprovalRequest
from coupons.models import Application, Program, ProgramYear
from coupons.services.years import program_active_lock, program_close
from tests.api.conftest import assert_problem
from tests.api.test_applications import submit_body
from tests.coupons.conftest import YEAR
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SLUG = "west-lake-compute"


def program_body(**changes):
    return {
        "slug": SLUG,
        "name": "西湖区算力券",
        "name_en": "West Lake District computing-power coupons",
        "authority": "杭州市西湖区人民政府",
        "level": "district",
        "region": ["3301"],
        **changes,
    }


@pytest.fixture
def district(cast, as_user):
    """A district program with the test year open, serving Hangzhou (so the cast's enterprise may apply)."""
    admin = as_user(cast.admin)
    assert admin.post("/api/v1/programs/", program_body(), format="json").status_code == 201
    created = admin.post(f"/api/v1/programs/{SLUG}/years/", {"year": YEAR, "pool_fen": 500_000}, format="json")
    assert created.status_code == 201, created.content
    assert admin.post(f"/api/v1/programs/{SLUG}/years/{YEAR}/open/").status_code == 200
    return SLUG


# --- Setting a program up -------------------------------------------------------------------------


def test_a_superuser_sets_up_a_program_that_everyone_signed_in_then_reads(cast, as_user):
    created = as_user(cast.admin).post(
        "/api/v1/programs/", program_body(redemption_mode="enterprise_reimbursement"), format="json"
    )

    assert created.status_code == 201, created.content
    body = created.json()
    assert body == {
        "slug": SLUG,
        "name": "西湖区算力券",
        "name_en": "West Lake District computing-power coupons",
        "authority": "杭州市西湖区人民政府",
        "level": "district",
        "region": ["3301"],
        "redemption_mode": "enterprise_reimbursement",
        "basis": "compute_contract",
        "once_per_enterprise": False,
        "status": "active",
        "closed_at": None,
        "years": [],
    }
    member = as_user(cast.member)
    assert member.get(f"/api/v1/programs/{SLUG}/").json() == body
    assert SLUG in [item["slug"] for item in member.get("/api/v1/programs/").json()["results"]]
    assert Program.objects.get(slug=SLUG).redemption_mode == "enterprise_reimbursement"


def test_a_taken_slug_is_409_and_writes_nothing(cast, as_user, db_snapshot):
    admin = as_user(cast.admin)
    admin.post("/api/v1/programs/", program_body(), format="json")
    before = db_snapshot(), list(Program.objects.values_list("slug", "name").order_by("slug"))

    assert_problem(admin.post("/api/v1/programs/", program_body(name="另一个"), format="json"), 409, "already_exists")
    assert_problem(
        admin.post("/api/v1/programs/", program_body(slug="hangzhou-compute"), format="json"), 409, "already_exists"
    )

    assert (db_snapshot(), list(Program.objects.values_list("slug", "name").order_by("slug"))) == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"slug": "West-Lake"}, "slug"),
        ({"slug": "west_lake"}, "slug"),
        ({"slug": "west--lake"}, "slug"),
        ({"slug": "-west"}, "slug"),
        ({"slug": "west-lake\n"}, "slug"),
        ({"slug": "a" * 25}, "slug"),
        ({"slug": ""}, "slug"),
        ({"slug": 7}, "slug"),
        ({"level": "county"}, "level"),
        ({"level": ""}, "level"),
        ({"region": []}, "region"),
        ({"region": "3301"}, "region"),
        ({"region": ["33a1"]}, "region"),
        ({"region": ["3"]}, "region"),
        ({"region": ["3301081"]}, "region"),
        ({"region": [3301]}, "region"),
        ({"redemption_mode": "cash"}, "redemption_mode"),
        ({"name": ""}, "name"),
        ({"name_en": "x" * 201}, "name_en"),
        ({"authority": None}, "authority"),
        ({"status": "closed"}, "status"),
    ],
)
def test_bad_input_is_400_and_writes_nothing(changes, field, cast, as_user):
    response = as_user(cast.admin).post("/api/v1/programs/", program_body(**changes), format="json")

    body = assert_problem(response, 400, "validation_error")
    assert any(name.split(".")[0] == field for name in body["errors"]), body
    assert not Program.objects.filter(slug__startswith="west").exists()


def test_only_a_superuser_sets_up_or_closes_a_program(cast, as_user, anonymous, district):
    for user in (cast.reviewer, cast.approver, cast.finance, cast.member, cast.clerk):
        client = as_user(user)
        assert_problem(
            client.post("/api/v1/programs/", program_body(slug="other"), format="json"), 403, "permission_denied"
        )
        assert_problem(client.post(f"/api/v1/programs/{SLUG}/close/"), 403, "permission_denied")
    assert_problem(
        anonymous.post("/api/v1/programs/", program_body(slug="other"), format="json"), 401, "not_authenticated"
    )
    assert_problem(anonymous.post(f"/api/v1/programs/{SLUG}/close/"), 401, "not_authenticated")
    assert not Program.objects.filter(slug="other").exists()
    assert Program.objects.get(slug=SLUG).status == "active"


# --- An unknown program -----------------------------------------------------------------------------


def test_an_unknown_program_is_404_on_every_path_under_it(cast, year, as_user, db_snapshot):
    admin = as_user(cast.admin)
    before = db_snapshot()
    base = "/api/v1/programs/nowhere"

    for response in (
        admin.get(f"{base}/"),
        admin.post(f"{base}/close/"),
        admin.get(f"{base}/years/"),
        admin.post(f"{base}/years/", {"year": YEAR}, format="json"),
        admin.get(f"{base}/years/{YEAR}/"),
        admin.post(f"{base}/years/{YEAR}/open/"),
        admin.post(f"{base}/years/{YEAR}/close/"),
        as_user(cast.approver).post(
            f"{base}/years/{YEAR}/cap-overrides/",
            {"enterprise": cast.enterprise.pk, "cap_fen": 900_000, "reason": "x"},
            format="json",
        ),
    ):
        assert_problem(response, 404, "not_found")
    assert db_snapshot() == before
    assert not Program.objects.filter(slug="nowhere").exists()


# --- Years of a program -----------------------------------------------------------------------------


def test_a_year_created_twice_is_409_and_the_first_stays(cast, as_user, district):
    admin = as_user(cast.admin)
    first = admin.get(f"/api/v1/programs/{SLUG}/years/{YEAR}/").json()

    again = admin.post(f"/api/v1/programs/{SLUG}/years/", {"year": YEAR, "pool_fen": 9_000_000}, format="json")

    assert_problem(again, 409, "invalid_state")
    assert ProgramYear.objects.filter(program_id=SLUG, year=YEAR).count() == 1
    assert admin.get(f"/api/v1/programs/{SLUG}/years/{YEAR}/").json() == first
    # The same year of another program is another year.
    assert admin.post("/api/v1/program-years/", {"year": YEAR + 1}, format="json").status_code == 201
    assert admin.post(f"/api/v1/programs/{SLUG}/years/", {"year": YEAR + 1}, format="json").status_code == 201


# --- Closing a program ------------------------------------------------------------------------------


def close_by_two(cast, as_user, reason: str = "") -> dict:
    """The program SLUG closed as the API closes one: the admin asks, a second superuser approves."""
    body = {"reason": reason} if reason else {}
    asked = as_user(cast.admin).post(f"/api/v1/programs/{SLUG}/close/", body, format="json")
    assert asked.status_code == 202, asked.content
    second = UserFactory(is_superuser=True, is_staff=True)
    decided = as_user(second).post(f"/api/v1/approval-requests/{asked.json()['id']}/approve/", {}, format="json")
    assert decided.status_code == 200, decided.content
    program = Program.objects.get(slug=SLUG)
    assert program.closed_by == second
    return as_user(cast.admin).get(f"/api/v1/programs/{SLUG}/").json()


def test_closing_a_program_waits_for_a_second_superuser(cast, as_user, district):
    """Reproduced: one superuser closed a program (200), ending a fund's intake for good, alone."""
    admin = as_user(cast.admin)
    asked = admin.post(f"/api/v1/programs/{SLUG}/close/", {"reason": "The district fund ends."}, format="json")

    assert asked.status_code == 202, asked.content
    request = asked.json()
    assert (request["action"], request["status"], request["payload"]) == ("program_close", "pending", {"program": SLUG})
    assert request["reason"] == "The district fund ends."
    assert Program.objects.get(slug=SLUG).status == "active"
    # A second request while one waits, and the asker deciding: refused, nothing changed.
    assert_problem(admin.post(f"/api/v1/programs/{SLUG}/close/"), 409, "invalid_state")
    assert_problem(
        admin.post(f"/api/v1/approval-requests/{request['id']}/approve/", {}, format="json"), 403, "four_eyes"
    )
    # Bad input is 400 and asks nothing.
    assert_problem(admin.post(f"/api/v1/programs/{SLUG}/close/", {"why": "x"}, format="json"), 400, "validation_error")
    assert Program.objects.get(slug=SLUG).status == "active"
    # A second superuser's rejection leaves it open; an approval closes it, in the decider's name.
    second = as_user(UserFactory(is_superuser=True, is_staff=True))
    assert (
        second.post(
            f"/api/v1/approval-requests/{request['id']}/reject/", {"reason": "Not yet."}, format="json"
        ).status_code
        == 200
    )
    assert Program.objects.get(slug=SLUG).status == "active"
    close_by_two(cast, as_user)


def test_a_closed_program_takes_no_new_year_and_no_new_application(cast, year, as_user, district):
    admin, member = as_user(cast.admin), as_user(cast.member)
    admin.post(f"/api/v1/programs/{SLUG}/years/", {"year": YEAR + 1}, format="json")  # A draft, before the close.
    before = member.post("/api/v1/applications/", submit_body(cast, program=SLUG), format="json")
    assert before.status_code == 201, before.content

    closed = close_by_two(cast, as_user, reason="District board decision 2027-3.")

    assert closed["status"] == "closed" and closed["closed_at"]
    years = ProgramYear.objects.filter(program_id=SLUG).count()
    assert_problem(
        admin.post(f"/api/v1/programs/{SLUG}/years/", {"year": YEAR + 2}, format="json"), 409, "program_closed"
    )
    assert_problem(admin.post(f"/api/v1/programs/{SLUG}/years/{YEAR + 1}/open/"), 409, "program_closed")
    assert ProgramYear.objects.filter(program_id=SLUG).count() == years
    assert ProgramYear.objects.get(program_id=SLUG, year=YEAR + 1).status == "draft"
    applications = Application.objects.count()
    refused = member.post(
        "/api/v1/applications/", submit_body(cast, program=SLUG, contract_number="HZ-C-2"), format="json"
    )
    assert_problem(refused, 409, "program_closed")
    assert Application.objects.count() == applications
    # The other programs go on; closing again changes nothing.
    assert (
        member.post("/api/v1/applications/", submit_body(cast, contract_number="HZ-C-3"), format="json").status_code
        == 201
    )
    again = admin.post(f"/api/v1/programs/{SLUG}/close/")
    assert again.status_code == 200 and again.json()["closed_at"] == closed["closed_at"]
    assert ApprovalRequest.objects.filter(action="program_close").count() == 1
    # What it held goes on: the application submitted before the close is still there to decide.
    assert Application.objects.get(pk=before.json()["id"]).status == "submitted"


def test_listed_programs_filter_by_status(cast, as_user, district):
    admin = as_user(cast.admin)
    close_by_two(cast, as_user)

    closed = admin.get("/api/v1/programs/?status=closed").json()["results"]
    active = admin.get("/api/v1/programs/?status=active").json()["results"]

    assert [item["slug"] for item in closed] == [SLUG]
    assert SLUG not in [item["slug"] for item in active]


@pytest.mark.django_db(transaction=True)
def test_a_close_waits_for_a_submission_that_saw_the_program_open(cast, district):
    """The submission's share of the program's row holds until it commits: the close waits for it, so
    no application lands in a program after it closed."""
    holding, closed = threading.Event(), threading.Event()
    order: list[str] = []

    def submission() -> None:
        try:
            with transaction.atomic():
                program_active_lock(SLUG)
                holding.set()
                closed.wait(timeout=1)  # The close must not get through while this holds.
                order.append("submission committed")
        finally:
            connections.close_all()

    def close() -> None:
        try:
            holding.wait(timeout=10)
            connection.ensure_connection()
            program_close(slug=SLUG, actor=cast.admin)
            order.append("closed")
            closed.set()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submission), threading.Thread(target=close)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert order == ["submission committed", "closed"]
    assert Program.objects.get(slug=SLUG).status == "closed"


@pytest.mark.django_db(transaction=True)
def test_racing_creations_of_one_program_or_one_year_make_one_and_refuse_the_rest(cast):
    from config.errors import AlreadyExists, InvalidState
    from coupons.services.years import program_create, program_year_create
    from tests.concurrency import race

    terms = {key: value for key, value in program_body().items() if key != "slug"}
    programs = race([lambda: program_create(actor=cast.admin, slug="raced", **terms) for _ in range(8)])

    assert sum(isinstance(result, Program) for result in programs) == 1
    assert all(isinstance(result, (Program, AlreadyExists)) for result in programs), programs
    years = race([lambda: program_year_create(year=YEAR, actor=cast.admin, program="raced") for _ in range(8)])
    assert sum(isinstance(result, ProgramYear) for result in years) == 1
    assert all(isinstance(result, (ProgramYear, InvalidState)) for result in years), years
    assert ProgramYear.objects.filter(program_id="raced").count() == 1
