"""/api/v1/enterprises/, /providers/ and /users/: registration, scoping, roles and bad input."""

import pytest
from rest_framework.test import APIClient

from accounts.models import Enterprise, Provider, User
from tests.api.conftest import PASSWORD, assert_problem, signed_in
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory, valid_uscc

pytestmark = pytest.mark.django_db

FACILITIES = [{"compute_source": "domestic", "description": "Ascend 910B cluster", "listed_from": "2024-01-01"}]


def wrong_check_character(uscc: str) -> str:
    return uscc[:-1] + ("1" if uscc[-1] != "1" else "2")


# --- Registration ---------------------------------------------------------------------------------


def register_body(**changes):
    enterprise = {
        "name": "Hangzhou Model Works",
        "uscc": valid_uscc(),
        "has_registered_model": True,
        "model_filing_number": "Zhejiang-HZ-202401",
        "foundation_model_developer": False,
        **changes.pop("enterprise", {}),
    }
    return {
        "username": "founder",
        "password": PASSWORD,
        "email": "founder@example.com",
        "enterprise": enterprise,
        **changes,
    }


def test_registration_creates_a_pending_enterprise_and_its_first_member(db):
    body = register_body()

    response = APIClient().post("/api/v1/enterprises/register/", body, format="json")

    assert response.status_code == 201, response.content
    answer = response.json()
    assert set(answer) == {"user", "enterprise"}
    enterprise = Enterprise.objects.get()
    user = User.objects.get(username="founder")
    assert answer["enterprise"]["id"] == enterprise.pk and answer["user"]["id"] == user.pk
    expected = {key: body["enterprise"][key] for key in body["enterprise"]}
    assert {key: answer["enterprise"][key] for key in expected} == expected
    assert answer["enterprise"]["status"] == "pending" == enterprise.status
    assert (answer["user"]["username"], answer["user"]["email"], answer["user"]["enterprise"]) == (
        "founder",
        "founder@example.com",
        enterprise.pk,
    )
    assert answer["user"]["roles"] == [] and answer["user"]["provider"] is None
    assert "password" not in answer["user"]
    # The new member signs in and sees its own, pending enterprise.
    own = signed_in(user).get("/api/v1/enterprises/").json()["results"]
    assert [(e["id"], e["status"]) for e in own] == [(enterprise.pk, "pending")]


def test_registration_normalises_the_code_and_drops_a_stray_filing_number(db):
    uscc = valid_uscc()
    body = register_body(enterprise={"uscc": f" {uscc.lower()} ", "has_registered_model": False})
    body["enterprise"]["model_filing_number"] = "should go"
    response = APIClient().post("/api/v1/enterprises/register/", body, format="json")
    assert response.status_code == 201, response.content
    enterprise = Enterprise.objects.get()
    assert (enterprise.uscc, enterprise.model_filing_number) == (uscc, "")
    assert response.json()["enterprise"]["model_filing_number"] == ""


def test_the_optional_fields_may_be_left_out(db):
    body = {
        "username": "founder",
        "password": PASSWORD,
        "enterprise": {"name": "Small AI", "uscc": valid_uscc()},
    }
    response = APIClient().post("/api/v1/enterprises/register/", body, format="json")
    assert response.status_code == 201, response.content
    answer = response.json()["enterprise"]
    assert (answer["has_registered_model"], answer["model_filing_number"], answer["foundation_model_developer"]) == (
        False,
        "",
        False,
    )


def _taken(**fields):
    """A body that clashes with an organisation or user made before the request."""

    def body():
        if fields.get("uscc") == "enterprise":
            return register_body(enterprise={"uscc": EnterpriseFactory().uscc})
        if fields.get("uscc") == "provider":
            return register_body(enterprise={"uscc": ProviderFactory().uscc})
        return register_body(username=UserFactory().username)

    return body


