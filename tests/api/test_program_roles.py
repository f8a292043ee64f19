"""Roles limited to programs: the scoping matrix of a city-only and a district-only staff member.

Two programs run side by side: the city's (`hangzhou-compute`, provider deduction) and a district's
(`xihu-compute`, enterprise reimbursement, so its coupons are claimed). Each has applications,
grants, approval requests; the city's grants have redemptions, the district's claims. A staff member
limited to one program sees and acts on only that program's objects: every object of the other
program is 404 (as for any out-of-scope id), every write on it is refused the same way and changes
nothing, every list leaves it out. Staff with no limit see both.
"""

from dataclasses import dataclass
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from accounts.models import Role, User
from accounts.services import user_programs_set
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve
from config.errors import InvalidState, NotFound, PermissionDenied
from coupons.models import DEFAULT_PROGRAM, Alert, Application, Claim, Grant, Program
from coupons.services.alerts import _recipients
from coupons.services.applications import application_approve, application_review
from coupons.services.grants import grant_revoke_request
from coupons.services.redemptions import redemption_create
from coupons.services.settlements import settlement_create
from coupons.services.years import program_year_create, program_year_open
from tests.api.conftest import assert_problem, signed_in
from tests.claims import REIMBURSEMENT, claim
from tests.coupons.conftest import IN_YEAR, YEAR, Cast, grant_for, make_cast, open_year, submit, to_reviewed
from tests.evidence import checked, contract, invoice
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CITY = DEFAULT_PROGRAM
DISTRICT = "xihu-compute"


@dataclass
class World:
    cast: Cast
    ids: dict[str, dict[str, int]]  # program -> kind -> id
    city_staff: User
    district_staff: User


def district_program() -> Program:
    return Program.objects.create(
        slug=DISTRICT,
        name="西湖区算力券",
        name_en="Xihu district computing-power coupons",
        authority="Xihu District Science and Technology Bureau",
        level=Program.Level.DISTRICT,
        redemption_mode=REIMBURSEMENT,
    )


def limited_staff(program: str) -> User:
    """A reviewer and approver whose roles are limited to one program."""
    return UserFactory(roles=[Role.REVIEWER, Role.APPROVER], programs=[program])


@pytest.fixture
def world() -> World:
    cast = make_cast()
    open_year(cast.admin)
    district_program()
    program_year_create(year=YEAR, actor=cast.admin, program=DISTRICT, pool_fen=1_000_000, default_cap_fen=400_000)
    program_year_open(year=YEAR, actor=cast.admin, program=DISTRICT)

    city_grant = grant_for(cast)
    held = redemption_create(
        grant=city_grant, bill_number="B1", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )
    city_application = submit(cast)  # submitted: awaiting the provider's confirmation
    city_reviewed = to_reviewed(cast, submit(cast, fee_fen=200_000))  # within what is left of the cap
    city_request = grant_revoke_request(grant=city_grant, requester=cast.reviewer, reason="Contract cancelled")

    district_reviewed = to_reviewed(cast, submit(cast, program=DISTRICT))
    district_grant_application = to_reviewed(cast, submit(cast, program=DISTRICT, **contract(cast.member, YEAR)))
    application_approve(application=district_grant_application, actor=cast.approver)
    district_grant = Grant.objects.get(application=district_grant_application)
    district_claim = claim(cast, district_grant, 10_000)
    district_application = submit(cast, program=DISTRICT)
    district_request = grant_revoke_request(grant=district_grant, requester=cast.reviewer, reason="Contract cancelled")

    ids = {
        CITY: {
            "application": city_application.pk,
            "reviewed": city_reviewed.pk,
            "grant": city_grant.pk,
            "redemption": held.pk,
            "approval_request": city_request.pk,
        },
        DISTRICT: {
            "application": district_application.pk,
            "reviewed": district_reviewed.pk,
            "grant": district_grant.pk,
            "claim": district_claim.pk,
            "approval_request": district_request.pk,
        },
    }
    return World(cast=cast, ids=ids, city_staff=limited_staff(CITY), district_staff=limited_staff(DISTRICT))


