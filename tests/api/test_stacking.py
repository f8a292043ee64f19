"""Stacking over HTTP: a contract applied for in a second program that stacks with the first is
lowered to its combined ceiling, refused with 409 `stacking_ceiling` when nothing is left, and with
409 `duplicate_contract` in a program that does not stack (docs/programs.md "Stacking")."""

import pytest

from coupons.models import DEFAULT_PROGRAM, Application
from coupons.services.stacking import stacking_rule_create
from tests.api.conftest import assert_problem
from tests.api.test_applications import submit_body
from tests.coupons.test_stacking import DISTRICT, district_program

pytestmark = pytest.mark.django_db


@pytest.fixture
def district(cast, year):
    return district_program(cast.admin)


def stack(cast, share_bp: int) -> None:
    stacking_rule_create(actor=cast.admin, name="r", programs=[DEFAULT_PROGRAM, DISTRICT], share_bp=share_bp)


def test_the_second_program_is_lowered_to_the_combined_ceiling(cast, district, as_user):
    stack(cast, 5000)
    member = as_user(cast.member)
    assert member.post("/api/v1/applications/", submit_body(cast), format="json").status_code == 201

    answer = member.post("/api/v1/applications/", submit_body(cast, program=DISTRICT), format="json")

    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert (body["program"], body["eligible_fen"], body["requested_fen"]) == (DISTRICT, 300_000, 200_000)


def test_nothing_left_is_409_stacking_ceiling(cast, district, as_user, db_snapshot):
    stack(cast, 3000)
    member = as_user(cast.member)
    member.post("/api/v1/applications/", submit_body(cast), format="json")
    before = db_snapshot()

    answer = member.post("/api/v1/applications/", submit_body(cast, program=DISTRICT), format="json")

    assert_problem(answer, 409, "stacking_ceiling")
    assert db_snapshot() == before


def test_programs_that_do_not_stack_are_409_duplicate_contract(cast, district, as_user):
    member = as_user(cast.member)
    member.post("/api/v1/applications/", submit_body(cast), format="json")

    answer = member.post("/api/v1/applications/", submit_body(cast, program=DISTRICT), format="json")

    assert_problem(answer, 409, "duplicate_contract")
    assert "do not stack" in answer.json()["detail"]
    assert Application.objects.count() == 1


def test_a_superuser_writes_a_stacking_rule_and_staff_read_it(cast, district, as_user):
    body = {"name": "city+district", "programs": [DISTRICT, DEFAULT_PROGRAM], "share_bp": 6000}
    admin = as_user(cast.admin)

    created = admin.post("/api/v1/stacking-rules/", body, format="json")
    again = admin.post("/api/v1/stacking-rules/", body, format="json")

    assert created.status_code == 201, created.content
    assert created.json() | {"id": 0, "created_at": ""} == {
        "id": 0,
        "name": "city+district",
        "programs": sorted([DEFAULT_PROGRAM, DISTRICT]),
        "share_bp": 6000,
        "amount_fen": None,
        "created_at": "",
    }
    assert again.json()["id"] == created.json()["id"]
    assert_problem(
        admin.post("/api/v1/stacking-rules/", {**body, "share_bp": 5000}, format="json"), 409, "already_exists"
    )
    listed = as_user(cast.reviewer).get("/api/v1/stacking-rules/")
    assert [rule["name"] for rule in listed.json()] == ["city+district"]


def test_only_a_superuser_writes_and_a_rule_names_two_programs_that_exist(cast, district, as_user):
    body = {"name": "r", "programs": [DISTRICT, DEFAULT_PROGRAM], "share_bp": 6000}

    assert_problem(
        as_user(cast.approver).post("/api/v1/stacking-rules/", body, format="json"), 403, "permission_denied"
    )
    assert_problem(as_user(cast.member).get("/api/v1/stacking-rules/"), 403, "permission_denied")
    admin = as_user(cast.admin)
    assert_problem(
        admin.post("/api/v1/stacking-rules/", {**body, "programs": [DISTRICT]}, format="json"), 400, "validation_error"
    )
    assert_problem(
        admin.post("/api/v1/stacking-rules/", {**body, "programs": [DISTRICT, "nowhere"]}, format="json"),
        400,
        "validation_error",
    )
    assert_problem(
        admin.post("/api/v1/stacking-rules/", {**body, "share_bp": "60%"}, format="json"), 400, "validation_error"
    )


def test_staff_read_the_contracts_other_programs_and_the_room_left_and_applicants_do_not(cast, district, as_user):
    stack(cast, 5000)
    member = as_user(cast.member)
    city = member.post("/api/v1/applications/", submit_body(cast), format="json").json()
    pk = member.post("/api/v1/applications/", submit_body(cast, program=DISTRICT), format="json").json()["id"]

    seen = as_user(cast.reviewer).get(f"/api/v1/applications/{pk}/").json()["stacking"]

    assert seen == {
        "programs": [DEFAULT_PROGRAM],
        "rules": ["r"],
        "ceiling_fen": 500_000,
        "committed_fen": 300_000,
        "room_fen": 200_000,
    }
    assert as_user(cast.reviewer).get(f"/api/v1/applications/{city['id']}/").json()["stacking"]["programs"] == [
        DISTRICT
    ]
    assert member.get(f"/api/v1/applications/{pk}/").json()["stacking"] is None
    assert as_user(cast.clerk).get(f"/api/v1/applications/{pk}/").json()["stacking"] is None


def test_an_application_whose_contract_stands_alone_shows_no_stacking(cast, year, as_user):
    pk = as_user(cast.member).post("/api/v1/applications/", submit_body(cast), format="json").json()["id"]

    assert as_user(cast.reviewer).get(f"/api/v1/applications/{pk}/").json()["stacking"] is None