@pytest.mark.parametrize(
    ("make_body", "field"),
    [
        (lambda: register_body(enterprise={"uscc": wrong_check_character(valid_uscc())}), "enterprise.uscc"),
        (lambda: register_body(enterprise={"uscc": valid_uscc()[:17]}), "enterprise.uscc"),
        (lambda: register_body(enterprise={"uscc": valid_uscc() + "1"}), "enterprise.uscc"),
        (lambda: register_body(enterprise={"uscc": "91330100MA2XXXXXXO"}), "enterprise.uscc"),
        (lambda: register_body(enterprise={"uscc": 913301001234567890}), "enterprise.uscc"),
        (lambda: register_body(enterprise={"model_filing_number": ""}), "enterprise.model_filing_number"),
        (lambda: register_body(enterprise={"model_filing_number": "   "}), "enterprise.model_filing_number"),
        (lambda: register_body(enterprise={"has_registered_model": "yes"}), "enterprise.has_registered_model"),
        (lambda: register_body(enterprise={"name": ""}), "enterprise.name"),
        (lambda: register_body(enterprise={"name": "x" * 201}), "enterprise.name"),
        (lambda: register_body(enterprise={"status": "verified"}), "enterprise.status"),
        (lambda: register_body(enterprise={"id": 1}), "enterprise.id"),
        (lambda: register_body(is_superuser=True), "is_superuser"),
        (lambda: register_body(roles=["approver"]), "roles"),
        (lambda: register_body(provider=1), "provider"),
        (lambda: {k: v for k, v in register_body().items() if k != "enterprise"}, "enterprise"),
        (lambda: {**register_body(), "enterprise": None}, "enterprise"),
        (lambda: {**register_body(), "enterprise": "Acme"}, "enterprise.non_field_errors"),
        (lambda: register_body(username=""), "username"),
        (lambda: register_body(username=7), "username"),
        (lambda: register_body(password="123"), "password"),
        (lambda: register_body(password="founder1"), "password"),
        (lambda: register_body(email="not an address"), "email"),
    ],
)
def test_bad_registrations_are_400_and_write_nothing(make_body, field, db, db_snapshot):
    body = make_body()
    before = db_snapshot()

    response = APIClient().post("/api/v1/enterprises/register/", body, format="json")

    problem = assert_problem(response, 400, "validation_error")
    assert field in problem["errors"], problem
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("make_body", "field"),
    [
        (_taken(username=True), "username"),
        (_taken(uscc="enterprise"), "enterprise.uscc"),
        (_taken(uscc="provider"), "enterprise.uscc"),
    ],
)
def test_a_registration_whose_name_or_code_is_taken_is_409_and_writes_nothing(make_body, field, db, db_snapshot):
    # Well formed (the schema allows it), but in conflict with what exists.
    body = make_body()
    before = db_snapshot()

    response = APIClient().post("/api/v1/enterprises/register/", body, format="json")

    problem = assert_problem(response, 409, "already_exists")
    assert list(problem["errors"]) == [field], problem
    assert db_snapshot() == before


def test_a_registration_body_that_is_not_an_object_is_400(db, db_snapshot):
    before = db_snapshot()
    assert_problem(APIClient().post("/api/v1/enterprises/register/", [], format="json"), 400, "validation_error")
    assert db_snapshot() == before


# --- Enterprises: scope ---------------------------------------------------------------------------


def test_staff_see_every_enterprise(cast):
    pending = EnterpriseFactory(status=Enterprise.Status.PENDING)
    for staff in (cast.reviewer, cast.approver, cast.finance, cast.admin):
        listed = signed_in(staff).get("/api/v1/enterprises/")
        assert listed.status_code == 200
        assert [e["id"] for e in listed.json()["results"]] == [cast.enterprise.pk, pending.pk]
    shape = signed_in(cast.reviewer).get(f"/api/v1/enterprises/{pending.pk}/").json()
    assert {"id", "name", "uscc", "status", "has_registered_model", "model_filing_number"} <= set(shape)
    assert "foundation_model_developer" in shape and shape["status"] == "pending"
    filtered = signed_in(cast.reviewer).get("/api/v1/enterprises/?status=pending").json()["results"]
    assert [e["id"] for e in filtered] == [pending.pk]


def test_a_member_sees_only_its_own_enterprise(cast):
    other = EnterpriseFactory()
    member = signed_in(cast.member)
    assert [e["id"] for e in member.get("/api/v1/enterprises/").json()["results"]] == [cast.enterprise.pk]
    assert member.get(f"/api/v1/enterprises/{cast.enterprise.pk}/").status_code == 200
    assert_problem(member.get(f"/api/v1/enterprises/{other.pk}/"), 404, "not_found")
    assert_problem(member.get("/api/v1/enterprises/999999/"), 404, "not_found")


def test_a_provider_member_sees_no_enterprise(cast):
    clerk = signed_in(cast.clerk)
    assert clerk.get("/api/v1/enterprises/").json()["results"] == []
    assert_problem(clerk.get(f"/api/v1/enterprises/{cast.enterprise.pk}/"), 404, "not_found")


def test_enterprises_need_credentials(cast):
    assert_problem(APIClient().get("/api/v1/enterprises/"), 401, "not_authenticated")
    assert_problem(APIClient().get(f"/api/v1/enterprises/{cast.enterprise.pk}/"), 401, "not_authenticated")