READS = {
    "application": "/api/v1/applications/{}/",
    "reviewed": "/api/v1/applications/{}/",
    "grant": "/api/v1/grants/{}/",
    "redemption": "/api/v1/redemptions/{}/",
    "claim": "/api/v1/claims/{}/",
    "approval_request": "/api/v1/approval-requests/{}/",
}
WRITES = [
    ("reviewed", "/api/v1/applications/{}/approve/", {}),
    ("reviewed", "/api/v1/applications/{}/reject/", {"reason": "Out of region"}),
    ("grant", "/api/v1/grants/{}/revoke/", {"reason": "Contract cancelled"}),
    ("redemption", "/api/v1/redemptions/{}/reverse/", {"reason": "Billed twice"}),
    ("claim", "/api/v1/claims/{}/approve/", {}),
    ("claim", "/api/v1/claims/{}/reject/", {"reason": "The invoice names another buyer."}),
    ("approval_request", "/api/v1/approval-requests/{}/approve/", {}),
    ("approval_request", "/api/v1/approval-requests/{}/reject/", {"reason": "No"}),
]
LISTS = [
    ("/api/v1/applications/", ("application", "reviewed")),
    ("/api/v1/grants/", ("grant",)),
    ("/api/v1/redemptions/", ("redemption",)),
    ("/api/v1/claims/", ("claim",)),
    ("/api/v1/approval-requests/?status=pending", ("approval_request",)),
]
OTHER = {CITY: DISTRICT, DISTRICT: CITY}


def _callers(world: World) -> dict[str, tuple[str, Any]]:
    return {CITY: (CITY, signed_in(world.city_staff)), DISTRICT: (DISTRICT, signed_in(world.district_staff))}


def _ids_in(response: Any) -> set[int]:
    assert response.status_code == 200, (response.status_code, response.content[:300])
    return {row["id"] for row in response.json()["results"]}


def test_every_object_of_the_other_program_is_404_and_its_own_are_read(world: World) -> None:
    cells = 0
    for program, client in _callers(world).values():
        for kind, template in READS.items():
            for owner in (program, OTHER[program]):
                if kind not in world.ids[owner]:
                    continue
                response = client.get(template.format(world.ids[owner][kind]))
                if owner == program:
                    assert response.status_code == 200, (program, kind, response.content[:300])
                else:
                    assert_problem(response, 404, "not_found")
                cells += 1
    assert cells == 2 * 10


def test_every_write_on_the_other_program_is_404_and_changes_nothing(world: World, db_snapshot) -> None:
    before = db_snapshot()
    cells = 0
    for program, client in _callers(world).values():
        other = world.ids[OTHER[program]]
        for kind, template, body in WRITES:
            if kind not in other:
                continue
            response = client.post(template.format(other[kind]), body, format="json")
            assert_problem(response, 404, "not_found")
            cells += 1
        # A relaxed cap in the other program's year, by its path.
        response = client.post(
            f"/api/v1/programs/{OTHER[program]}/years/{YEAR}/cap-overrides/",
            {"enterprise": world.cast.enterprise.pk, "cap_fen": 2_000_000, "reason": "Foundation model"},
            format="json",
        )
        assert_problem(response, 404, "not_found")
        cells += 1
    assert cells == (7 + 1) + (6 + 1)  # the district has no redemption, the city no claim
    assert db_snapshot() == before


