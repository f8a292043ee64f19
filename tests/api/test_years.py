"""/api/v1/program-years/: years with their policy and live figures, preparing and opening them,
and cap overrides under four eyes, over HTTP."""

import pytest

from approvals.models import ApprovalRequest
from coupons.models import CapOverride, ProgramYear, RateRuleSet
from coupons.policy import MEASURES_2024, REVISION_2025_06
from coupons.selectors import program_year_figures
from coupons.services.years import enterprise_cap_fen
from tests.api.conftest import approved, assert_problem
from tests.coupons.conftest import CAP_FEN, POOL_FEN, YEAR, grant_for
from tests.factories import EnterpriseFactory

pytestmark = pytest.mark.django_db

NEXT = YEAR + 1
FIGURES = ("issued_fen", "held_fen", "redeemed_fen", "settled_fen", "lapsed_fen", "revoked_fen", "available_fen")


def rates_of(rule_set: dict) -> dict:
    return {"name": rule_set["name"], "ceiling_bp": rule_set["ceiling_bp"], "rules": rule_set["rules"]}


def figures_of(year: int) -> dict:
    figures = program_year_figures(year=year).as_dict()
    del figures["pool_fen"]
    return figures


@pytest.fixture
def foundation_model_enterprise(cast):
    cast.enterprise.foundation_model_developer = True
    cast.enterprise.foundation_model_developer_verified = True
    cast.enterprise.save(update_fields=["foundation_model_developer", "foundation_model_developer_verified"])
    return cast.enterprise


def override_body(cast, **changes):
    return {
        "enterprise": cast.enterprise.pk,
        "cap_fen": 900_000,
        "reason": "Trains a registered multimodal foundation model.",
        **changes,
    }


# --- Reading ------------------------------------------------------------------------------------


def test_staff_read_years_with_their_policy_and_live_figures(cast, year, as_user):
    grant_for(cast, fee_fen=500_000)
    client = as_user(cast.finance)

    listed = client.get("/api/v1/program-years/")
    assert listed.status_code == 200, listed.content
    assert [item["year"] for item in listed.json()["results"]] == [YEAR]
    read = client.get(f"/api/v1/program-years/{YEAR}/")
    assert read.status_code == 200, read.content
    body = read.json()
    assert body == listed.json()["results"][0]
    assert set(body) == {
        "program",
        "year",
        "status",
        "pool_fen",
        "default_cap_fen",
        "relaxed_cap_ceiling_fen",
        "grace_days",
        "open_applications_at_close",
        "grant_validity",
        "grant_validity_months",
        "redemption_mode",
        "region_division_prefixes",
        "redemption_mode",
        "acknowledgement_window_days",
        "contract_signed_within_year",
        "contract_term_months_max",
        "filing_certificate_required",
        "priced_by",
        "rates",
        "rule_sets",
        "figures",
    }
    assert body["region_division_prefixes"] == ["3301"]
    assert (body["open_applications_at_close"], body["grant_validity"], body["grant_validity_months"]) == (
        "carry",
        "year_end",
        None,
    )
    assert (body["year"], body["status"], body["pool_fen"], body["default_cap_fen"], body["grace_days"]) == (
        YEAR,
        "open",
        POOL_FEN,
        CAP_FEN,
        0,
    )
    assert body["rates"] == rates_of(MEASURES_2024)
    assert tuple(body["figures"]) == FIGURES
    assert body["figures"] == figures_of(YEAR)
    assert (body["figures"]["issued_fen"], body["figures"]["available_fen"]) == (150_000, POOL_FEN - 150_000)


def test_the_list_filters_by_status(cast, year, as_user):
    client = as_user(cast.admin)
    assert client.post("/api/v1/program-years/", {"year": NEXT}, format="json").status_code == 201
    assert [y["year"] for y in client.get("/api/v1/program-years/?status=draft").json()["results"]] == [NEXT]
    assert [y["year"] for y in client.get("/api/v1/program-years/?status=open").json()["results"]] == [YEAR]
    assert_problem(client.get("/api/v1/program-years/?status=shut"), 400, "validation_error")