# --- Enterprises: verify and suspend ----------------------------------------------------------------


def test_a_reviewer_verifies_suspends_and_reinstates(cast):
    pending = EnterpriseFactory(status=Enterprise.Status.PENDING)
    reviewer = signed_in(cast.reviewer)

    verified = reviewer.post(f"/api/v1/enterprises/{pending.pk}/verify/")

    assert verified.status_code == 200, verified.content
    assert (verified.json()["id"], verified.json()["status"]) == (pending.pk, "verified")
    pending.refresh_from_db()
    assert pending.status == "verified" and pending.verified_at is not None
    suspended = reviewer.post(f"/api/v1/enterprises/{pending.pk}/suspend/")
    assert (suspended.status_code, suspended.json()["status"]) == (200, "suspended")
    again = reviewer.post(f"/api/v1/enterprises/{pending.pk}/suspend/")
    assert (again.status_code, again.json()["status"]) == (200, "suspended")
    reinstated = reviewer.post(f"/api/v1/enterprises/{pending.pk}/verify/")
    assert (reinstated.status_code, reinstated.json()["status"]) == (200, "verified")
    assert signed_in(cast.admin).post(f"/api/v1/enterprises/{pending.pk}/suspend/").json()["status"] == "suspended"


@pytest.mark.parametrize("action", ["verify", "suspend"])
def test_only_a_reviewer_changes_an_enterprises_status(action, cast, db_snapshot):
    pending = EnterpriseFactory(status=Enterprise.Status.PENDING)
    pending_member = UserFactory(enterprise=pending)
    before = db_snapshot()

    for staff in (cast.approver, cast.finance):
        assert_problem(signed_in(staff).post(f"/api/v1/enterprises/{pending.pk}/{action}/"), 403, "permission_denied")
    assert_problem(
        signed_in(pending_member).post(f"/api/v1/enterprises/{pending.pk}/{action}/"), 403, "permission_denied"
    )
    assert_problem(signed_in(cast.member).post(f"/api/v1/enterprises/{pending.pk}/{action}/"), 404, "not_found")
    assert_problem(signed_in(cast.clerk).post(f"/api/v1/enterprises/{pending.pk}/{action}/"), 404, "not_found")
    assert_problem(APIClient().post(f"/api/v1/enterprises/{pending.pk}/{action}/"), 401, "not_authenticated")
    assert_problem(signed_in(cast.reviewer).post(f"/api/v1/enterprises/999999/{action}/"), 404, "not_found")

    assert db_snapshot() == before


# --- Providers ------------------------------------------------------------------------------------


def test_any_signed_in_user_sees_the_active_providers(cast):
    suspended = ProviderFactory(status=Provider.Status.SUSPENDED)
    for user in (cast.member, UserFactory(provider=ProviderFactory(status=Provider.Status.SUSPENDED))):
        listed = signed_in(user).get("/api/v1/providers/")
        assert listed.status_code == 200
        ids = [p["id"] for p in listed.json()["results"]]
        assert cast.provider.pk in ids and suspended.pk not in ids
        assert_problem(signed_in(user).get(f"/api/v1/providers/{suspended.pk}/"), 404, "not_found")
    shape = signed_in(cast.member).get(f"/api/v1/providers/{cast.provider.pk}/").json()
    assert set(shape) == {"id", "name", "uscc", "listing", "status", "facilities"}
    assert_problem(APIClient().get("/api/v1/providers/"), 401, "not_authenticated")


def test_a_provider_member_sees_its_own_provider_even_when_suspended(cast):
    cast.provider.status = Provider.Status.SUSPENDED
    cast.provider.save()
    clerk = signed_in(cast.clerk)
    assert [p["id"] for p in clerk.get("/api/v1/providers/").json()["results"]] == [cast.provider.pk]
    assert clerk.get(f"/api/v1/providers/{cast.provider.pk}/").json()["status"] == "suspended"


def test_staff_see_suspended_providers_too(cast):
    suspended = ProviderFactory(status=Provider.Status.SUSPENDED)
    listed = signed_in(cast.reviewer).get("/api/v1/providers/").json()["results"]
    assert [p["id"] for p in listed] == [cast.provider.pk, suspended.pk]
    filtered = signed_in(cast.reviewer).get("/api/v1/providers/?status=suspended").json()["results"]
    assert [p["id"] for p in filtered] == [suspended.pk]