def test_lists_hold_only_the_callers_program_and_unlimited_staff_see_both(world: World) -> None:
    callers = _callers(world)
    unlimited = signed_in(UserFactory(roles=[Role.REVIEWER, Role.APPROVER, Role.FINANCE]))
    for path, kinds in LISTS:
        everything = _ids_in(unlimited.get(path))
        for program, client in callers.values():
            seen = _ids_in(client.get(path))
            own = {world.ids[program][kind] for kind in kinds if kind in world.ids[program]}
            other = {world.ids[OTHER[program]][kind] for kind in kinds if kind in world.ids[OTHER[program]]}
            assert own <= seen, (program, path)
            assert not other & seen, (program, path)
            assert own | other <= everything, path
    # The programs themselves.
    assert [row["slug"] for row in unlimited.get("/api/v1/programs/").json()["results"]] == [CITY, DISTRICT]
    for program, client in callers.values():
        assert [row["slug"] for row in client.get("/api/v1/programs/").json()["results"]] == [program]
        assert client.get(f"/api/v1/programs/{program}/").status_code == 200
        assert_problem(client.get(f"/api/v1/programs/{OTHER[program]}/"), 404, "not_found")


def test_program_years_and_stats_are_limited_too(world: World) -> None:
    callers = _callers(world)
    for program, client in callers.values():
        other = OTHER[program]
        assert client.get(f"/api/v1/programs/{program}/years/{YEAR}/").status_code == 200
        assert client.get(f"/api/v1/programs/{program}/years/").status_code == 200
        assert client.get(f"/api/v1/stats/pool/?program={program}&year={YEAR}").json()["program"] == program
        assert_problem(client.get(f"/api/v1/programs/{other}/years/{YEAR}/"), 404, "not_found")
        assert_problem(client.get(f"/api/v1/programs/{other}/years/"), 404, "not_found")
        assert_problem(client.get(f"/api/v1/stats/pool/?program={other}&year={YEAR}"), 404, "not_found")
    # Without a program the figures are the caller's own program's; the old paths act on the default
    # program, which the district's staff do not reach.
    _, district = callers[DISTRICT]
    assert district.get(f"/api/v1/stats/pool/?year={YEAR}").json()["program"] == DISTRICT
    assert_problem(district.get(f"/api/v1/program-years/{YEAR}/"), 404, "not_found")
    _, city = callers[CITY]
    assert city.get(f"/api/v1/program-years/{YEAR}/").status_code == 200


def test_each_acts_on_its_own_program(world: World) -> None:
    """The district's staff review and decide the district's objects; the city's the city's."""
    callers = _callers(world)
    _, district = callers[DISTRICT]
    ids = world.ids[DISTRICT]
    response = district.post(f"/api/v1/claims/{ids['claim']}/approve/", {}, format="json")
    assert response.status_code == 200, response.content[:300]
    response = district.post(f"/api/v1/approval-requests/{ids['approval_request']}/approve/", {}, format="json")
    assert response.status_code == 200, response.content[:300]
    assert Grant.objects.get(pk=ids["grant"]).status == Grant.Status.REVOKED
    _, city = callers[CITY]
    response = city.post(f"/api/v1/applications/{world.ids[CITY]['reviewed']}/approve/", {}, format="json")
    assert response.status_code == 200, response.content[:300]
    assert Application.objects.get(pk=world.ids[CITY]["reviewed"]).status == Application.Status.APPROVED


def test_the_services_refuse_another_program_whatever_the_caller(world: World) -> None:
    """Not only the API: the services themselves refuse a write on another program's object (404)."""
    city_staff = world.city_staff
    district_reviewed = Application.objects.get(pk=world.ids[DISTRICT]["reviewed"])
    with pytest.raises(NotFound):
        application_approve(application=district_reviewed, actor=city_staff)
    with pytest.raises(NotFound):
        grant_revoke_request(
            grant=Grant.objects.get(pk=world.ids[DISTRICT]["grant"]), requester=city_staff, reason="Cancelled"
        )
    with pytest.raises(NotFound):
        approval_request_approve(request_id=world.ids[DISTRICT]["approval_request"], decider=city_staff)
    application = Application.objects.get(pk=world.ids[DISTRICT]["application"])
    with pytest.raises(NotFound):
        application_review(application=application, actor=city_staff, recommended_fen=1, **checked(application))
    assert ApprovalRequest.objects.get(pk=world.ids[DISTRICT]["approval_request"]).status == "pending"
    assert Claim.objects.get(pk=world.ids[DISTRICT]["claim"]).status == Claim.Status.SUBMITTED