def test_an_unknown_year_is_404(cast, year, as_user):
    client = as_user(cast.reviewer)
    assert_problem(client.get("/api/v1/program-years/1999/"), 404, "not_found")
    assert_problem(client.get("/api/v1/program-years/99999999999/"), 404, "not_found")
    assert_problem(as_user(cast.admin).post(f"/api/v1/program-years/{NEXT}/open/"), 404, "not_found")
    assert_problem(
        as_user(cast.approver).post(f"/api/v1/program-years/{NEXT}/cap-overrides/", override_body(cast), format="json"),
        404,
        "not_found",
    )


# --- Preparing and opening ------------------------------------------------------------------------


def test_a_superuser_prepares_a_draft_year_with_the_2024_measures_and_opens_it(cast, as_user):
    client = as_user(cast.admin)

    created = client.post("/api/v1/program-years/", {"year": NEXT}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["year"], body["status"], body["pool_fen"], body["default_cap_fen"], body["grace_days"]) == (
        NEXT,
        "draft",
        25_000_000_000,
        800_000_000,
        0,
    )
    assert body["rates"] == rates_of(MEASURES_2024)
    assert body["figures"] == dict.fromkeys(FIGURES, 0)

    opened = client.post(f"/api/v1/program-years/{NEXT}/open/")
    assert opened.status_code == 200, opened.content
    assert opened.json()["status"] == "open"
    assert opened.json()["figures"]["available_fen"] == 25_000_000_000
    assert opened.json()["figures"] == figures_of(NEXT)
    # Opening again changes nothing.
    again = client.post(f"/api/v1/program-years/{NEXT}/open/", {}, format="json")
    assert (again.status_code, again.json()) == (200, opened.json())


def test_a_year_may_bring_its_own_rates(cast, as_user):
    client = as_user(cast.admin)
    request = {
        "year": NEXT,
        "pool_fen": 5_000_000,
        "default_cap_fen": 1_000_000,
        "grace_days": 30,
        "rates": rates_of(REVISION_2025_06),
    }
    created = client.post("/api/v1/program-years/", request, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["pool_fen"], body["default_cap_fen"], body["grace_days"]) == (5_000_000, 1_000_000, 30)
    assert body["rates"] == rates_of(REVISION_2025_06)
    assert ProgramYear.objects.get(year=NEXT).rule_set.rules == REVISION_2025_06["rules"]


def test_an_existing_year_is_409_and_its_new_rule_set_is_not_kept(cast, year, as_user, db_snapshot):
    client = as_user(cast.admin)
    before, rule_sets = db_snapshot(), RateRuleSet.objects.count()
    new_rates = {"name": "fresh", "ceiling_bp": 2000, "rules": [{"label": "All", "rate_bp": 2000, "when": {}}]}
    assert_problem(
        client.post("/api/v1/program-years/", {"year": YEAR, "rates": new_rates}, format="json"), 409, "invalid_state"
    )
    assert db_snapshot() == before
    assert RateRuleSet.objects.count() == rule_sets


def test_a_closed_year_does_not_open(cast, year, as_user):
    ProgramYear.objects.filter(year=YEAR).update(status=ProgramYear.Status.CLOSED)
    assert_problem(as_user(cast.admin).post(f"/api/v1/program-years/{YEAR}/open/"), 409, "invalid_state")


