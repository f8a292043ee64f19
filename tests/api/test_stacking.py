"""Stacking over HTTP: a contract applied for in a second program that stacks with the first is
lowered to its combined ceiling, refused with 409 `stacking_ceiling` when nothing is left, and with
409 `duplicate_contract` in a program that does not stack (docs/programs.md "Stacking")."""

import pytest

from coupons.models import DEFAULT_PROGRAM, Application, StackingRule
from coupons.services.stacking import stacking_rule_create
from tests.api.conftest import approved, assert_problem
from tests.api.test_applications import submit_body
from tests.coupons.test_stacking import DISTRICT, district_program
from tests.factories import UserFactory

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


def test_a_superuser_asks_for_a_stacking_rule_another_approves_and_staff_read_it(cast, district, as_user, db_snapshot):
    body = {"name": "city+district", "programs": [DISTRICT, DEFAULT_PROGRAM], "share_bp": 6000, "reason": "Notice 3."}
    admin = as_user(cast.admin)
    second_admin = UserFactory(is_superuser=True, is_staff=True)

    # when asked: 202, an approval request; no rule yet, and the asker may not approve it
    asked = admin.post("/api/v1/stacking-rules/", body, format="json")
    assert asked.status_code == 202, asked.content
    assert (asked.json()["action"], asked.json()["status"]) == ("stacking_rule_create", "pending")
    assert asked.json()["payload"] == {
        "name": "city+district",
        "programs": sorted([DEFAULT_PROGRAM, DISTRICT]),
        "share_bp": 6000,
        "amount_fen": None,
    }
    assert not StackingRule.objects.exists()
    assert_problem(admin.post(f"/api/v1/approval-requests/{asked.json()['id']}/approve/"), 403, "four_eyes")
    assert_problem(
        as_user(cast.approver).post(f"/api/v1/approval-requests/{asked.json()['id']}/approve/"),
        403,
        "permission_denied",
    )
    # while it waits, another stacking rule request is 409
    before = db_snapshot()
    assert_problem(
        admin.post("/api/v1/stacking-rules/", {**body, "name": "other"}, format="json"), 409, "invalid_state"
    )
    assert db_snapshot() == before

    # when another superuser approves it: written, and staff read it
    approved(asked, as_user(second_admin))
    listed = as_user(cast.reviewer).get("/api/v1/stacking-rules/")
    assert listed.json()["count"] == 1  # Paginated, as every list is (found from outside: a bare list).
    assert [(rule["name"], rule["programs"], rule["share_bp"]) for rule in listed.json()["results"]] == [
        ("city+district", sorted([DEFAULT_PROGRAM, DISTRICT]), 6000)
    ]
    # a name a rule has is 409, whatever its terms
    assert_problem(admin.post("/api/v1/stacking-rules/", body, format="json"), 409, "already_exists")


def test_only_a_superuser_asks_and_a_rule_names_two_programs_that_exist(cast, district, as_user, db_snapshot):
    body = {"name": "r", "programs": [DISTRICT, DEFAULT_PROGRAM], "share_bp": 6000, "reason": "Notice 3."}
    before = db_snapshot()

    assert_problem(
        as_user(cast.approver).post("/api/v1/stacking-rules/", body, format="json"), 403, "permission_denied"
    )
    assert_problem(as_user(cast.member).get("/api/v1/stacking-rules/"), 403, "permission_denied")
    admin = as_user(cast.admin)
    for wrong in (
        {"programs": [DISTRICT]},
        {"programs": [DISTRICT, "nowhere"]},
        {"share_bp": "60%"},
        {"reason": ""},
    ):
        assert_problem(admin.post("/api/v1/stacking-rules/", {**body, **wrong}, format="json"), 400, "validation_error")
    no_reason = {key: value for key, value in body.items() if key != "reason"}
    assert_problem(admin.post("/api/v1/stacking-rules/", no_reason, format="json"), 400, "validation_error")
    assert db_snapshot() == before and not StackingRule.objects.exists()


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