def test_approval_requests_name_their_program(world: World) -> None:
    for program in (CITY, DISTRICT):
        request = ApprovalRequest.objects.get(pk=world.ids[program]["approval_request"])
        assert request.payload["program"] == program


def test_settlements_are_each_programs_own(world: World) -> None:
    """A settlement is paid from one program's fund: staff limited to programs read, create and pay
    their programs' settlements only (another program's is not found)."""
    cast = world.cast
    grant = Grant.objects.get(pk=world.ids[CITY]["grant"])
    redemption_create(
        grant=grant,
        bill_number="B2",
        bill_amount_fen=10_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    city_finance = UserFactory(roles=[Role.FINANCE], programs=[CITY])
    district_finance = UserFactory(roles=[Role.FINANCE], programs=[DISTRICT])
    assert settlement.pk in _ids_in(signed_in(city_finance).get("/api/v1/settlements/"))
    assert settlement.pk not in _ids_in(signed_in(district_finance).get("/api/v1/settlements/"))
    assert_problem(signed_in(district_finance).get(f"/api/v1/settlements/{settlement.pk}/"), 404, "not_found")
    with pytest.raises(NotFound):  # The city's fund is not the district's to pay from.
        settlement_create(provider=cast.provider, actor=district_finance)
    redemption_create(
        grant=grant,
        bill_number="B3",
        bill_amount_fen=10_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )
    second = settlement_create(provider=cast.provider, actor=city_finance)
    assert second.program_id == CITY


def test_portal_pages_are_limited(world: World) -> None:
    browser = Client()
    browser.force_login(world.district_staff)
    city_application = world.ids[CITY]["reviewed"]
    assert browser.get(f"/applications/{city_application}/").status_code == 404
    assert browser.get(f"/applications/{world.ids[DISTRICT]['reviewed']}/").status_code == 200
    assert browser.get(f"/grants/{world.ids[CITY]['grant']}/").status_code == 404
    page = browser.get("/review/")
    assert page.status_code == 200
    applications = {application.pk for application in page.context["to_approve"]}
    assert world.ids[DISTRICT]["reviewed"] in applications and city_application not in applications
    dashboard = browser.get("/dashboard/")
    assert dashboard.status_code == 200 and dashboard.context["program"].slug == DISTRICT
    assert [program.slug for program in dashboard.context["programs"]] == [DISTRICT]
    assert browser.get(f"/dashboard/?program={CITY}").status_code == 404
    assert browser.get("/audits/").status_code == 403


def test_exports_hold_only_the_callers_programs(world: World) -> None:
    finance = UserFactory(roles=[Role.FINANCE], programs=[DISTRICT])
    browser = Client()
    browser.force_login(finance)
    response = browser.get("/exports/?what=grants&start=2025-06-01&end=2027-06-01&file_format=csv")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    codes = {grant.code: grant.year.program_id for grant in Grant.objects.select_related("year")}
    assert any(code in text for code, program in codes.items() if program == DISTRICT)
    assert not any(code in text for code, program in codes.items() if program == CITY)


def test_alerts_reach_the_staff_of_their_program() -> None:
    city = UserFactory(roles=[Role.REVIEWER], programs=[CITY], receives_alerts=True, email="city@example.com")
    district = UserFactory(
        roles=[Role.REVIEWER], programs=[DISTRICT], receives_alerts=True, email="district@example.com"
    )
    everyone = UserFactory(roles=[Role.REVIEWER], receives_alerts=True, email="all@example.com")
    alert = Alert.objects.create(kind="pool_80", key="k", message="m", details={"program": DISTRICT, "year": YEAR})
    assert _recipients(alert) == sorted([district.email, everyone.email])
    audit = Alert.objects.create(kind="audit_failed", key="a", message="m", details={"run": 1})
    assert _recipients(audit) == [everyone.email]
    assert city.email not in _recipients(alert)


# --- Setting the limit --------------------------------------------------------------------------


def test_a_superuser_narrows_the_limit_at_once_through_the_api() -> None:
    district_program()
    admin = UserFactory(is_superuser=True, is_staff=True)
    staff = UserFactory(roles=[Role.REVIEWER])
    client = signed_in(admin)
    # Every program to two: narrower, so it holds at once.
    response = client.put(
        f"/api/v1/users/{staff.pk}/programs/", {"programs": [DISTRICT, CITY, DISTRICT]}, format="json"
    )
    assert response.status_code == 200, response.content[:300]
    assert response.json()["programs"] == [CITY, DISTRICT]
    assert signed_in(staff).get("/api/v1/me/").json()["programs"] == [CITY, DISTRICT]
    response = client.put(f"/api/v1/users/{staff.pk}/programs/", {"programs": [CITY]}, format="json")
    assert response.status_code == 200, response.content[:300]
    assert User.objects.get(pk=staff.pk).program_limit == {CITY}
    # The same reach again changes nothing and asks nobody.
    assert client.put(f"/api/v1/users/{staff.pk}/programs/", {"programs": [CITY]}, format="json").status_code == 200
    assert not ApprovalRequest.objects.exists()


def test_widening_the_limit_waits_for_a_second_superuser() -> None:
    """Reproduced: one superuser lifted a staff member's limit (200), giving the person's roles the
    other program's money with nobody else seeing it. A wider reach is a role grant in another program."""
    district_program()
    admin, other_admin = UserFactory(is_superuser=True, is_staff=True), UserFactory(is_superuser=True, is_staff=True)
    staff = UserFactory(roles=[Role.APPROVER], programs=[CITY])
    client = signed_in(admin)
    url = f"/api/v1/users/{staff.pk}/programs/"

    response = client.put(url, {"programs": [CITY, DISTRICT], "reason": "Covers Xihu from May."}, format="json")
    assert response.status_code == 202, response.content[:300]
    asked = response.json()
    assert asked["action"] == "user_programs_widen"
    assert asked["status"] == "pending"
    assert asked["payload"] == {
        "user": staff.pk,
        "username": staff.username,
        "programs": [CITY, DISTRICT],
        "from": [CITY],
    }
    assert asked["reason"] == "Covers Xihu from May."
    # Nothing wider until decided: the person still reaches one program.
    assert User.objects.get(pk=staff.pk).program_limit == {CITY}
    assert signed_in(staff).get("/api/v1/me/").json()["programs"] == [CITY]
    # A second widening for the same person while one waits: refused.
    assert_problem(client.put(url, {"programs": []}, format="json"), 409, "invalid_state")
    # The asker may not decide it.
    assert_problem(
        client.post(f"/api/v1/approval-requests/{asked['id']}/approve/", {"reason": "ok"}, format="json"),
        403,
        "four_eyes",
    )
    assert User.objects.get(pk=staff.pk).program_limit == {CITY}
    # Nor may a non-superuser, even an approver.
    assert signed_in(UserFactory(roles=[Role.APPROVER])).post(
        f"/api/v1/approval-requests/{asked['id']}/approve/", {"reason": "ok"}, format="json"
    ).status_code in (403, 404)
    response = signed_in(other_admin).post(
        f"/api/v1/approval-requests/{asked['id']}/approve/", {"reason": "Board minute 12."}, format="json"
    )
    assert response.status_code == 200, response.content[:300]
    assert response.json()["status"] == "approved"
    assert User.objects.get(pk=staff.pk).program_limit == {CITY, DISTRICT}

    # Lifting the limit (every program) is widening too.
    response = client.put(url, {"programs": []}, format="json")
    assert response.status_code == 202, response.content[:300]
    assert User.objects.get(pk=staff.pk).program_limit == {CITY, DISTRICT}
    approval_request_approve(request_id=response.json()["id"], decider=other_admin)
    assert User.objects.get(pk=staff.pk).program_limit is None


def test_a_widening_made_stale_by_a_later_change_is_refused() -> None:
    district_program()
    admin, other_admin = UserFactory(is_superuser=True, is_staff=True), UserFactory(is_superuser=True, is_staff=True)
    staff = UserFactory(roles=[Role.REVIEWER], programs=[CITY, DISTRICT])
    user, asked = user_programs_set(user=staff, programs=[], actor=admin)
    assert asked is not None and user.program_limit == {CITY, DISTRICT}
    # Meanwhile the person is narrowed to the district: the request was made against another reach.
    user, none = user_programs_set(user=staff, programs=[DISTRICT], actor=admin)
    assert none is None and user.program_limit == {DISTRICT}
    response = signed_in(other_admin).post(
        f"/api/v1/approval-requests/{asked.pk}/approve/", {"reason": "ok"}, format="json"
    )
    assert_problem(response, 409, "invalid_state")
    assert User.objects.get(pk=staff.pk).program_limit == {DISTRICT}
    assert ApprovalRequest.objects.get(pk=asked.pk).status == ApprovalRequest.Status.PENDING


def test_the_limit_is_refused_when_it_cannot_mean_anything(cast: Cast) -> None:
    staff = UserFactory(roles=[Role.REVIEWER])
    client = signed_in(cast.admin)
    assert_problem(
        client.put(f"/api/v1/users/{staff.pk}/programs/", {"programs": ["no-such-fund"]}, format="json"),
        404,
        "not_found",
    )
    assert_problem(
        client.put(f"/api/v1/users/{cast.member.pk}/programs/", {"programs": [CITY]}, format="json"),
        409,
        "invalid_state",
    )
    assert_problem(
        client.put(f"/api/v1/users/{cast.admin.pk}/programs/", {"programs": [CITY]}, format="json"),
        409,
        "invalid_state",
    )
    # Only a superuser sets it.
    assert_problem(
        signed_in(cast.approver).put(f"/api/v1/users/{staff.pk}/programs/", {"programs": [CITY]}, format="json"),
        403,
        "permission_denied",
    )
    with pytest.raises(PermissionDenied):
        user_programs_set(user=staff, programs=[CITY], actor=cast.approver)
    with pytest.raises(InvalidState):
        user_programs_set(user=cast.admin, programs=[CITY], actor=cast.admin)
    assert User.objects.get(pk=staff.pk).programs == []


def test_the_database_keeps_limits_to_staff(cast: Cast) -> None:
    """Whatever path writes it, a superuser or an organisation's member is never limited."""
    for user in (cast.admin, cast.member, cast.clerk):
        with pytest.raises(IntegrityError), transaction.atomic():
            User.objects.filter(pk=user.pk).update(programs=[CITY])


def test_a_user_created_limited_is_limited_before_any_role_arrives(cast: Cast) -> None:
    district_program()
    response = signed_in(cast.admin).post(
        "/api/v1/users/",
        {
            "username": "xihu-reviewer",
            "password": "a long enough pass phrase 42",
            "roles": ["reviewer"],
            "programs": [DISTRICT],
        },
        format="json",
    )
    assert response.status_code == 201, response.content[:300]
    assert response.json()["programs"] == [DISTRICT]
    assert User.objects.get(username="xihu-reviewer").programs == [DISTRICT]


def test_a_sanction_spans_every_program(cast: Cast) -> None:
    """A sanction excludes an organisation from every program, and its request names no program (so
    staff limited to programs would not see it): asking for one needs a reach of every program."""
    district_program()
    district_staff = limited_staff(DISTRICT)
    response = signed_in(district_staff).post(
        "/api/v1/sanctions/",
        {"uscc": cast.enterprise.uscc, "reason": "Forged invoices", "valid_from": "2026-01-01"},
        format="json",
    )
    assert_problem(response, 403, "permission_denied")
    assert not ApprovalRequest.objects.filter(action="sanction_set").exists()


def test_documents_cited_only_in_another_program_are_404(world: World) -> None:
    """The contract of a district application is the district's evidence: the city's staff do not read it."""
    city_application = Application.objects.get(pk=world.ids[CITY]["reviewed"])
    district_application = Application.objects.get(pk=world.ids[DISTRICT]["reviewed"])
    city, district = signed_in(world.city_staff), signed_in(world.district_staff)
    for client, own, other in (
        (city, city_application, district_application),
        (district, district_application, city_application),
    ):
        assert client.get(f"/api/v1/documents/{own.contract_document_id}/").status_code == 200
        assert_problem(client.get(f"/api/v1/documents/{other.contract_document_id}/"), 404, "not_found")
        assert_problem(client.get(f"/api/v1/documents/{other.contract_document_id}/content/"), 404, "not_found")
        listed = _ids_in(client.get("/api/v1/documents/?page_size=200"))
        assert own.contract_document_id in listed and other.contract_document_id not in listed
    unlimited = signed_in(world.cast.reviewer)
    for application in (city_application, district_application):
        assert unlimited.get(f"/api/v1/documents/{application.contract_document_id}/").status_code == 200


def test_the_registers_every_program_prices_by_are_kept_by_unlimited_staff(world: World) -> None:
    """An enterprise's verification and flags, and the model filings, raise rates and eligibility in
    every program: a reviewer limited to a district may not change them (found in review)."""
    from accounts.models import EnterpriseFlagsEvent
    from accounts.services import enterprise_verify

    district_reviewer = UserFactory(roles=[Role.REVIEWER], programs=[DISTRICT])
    enterprise = world.cast.enterprise
    events = EnterpriseFlagsEvent.objects.count()
    with pytest.raises(PermissionDenied):
        enterprise_verify(enterprise=enterprise, actor=district_reviewer, flags={"small_or_medium": True})
    assert EnterpriseFlagsEvent.objects.count() == events
    enterprise_verify(enterprise=enterprise, actor=world.cast.reviewer, flags={"small_or_medium": True})


def test_the_portals_unsettled_tables_keep_to_the_callers_programs(world: World) -> None:
    """Found from outside: the settlements page listed every program's unsettled bills to finance
    staff limited to one program."""
    cast = world.cast
    redemption_create(
        grant=Grant.objects.get(pk=world.ids[CITY]["grant"]),
        bill_number="B-UNSETTLED",
        bill_amount_fen=10_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )
    pages = {}
    for program in (CITY, DISTRICT):
        browser = Client()
        browser.force_login(UserFactory(roles=[Role.FINANCE], programs=[program]))
        page = browser.get("/settlements/")
        assert page.status_code == 200
        pages[program] = page.context["unsettled"]
    assert [row["provider_id"] for row in pages[CITY]] == [cast.provider.pk]
    assert pages[DISTRICT] == []


def test_a_request_for_a_user_deleted_since_is_refused_not_a_500() -> None:
    """Found from outside: approving a widening, or a role grant, for a user deleted in the admin since
    it was asked answered 500 on every retry. Now 409, nothing changed, and the request can be rejected."""
    admin, other_admin = UserFactory(is_superuser=True, is_staff=True), UserFactory(is_superuser=True, is_staff=True)
    staff = UserFactory(roles=[Role.REVIEWER], programs=[CITY])
    _, widen = user_programs_set(user=staff, programs=[], actor=admin)
    from accounts.services import role_grant_request

    grant = role_grant_request(user=staff, roles=[Role.APPROVER], requester=admin)
    User.objects.filter(pk=staff.pk).delete()
    decider = signed_in(other_admin)
    for asked in (widen, grant):
        assert asked is not None
        assert_problem(
            decider.post(f"/api/v1/approval-requests/{asked.pk}/approve/", {"reason": "ok"}, format="json"),
            409,
            "invalid_state",
        )
        assert ApprovalRequest.objects.get(pk=asked.pk).status == ApprovalRequest.Status.PENDING
        rejected = decider.post(f"/api/v1/approval-requests/{asked.pk}/reject/", {"reason": "gone"}, format="json")
        assert rejected.status_code == 200, rejected.content[:300]