GOOD_RULE = {"label": "All", "rate_bp": 2000, "when": {}}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"year": "2027"}, "year"),
        ({"year": 1999}, "year"),
        ({"year": 2027.0}, "year"),
        ({"year": None}, "year"),
        ({"pool_fen": 0}, "pool_fen"),
        ({"pool_fen": 1.5}, "pool_fen"),
        ({"pool_fen": "25000000000"}, "pool_fen"),
        ({"pool_fen": True}, "pool_fen"),
        ({"default_cap_fen": -1}, "default_cap_fen"),
        ({"grace_days": 400}, "grace_days"),
        ({"grace_days": -1}, "grace_days"),
        ({"grace_days": 1.5}, "grace_days"),
        ({"status": "open"}, "status"),
        ({"open_applications_at_close": "keep"}, "open_applications_at_close"),
        ({"grant_validity": "forever"}, "grant_validity"),
        ({"grant_validity": "months"}, "grant_validity_months"),
        ({"grant_validity": "months", "grant_validity_months": 0}, "grant_validity_months"),
        ({"grant_validity": "months", "grant_validity_months": 37}, "grant_validity_months"),
        ({"grant_validity": "months", "grant_validity_months": "12"}, "grant_validity_months"),
        ({"grant_validity_months": 12}, "grant_validity_months"),
        ({"grant_validity": "year_end", "grant_validity_months": 12}, "grant_validity_months"),
        ({"grant_validity": "months", "grant_validity_months": 12, "grace_days": 5}, "grace_days"),
        ({"figures": {}}, "figures"),
        ({"opened_at": "2027-01-01T00:00:00+08:00"}, "opened_at"),
        ({"rates": {"name": "r", "ceiling_bp": 3000}}, "rates.rules"),
        ({"rates": {"name": "r", "ceiling_bp": 3000, "rules": []}}, "rates.rules"),
        ({"rates": {"name": "r", "ceiling_bp": 0, "rules": [GOOD_RULE]}}, "rates.ceiling_bp"),
        ({"rates": {"name": "r", "ceiling_bp": 30.5, "rules": [GOOD_RULE]}}, "rates.ceiling_bp"),
        ({"rates": {"name": "r", "ceiling_bp": 3000, "rules": [GOOD_RULE], "x": 1}}, "rates.x"),
        (
            {"rates": {"name": "r", "ceiling_bp": 3000, "rules": [{**GOOD_RULE, "rate_bp": 20_000}]}},
            "rates.rules.0.rate_bp",
        ),
        (
            {"rates": {"name": "r", "ceiling_bp": 3000, "rules": [{**GOOD_RULE, "rate_bp": "20"}]}},
            "rates.rules.0.rate_bp",
        ),
        ({"rates": {"name": "r", "ceiling_bp": 3000, "rules": [{"label": "All", "rate_bp": 1}]}}, "rates.rules.0.when"),
        (
            {"rates": {"name": "r", "ceiling_bp": 3000, "rules": [{**GOOD_RULE, "when": {"colour": "red"}}]}},
            "rates.rules.0.when.colour",
        ),
        (
            {"rates": {"name": "r", "ceiling_bp": 3000, "rules": [{**GOOD_RULE, "when": {"purposes": ["mining"]}}]}},
            "rates.rules.0.when.purposes.0",
        ),
        (
            {"rates": {"name": "r", "ceiling_bp": 3000, "rules": [{**GOOD_RULE, "when": {"small_or_medium": "yes"}}]}},
            "rates.rules.0.when.small_or_medium",
        ),
    ],
)
def test_bad_year_input_is_400_and_writes_nothing(changes, field, cast, as_user, db_snapshot):
    client = as_user(cast.admin)
    client.post("/api/v1/program-years/", {"year": NEXT + 1}, format="json")  # measures-2024 now exists.
    before, rule_sets = db_snapshot(), RateRuleSet.objects.count()
    body = assert_problem(
        client.post("/api/v1/program-years/", {"year": NEXT, **changes}, format="json"), 400, "validation_error"
    )
    assert field in body["errors"], body
    assert db_snapshot() == before
    assert RateRuleSet.objects.count() == rule_sets
    assert not ProgramYear.objects.filter(year=NEXT).exists()


def test_a_rule_set_name_taken_by_other_rules_is_409_and_writes_nothing(cast, as_user, db_snapshot):
    # Checked by the service: a name is never reused for other rules. Well formed, but taken: 409.
    client = as_user(cast.admin)
    client.post("/api/v1/program-years/", {"year": NEXT + 1}, format="json")  # measures-2024 now exists.
    before, rule_sets = db_snapshot(), RateRuleSet.objects.count()
    body = assert_problem(
        client.post(
            "/api/v1/program-years/",
            {"year": NEXT, "rates": {"name": "measures-2024", "ceiling_bp": 3000, "rules": [GOOD_RULE]}},
            format="json",
        ),
        409,
        "already_exists",
    )
    assert list(body["errors"]) == ["rates.name"], body
    assert (db_snapshot(), RateRuleSet.objects.count()) == (before, rule_sets)


