"""/api/v1/audits/ and /api/v1/program-years/{year}/close/: background work started over HTTP."""

import pytest

from coupons.models import AuditRun, Grant, ProgramYear
from coupons.services.audit import CHECKS
from tests.api.conftest import assert_problem
from tests.coupons.conftest import grant_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_an_auditor_starts_an_audit_and_reads_its_findings(cast, year, as_user, django_capture_on_commit_callbacks):
    auditor = as_user(UserFactory(roles=["auditor"]))
    with django_capture_on_commit_callbacks(execute=True):
        created = auditor.post("/api/v1/audits/")
    assert created.status_code == 201, created.content
    run_id = created.json()["id"]
    run = auditor.get(f"/api/v1/audits/{run_id}/").json()
    assert run["status"] == "passed"
    assert run["finished_at"] and run["started_at"]
    assert all({"name", "ok", "details"} <= set(check) for check in run["checks"]) and len(run["checks"]) == len(CHECKS)
    listed = auditor.get("/api/v1/audits/?status=passed").json()
    assert [r["id"] for r in listed["results"]] == [run_id]


def test_only_auditors_see_audits(cast, year, as_user, anonymous, db_snapshot):
    before = db_snapshot()
    for user in (cast.reviewer, cast.finance, cast.member, cast.clerk):
        assert_problem(as_user(user).get("/api/v1/audits/"), 403, "permission_denied")
        assert_problem(as_user(user).post("/api/v1/audits/"), 403, "permission_denied")
    assert_problem(anonymous.get("/api/v1/audits/"), 401, "not_authenticated")
    assert db_snapshot() == before
    assert AuditRun.objects.count() == 0


def test_a_superuser_closes_the_year_and_its_reset_runs(cast, year, as_user, django_capture_on_commit_callbacks):
    grant = grant_for(cast)
    admin = as_user(cast.admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(f"/api/v1/program-years/{year.year}/close/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "closed"
    grant.refresh_from_db()
    assert grant.status == "expired" and grant.lapsed_fen == grant.amount_fen
    assert ProgramYear.objects.get(year=year.year + 1).status == "open"
    assert admin.get(f"/api/v1/program-years/{year.year}/").json()["figures"]["lapsed_fen"] == grant.amount_fen
    # Closing again changes nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert admin.post(f"/api/v1/program-years/{year.year}/close/").status_code == 200
    assert Grant.objects.get(pk=grant.pk).lapsed_fen == grant.amount_fen


def test_only_a_superuser_closes_a_year(cast, year, as_user, db_snapshot):
    before = db_snapshot()
    for user in (cast.approver, cast.reviewer, cast.member):
        assert_problem(as_user(user).post(f"/api/v1/program-years/{year.year}/close/"), 403, "permission_denied")
    assert_problem(as_user(cast.admin).post("/api/v1/program-years/1999/close/"), 404, "not_found")
    assert db_snapshot() == before