def test_a_superuser_lists_a_provider(cast):
    uscc = valid_uscc()
    body = {"name": "Hangzhou Compute Center", "uscc": uscc, "listing": "matched_partner", "facilities": FACILITIES}

    response = signed_in(cast.admin).post("/api/v1/providers/", body, format="json")

    assert response.status_code == 201, response.content
    provider = Provider.objects.get(uscc=uscc)
    facilities = [{**facility, "listed_until": None} for facility in FACILITIES]
    assert response.json() == {"id": provider.pk, **body, "status": "active", "facilities": facilities}
    assert provider.pk in [p["id"] for p in signed_in(cast.member).get("/api/v1/providers/").json()["results"]]


def test_only_a_superuser_lists_a_provider(cast, db_snapshot):
    body = {
        "name": "Hangzhou Compute Center",
        "uscc": valid_uscc(),
        "listing": "planning_layout",
        "facilities": FACILITIES,
    }
    before = db_snapshot()
    for user in (cast.reviewer, cast.approver, cast.member, cast.clerk):
        assert_problem(signed_in(user).post("/api/v1/providers/", body, format="json"), 403, "permission_denied")
    assert_problem(APIClient().post("/api/v1/providers/", body, format="json"), 401, "not_authenticated")
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"listing": "favourite"}, "listing"),
        ({"listing": None}, "listing"),
        ({"listing": ""}, "listing"),
        ({"uscc": "not a code"}, "uscc"),
        ({"uscc": wrong_check_character(valid_uscc())}, "uscc"),
        ({"name": ""}, "name"),
        ({"name": 12}, "name"),
        ({"status": "suspended"}, "status"),
        ({"id": 5}, "id"),
    ],
)
def test_a_bad_provider_is_400_and_writes_nothing(changes, field, cast, db_snapshot):
    body = {
        "name": "Hangzhou Compute Center",
        "uscc": valid_uscc(),
        "listing": "planning_layout",
        "facilities": FACILITIES,
        **changes,
    }
    before = db_snapshot()
    problem = assert_problem(
        signed_in(cast.admin).post("/api/v1/providers/", body, format="json"), 400, "validation_error"
    )
    assert field in problem["errors"], problem
    assert db_snapshot() == before


def test_a_providers_code_is_unique_across_organisations(cast, db_snapshot):
    admin = signed_in(cast.admin)
    before = db_snapshot()
    for uscc in (cast.provider.uscc, cast.enterprise.uscc):
        body = {"name": "Copy", "uscc": uscc, "listing": "planning_layout", "facilities": FACILITIES}
        problem = assert_problem(admin.post("/api/v1/providers/", body, format="json"), 409, "already_exists")
        assert list(problem["errors"]) == ["uscc"]
    assert db_snapshot() == before


def test_a_superuser_asks_for_a_providers_suspension_and_an_approver_decides(cast, db_snapshot):
    path = f"/api/v1/providers/{cast.provider.pk}/suspend/"
    body = {"reason": "Left the planning layout."}
    other_clerk = UserFactory(provider=ProviderFactory())
    before = db_snapshot()
    assert_problem(signed_in(cast.reviewer).post(path, body, format="json"), 403, "permission_denied")
    assert_problem(signed_in(cast.clerk).post(path, body, format="json"), 403, "permission_denied")
    assert_problem(signed_in(other_clerk).post(path, body, format="json"), 403, "permission_denied")
    assert_problem(APIClient().post(path, body, format="json"), 401, "not_authenticated")
    assert db_snapshot() == before

    response = signed_in(cast.admin).post(path, body, format="json")

    assert response.status_code == 202, response.content
    assert (response.json()["action"], response.json()["status"]) == ("provider_change", "pending")
    cast.provider.refresh_from_db()
    assert cast.provider.status == "active"  # Not until someone else approves.
    approved = signed_in(cast.approver).post(f"/api/v1/approval-requests/{response.json()['id']}/approve/")
    assert approved.status_code == 200, approved.content
    cast.provider.refresh_from_db()
    assert cast.provider.status == "suspended"
    # Now out of the listing: outside staff no longer find it, even to try again.
    assert_problem(signed_in(cast.member).post(path, body, format="json"), 404, "not_found")
    assert_problem(
        signed_in(cast.admin).post("/api/v1/providers/999999/suspend/", body, format="json"), 404, "not_found"
    )


# --- Users ----------------------------------------------------------------------------------------