def test_a_year_may_carry_or_withdraw_and_grant_for_months(cast, as_user):
    client = as_user(cast.admin)
    body = {
        "year": NEXT,
        "open_applications_at_close": "withdraw",
        "grant_validity": "months",
        "grant_validity_months": 12,
    }
    created = client.post("/api/v1/program-years/", body, format="json")
    assert created.status_code == 201, created.content
    answer = created.json()
    assert (answer["open_applications_at_close"], answer["grant_validity"], answer["grant_validity_months"]) == (
        "withdraw",
        "months",
        12,
    )
    assert client.get(f"/api/v1/program-years/{NEXT}/").json() == answer
    stored = ProgramYear.objects.get(year=NEXT)
    assert (stored.open_applications_at_close, stored.grant_validity, stored.grant_validity_months) == (
        "withdraw",
        "months",
        12,
    )


def test_open_refuses_a_body(cast, as_user):
    client = as_user(cast.admin)
    client.post("/api/v1/program-years/", {"year": NEXT}, format="json")
    body = assert_problem(
        client.post(f"/api/v1/program-years/{NEXT}/open/", {"status": "open"}, format="json"), 400, "validation_error"
    )
    assert "status" in body["errors"]
    assert ProgramYear.objects.get(year=NEXT).status == "draft"


# --- Who may ------------------------------------------------------------------------------------


def test_organisation_members_may_not_read_years(cast, year, as_user):
    for user in (cast.member, cast.clerk):
        client = as_user(user)
        assert_problem(client.get("/api/v1/program-years/"), 403, "permission_denied")
        assert_problem(client.get(f"/api/v1/program-years/{YEAR}/"), 403, "permission_denied")
        assert_problem(client.get("/api/v1/program-years/1999/"), 403, "permission_denied")


def test_only_a_superuser_prepares_and_opens_years(cast, year, as_user, db_snapshot):
    before = db_snapshot()
    for user in (cast.reviewer, cast.approver, cast.finance, cast.member, cast.clerk):
        client = as_user(user)
        assert_problem(client.post("/api/v1/program-years/", {"year": NEXT}, format="json"), 403, "permission_denied")
        # The role is refused before the body is read.
        assert_problem(client.post("/api/v1/program-years/", {"year": "x"}, format="json"), 403, "permission_denied")
    assert db_snapshot() == before
    as_user(cast.admin).post("/api/v1/program-years/", {"year": NEXT}, format="json")
    before = db_snapshot()
    assert_problem(as_user(cast.approver).post(f"/api/v1/program-years/{NEXT}/open/"), 403, "permission_denied")
    assert db_snapshot() == before


def test_no_credentials_is_401(cast, year, anonymous):
    assert_problem(anonymous.get("/api/v1/program-years/"), 401, "not_authenticated")
    assert_problem(anonymous.get(f"/api/v1/program-years/{YEAR}/"), 401, "not_authenticated")
    assert_problem(anonymous.post("/api/v1/program-years/", {"year": NEXT}, format="json"), 401, "not_authenticated")
    assert_problem(anonymous.post(f"/api/v1/program-years/{YEAR}/open/"), 401, "not_authenticated")
    assert_problem(
        anonymous.post(f"/api/v1/program-years/{YEAR}/cap-overrides/", override_body(cast), format="json"),
        401,
        "not_authenticated",
    )
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert_problem(anonymous.get("/api/v1/program-years/"), 401, "authentication_failed")


# --- Cap overrides ------------------------------------------------------------------------------


def test_a_relaxed_cap_asked_by_a_reviewer_is_granted_when_an_approver_approves(
    cast, year, foundation_model_enterprise, as_user, db_snapshot
):
    # when: a reviewer asks (the requester is whoever signs the request, never a field)
    asked = as_user(cast.reviewer).post(
        f"/api/v1/program-years/{YEAR}/cap-overrides/", override_body(cast), format="json"
    )

    # then: a pending request, and the cap unchanged
    assert asked.status_code == 202, asked.content
    request = asked.json()
    assert request == {
        "id": request["id"],
        "action": "cap_override",
        # The target names the program year by its id; the payload by program and year.
        "target": f"cap:{cast.enterprise.pk}:{ProgramYear.objects.get(program_id='hangzhou-compute', year=YEAR).pk}",
        "payload": {"program": "hangzhou-compute", "year": YEAR, "enterprise": cast.enterprise.pk, "cap_fen": 900_000},
        "status": "pending",
        "requested_by": cast.reviewer.pk,
        "requested_at": request["requested_at"],
        "decided_by": None,
        "decided_at": None,
        "reason": "Trains a registered multimodal foundation model.",
        "decision_reason": "",
        "evidence": [],
    }
    assert request["requested_at"].endswith("+08:00")
    assert enterprise_cap_fen(enterprise_id=cast.enterprise.pk, year=year) == CAP_FEN
    assert not CapOverride.objects.exists()

    # when: an approver approves
    approved(asked, as_user(cast.approver), reason="Board decision 2026-14 seen.")

    # then: the override is recorded with both people, and the ledger took the relaxed cap
    override = CapOverride.objects.get()
    assert (override.cap_fen, override.previous_cap_fen) == (900_000, CAP_FEN)
    assert (override.requested_by, override.granted_by) == (cast.reviewer, cast.approver)
    assert enterprise_cap_fen(enterprise_id=cast.enterprise.pk, year=year) == 900_000
    assert grant_for(cast, fee_fen=2_000_000).amount_fen == 600_000


def test_requested_by_is_not_a_field_any_more(cast, year, foundation_model_enterprise, as_user, db_snapshot):
    before = db_snapshot()
    body = assert_problem(
        as_user(cast.approver).post(
            f"/api/v1/program-years/{YEAR}/cap-overrides/",
            override_body(cast, requested_by=cast.reviewer.pk),
            format="json",
        ),
        400,
        "validation_error",
    )
    assert "requested_by" in body["errors"]
    assert db_snapshot() == before


def test_the_requester_may_not_approve_their_own_cap_override(
    cast, year, foundation_model_enterprise, as_user, db_snapshot
):
    approver = as_user(cast.approver)
    asked = approver.post(f"/api/v1/program-years/{YEAR}/cap-overrides/", override_body(cast), format="json")
    assert asked.status_code == 202, asked.content
    before = db_snapshot()
    assert_problem(
        approver.post(f"/api/v1/approval-requests/{asked.json()['id']}/approve/", {}, format="json"), 403, "four_eyes"
    )
    assert db_snapshot() == before
    assert enterprise_cap_fen(enterprise_id=cast.enterprise.pk, year=year) == CAP_FEN


def test_only_a_reviewer_or_approver_asks_for_cap_overrides(
    cast, year, foundation_model_enterprise, as_user, db_snapshot
):
    before = db_snapshot()
    for user in (cast.finance, cast.member, cast.clerk):
        response = as_user(user).post(
            f"/api/v1/program-years/{YEAR}/cap-overrides/", override_body(cast), format="json"
        )
        assert_problem(response, 403, "permission_denied")
    assert db_snapshot() == before


def test_only_an_approver_decides_a_cap_override(cast, year, foundation_model_enterprise, as_user, db_snapshot):
    asked = as_user(cast.approver).post(
        f"/api/v1/program-years/{YEAR}/cap-overrides/", override_body(cast), format="json"
    )
    before = db_snapshot()
    for user in (cast.reviewer, cast.finance):
        response = as_user(user).post(f"/api/v1/approval-requests/{asked.json()['id']}/approve/", {}, format="json")
        assert_problem(response, 403, "permission_denied")
    for user in (cast.member, cast.clerk):
        response = as_user(user).post(f"/api/v1/approval-requests/{asked.json()['id']}/approve/", {}, format="json")
        assert_problem(response, 404, "not_found")
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cap_fen": "900000"}, "cap_fen"),
        ({"cap_fen": 900_000.0}, "cap_fen"),
        ({"cap_fen": 1.5}, "cap_fen"),
        ({"cap_fen": 0}, "cap_fen"),
        ({"cap_fen": None}, "cap_fen"),
        ({"reason": 7}, "reason"),
        ({"enterprise": "1"}, "enterprise"),
        ({"requested_by": 1}, "requested_by"),
        ({"previous_cap_fen": 1}, "previous_cap_fen"),
        ({"granted_by": 1}, "granted_by"),
        ({"year": YEAR}, "year"),
        # Checked against the database and by the service.
        ({"cap_fen": CAP_FEN}, "cap_fen"),
        ({"cap_fen": 10**13}, "cap_fen"),  # Past the year's relaxed-cap ceiling (20 million yuan).
        ({"reason": "   "}, "reason"),
    ],
)
def test_bad_cap_override_input_is_400_and_writes_nothing(
    changes, field, cast, year, foundation_model_enterprise, as_user, db_snapshot
):
    before = db_snapshot()
    body = assert_problem(
        as_user(cast.approver).post(
            f"/api/v1/program-years/{YEAR}/cap-overrides/", override_body(cast, **changes), format="json"
        ),
        400,
        "validation_error",
    )
    assert field in body["errors"], body
    assert db_snapshot() == before