def test_a_superuser_creates_a_staff_user_whose_roles_a_second_superuser_grants(cast):
    body = {
        "username": "new-reviewer",
        "password": PASSWORD,
        "email": "r@example.com",
        "roles": ["reviewer", "finance"],
    }

    response = signed_in(cast.admin).post("/api/v1/users/", body, format="json")

    assert response.status_code == 201, response.content
    answer = response.json()
    user = User.objects.get(username="new-reviewer")
    assert (answer["id"], answer["username"], answer["email"]) == (user.pk, "new-reviewer", "r@example.com")
    assert (answer["roles"], answer["enterprise"], answer["provider"]) == ([], None, None)
    assert "password" not in answer
    assert signed_in(user).get("/api/v1/me/").json()["roles"] == []
    # Found from outside: one superuser made a second account, gave it a role and approved their own
    # requests with it. Now the roles wait for a different superuser.
    request_id = answer["roles_request"]
    approve = f"/api/v1/approval-requests/{request_id}/approve/"
    assert_problem(signed_in(cast.admin).post(approve, {}, format="json"), 403, "four_eyes")
    assert_problem(signed_in(cast.approver).post(approve, {}, format="json"), 403, "permission_denied")
    assert signed_in(UserFactory(is_superuser=True)).post(approve, {}, format="json").status_code == 200
    assert signed_in(user).get("/api/v1/me/").json()["roles"] == ["reviewer", "finance"]


@pytest.mark.parametrize("organisation", ["enterprise", "provider"])
def test_a_superuser_creates_a_member(organisation, cast):
    org = getattr(cast, organisation)
    body = {"username": "new-member", "password": PASSWORD, organisation: org.pk}

    response = signed_in(cast.admin).post("/api/v1/users/", body, format="json")

    assert response.status_code == 201, response.content
    assert (response.json()[organisation], response.json()["roles"], response.json()["roles_request"]) == (
        org.pk,
        [],
        None,
    )
    user = User.objects.get(username="new-member")
    assert getattr(user, f"{organisation}_id") == org.pk
    assert signed_in(user).get("/api/v1/me/").json()[organisation] == org.pk


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"roles": ["overlord"]}, "roles.0"),
        ({"roles": ["reviewer", "overlord"]}, "roles.1"),
        ({"roles": "reviewer"}, "roles"),
        ({"roles": ["reviewer"], "enterprise": "cast.enterprise"}, "roles"),
        ({"roles": ["approver"], "provider": "cast.provider"}, "roles"),
        ({"enterprise": "cast.enterprise", "provider": "cast.provider"}, "enterprise"),
        ({"enterprise": "1"}, "enterprise"),
        ({"username": ""}, "username"),
        ({"password": "12345678"}, "password"),
        ({"password": None}, "password"),
        ({"is_superuser": True}, "is_superuser"),
    ],
)
def test_a_bad_user_is_400_and_writes_nothing(changes, field, cast, db_snapshot):
    def resolve(value):
        if value == "cast.member":
            return cast.member.username
        if isinstance(value, str) and value.startswith("cast."):
            return getattr(cast, value.removeprefix("cast.")).pk
        return value

    body = {"username": "new-user", "password": PASSWORD, **{k: resolve(v) for k, v in changes.items()}}
    admin = signed_in(cast.admin)
    before = db_snapshot()

    problem = assert_problem(admin.post("/api/v1/users/", body, format="json"), 400, "validation_error")

    assert field in problem["errors"], problem
    assert db_snapshot() == before


def test_a_taken_username_is_409_and_writes_nothing(cast, db_snapshot):
    body = {"username": cast.member.username, "password": PASSWORD}
    admin = signed_in(cast.admin)
    before = db_snapshot()

    problem = assert_problem(admin.post("/api/v1/users/", body, format="json"), 409, "already_exists")

    assert list(problem["errors"]) == ["username"], problem
    assert db_snapshot() == before


def test_an_unknown_organisation_is_404(cast, db_snapshot):
    admin = signed_in(cast.admin)
    before = db_snapshot()
    for organisation in ("enterprise", "provider"):
        body = {"username": "new-user", "password": PASSWORD, organisation: 999999}
        assert_problem(admin.post("/api/v1/users/", body, format="json"), 404, "not_found")
    assert db_snapshot() == before


def test_only_a_superuser_creates_users(cast, db_snapshot):
    body = {"username": "new-user", "password": PASSWORD, "roles": ["approver"]}
    before = db_snapshot()
    for user in (cast.reviewer, cast.approver, cast.finance, cast.member, cast.clerk):
        assert_problem(signed_in(user).post("/api/v1/users/", body, format="json"), 403, "permission_denied")
    assert_problem(APIClient().post("/api/v1/users/", body, format="json"), 401, "not_authenticated")
    assert db_snapshot() == before