def test_missing_cap_override_fields_are_named(cast, year, as_user):
    body = assert_problem(
        as_user(cast.approver).post(f"/api/v1/program-years/{YEAR}/cap-overrides/", {}, format="json"),
        400,
        "validation_error",
    )
    assert set(body["errors"]) == {"enterprise", "cap_fen", "reason"}


def test_only_a_verified_enterprise_flagged_as_a_foundation_model_developer(cast, year, as_user, db_snapshot):
    client = as_user(cast.approver)
    before = db_snapshot()
    assert_problem(  # cast.enterprise does not develop a foundation model.
        client.post(f"/api/v1/program-years/{YEAR}/cap-overrides/", override_body(cast), format="json"),
        403,
        "not_eligible",
    )
    pending = EnterpriseFactory(
        foundation_model_developer=True, foundation_model_developer_verified=True, status="pending"
    )
    # Declared, but staff never confirmed it: counts as false.
    unconfirmed = EnterpriseFactory(foundation_model_developer=True, status="verified")
    before = db_snapshot()
    for enterprise in (pending, unconfirmed):
        assert_problem(
            client.post(
                f"/api/v1/program-years/{YEAR}/cap-overrides/",
                override_body(cast, enterprise=enterprise.pk),
                format="json",
            ),
            403,
            "not_eligible",
        )
    assert db_snapshot() == before


def test_a_draft_year_takes_no_cap_override(cast, as_user, db_snapshot):
    as_user(cast.admin).post("/api/v1/program-years/", {"year": NEXT}, format="json")
    enterprise = EnterpriseFactory(
        foundation_model_developer=True, foundation_model_developer_verified=True, status="verified"
    )
    before = db_snapshot()
    assert_problem(
        as_user(cast.approver).post(
            f"/api/v1/program-years/{NEXT}/cap-overrides/",
            override_body(cast, enterprise=enterprise.pk),
            format="json",
        ),
        409,
        "invalid_state",
    )
    assert db_snapshot() == before


def test_cap_overrides_honour_an_idempotency_key(cast, year, foundation_model_enterprise, as_user):
    client = as_user(cast.approver)
    url = f"/api/v1/program-years/{YEAR}/cap-overrides/"
    first = client.post(url, override_body(cast), format="json", HTTP_IDEMPOTENCY_KEY="cap-1")
    again = client.post(url, override_body(cast), format="json", HTTP_IDEMPOTENCY_KEY="cap-1")
    assert first.status_code == again.status_code == 202, first.content
    assert first.json() == again.json() and again["Idempotent-Replayed"] == "true"
    assert ApprovalRequest.objects.count() == 1
    assert_problem(
        client.post(url, override_body(cast, cap_fen=950_000), format="json", HTTP_IDEMPOTENCY_KEY="cap-1"),
        409,
        "idempotency_key_reused",
    )
    assert ApprovalRequest.objects.count() == 1


def test_a_cap_override_for_an_enterprise_that_does_not_exist_is_404_naming_the_field(cast, year, as_user, db_snapshot):
    # Found from outside: it was 400 `validation_error`, where docs/api.md says a well-formed id that
    # names nothing is 404 `not_found` with the field named.
    before = db_snapshot()
    body = assert_problem(
        as_user(cast.reviewer).post(
            f"/api/v1/program-years/{YEAR}/cap-overrides/", override_body(cast, enterprise=987_654), format="json"
        ),
        404,
        "not_found",
    )
    assert "enterprise" in body["errors"]
    assert db_snapshot() == before
