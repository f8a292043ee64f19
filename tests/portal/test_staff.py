"""The administrators' pages: enterprises, computing centers and related parties, cap overrides,
coupons, settlements, audits and alerts."""

from collections.abc import Callable
from typing import Any

from django.test import Client

from accounts.models import Enterprise, Provider, RelatedParty, Role
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve
from coupons.models import Alert, AuditRun, CapOverride, Grant, ProgramYear, Redemption, Settlement
from coupons.services.redemptions import redemption_create
from tests.controls import bills_acknowledged
from tests.coupons.conftest import Cast
from tests.evidence import invoice
from tests.factories import EnterpriseFactory, UserFactory, valid_uscc
from tests.portal.conftest import walk_to_grant


def test_a_reviewer_verifies_and_suspends_enterprises(cast: Cast, year: ProgramYear, as_user: Callable[..., Client]):
    pending = EnterpriseFactory(status="pending", name="Pending AI Co.")
    reviewer = as_user(cast.reviewer)
    listing = reviewer.get("/enterprises/", {"status": "pending"}).content.decode()
    assert "Pending AI Co." in listing and cast.enterprise.name not in listing
    reviewer.post(f"/enterprises/{pending.pk}/verify/", {"next": "/enterprises/?status=pending"})
    pending.refresh_from_db()
    assert pending.status == "verified"
    reviewer.post(f"/enterprises/{pending.pk}/suspend/")
    pending.refresh_from_db()
    assert pending.status == "suspended"
    # An approver sees the list but may not verify.
    assert as_user(cast.approver).post(f"/enterprises/{pending.pk}/verify/").status_code == 403
    pending.refresh_from_db()
    assert pending.status == "suspended"


def test_a_superuser_lists_a_provider_and_a_bad_credit_code_is_refused(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    admin = as_user(cast.admin, language="en")
    good = valid_uscc()
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    before = db_snapshot()
    response = admin.post(
        "/providers/",
        {
            "form": "provider",
            "provider-name": "West Lake Compute",
            "provider-uscc": bad,
            "provider-listing": "planning_layout",
        },
    )
    assert response.status_code == 400 and 'value="West Lake Compute"' in response.content.decode()
    assert db_snapshot() == before
    facility = {
        "provider-offers_domestic": "on",
        "provider-facility": "Ascend 910B cluster",
        "provider-listed_from": "2024-01-01",
    }
    # No compute source ticked, or a window that ends before it starts: refused, nothing written.
    for wrong in (
        {**facility, "provider-offers_domestic": ""},
        {**facility, "provider-listed_until": "2023-12-31"},
    ):
        response = admin.post(
            "/providers/",
            {
                "form": "provider",
                "provider-name": "West Lake Compute",
                "provider-uscc": good,
                "provider-listing": "planning_layout",
                **wrong,
            },
        )
        assert response.status_code == 400
        assert db_snapshot() == before
    admin.post(
        "/providers/",
        {
            "form": "provider",
            "provider-name": "West Lake Compute",
            "provider-uscc": good,
            "provider-listing": "planning_layout",
            **facility,
        },
    )
    provider = Provider.objects.get(name="West Lake Compute")
    assert provider.status == "active"
    assert list(provider.facilities.values_list("compute_source", "description")) == [
        ("domestic", "Ascend 910B cluster")
    ]
    page = admin.get("/providers/").content.decode()
    assert "Ascend 910B cluster (2024-01-01 – until further notice)" in page
    assert "History of listing changes" in page and "Listed" in page
    # Suspending asks for an approval, and says so; nothing changes until an approver approves.
    before = db_snapshot()
    assert admin.post(f"/providers/{provider.pk}/status/suspended/", {"reason": ""}).status_code == 302
    assert db_snapshot() == before and not ApprovalRequest.objects.exists()
    response = admin.post(f"/providers/{provider.pk}/status/suspended/", {"reason": "Audit finding"}, follow=True)
    page = response.content.decode()
    assert "Asked for approval: West Lake Compute to become Suspended." in page
    assert "Change awaiting approval" in page
    provider.refresh_from_db()
    assert provider.status == "active"
    approval = ApprovalRequest.objects.get()
    assert (approval.action, approval.payload, approval.requested_by) == (
        "provider_change",
        {"status": "suspended"},
        cast.admin,
    )
    approval_request_approve(request_id=approval.pk, decider=cast.approver)
    provider.refresh_from_db()
    assert provider.status == "suspended"
    page = admin.get("/providers/").content.decode()
    assert "Ask to reinstate" in page and "Changed by approval" in page and "Audit finding" in page
    # A reviewer may record related parties but not list providers.
    reviewer = as_user(cast.reviewer)
    assert 'name="provider-name"' not in reviewer.get("/providers/").content.decode()
    reviewer.post(
        "/providers/",
        {"form": "party", "party-uscc_a": cast.enterprise.uscc, "party-uscc_b": good, "party-note": "same owner"},
    )
    assert RelatedParty.objects.count() == 1
    assert as_user(cast.reviewer).post(f"/providers/{provider.pk}/status/active/", {"reason": "r"}).status_code == 403
    assert ApprovalRequest.objects.filter(status="pending").count() == 0


def test_a_cap_override_asked_in_the_portal_is_granted_when_another_approver_approves(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(
        foundation_model_developer=True, foundation_model_developer_verified=True
    )
    approver = as_user(cast.approver, language="en")
    form = {"enterprise": cast.enterprise.pk, "cap": "20,000", "reason": "Foundation model"}
    # The form has no "requested by" field any more: the requester is whoever is signed in.
    assert 'name="requested_by"' not in approver.get("/cap-overrides/").content.decode()
    before = db_snapshot()
    body = approver.post("/cap-overrides/", form | {"cap": "25,000,000"}).content.decode()  # past the ceiling
    assert "ceiling" in body and db_snapshot() == before
    approver.post("/cap-overrides/", form)
    request = ApprovalRequest.objects.get()
    assert (request.action, request.requested_by, request.payload["cap_fen"]) == (
        "cap_override",
        cast.approver,
        2_000_000,
    )
    assert not CapOverride.objects.exists()
    approver.post(f"/approvals/{request.pk}/approve/", {"reason": ""})  # four eyes: refused
    assert not CapOverride.objects.exists()
    as_user(cast.approver2).post(f"/approvals/{request.pk}/approve/", {"reason": "Seen the board decision."})
    override = CapOverride.objects.get()
    assert (override.cap_fen, override.requested_by_id, override.granted_by_id) == (
        2_000_000,
        cast.approver.pk,
        cast.approver2.pk,
    )


def test_a_revocation_asked_from_the_coupon_page_waits_for_another_approver(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    grant = walk_to_grant(cast)
    page = as_user(cast.approver).get(f"/grants/{grant.pk}/").content.decode()
    assert "revoke" in page
    as_user(cast.member).post(f"/grants/{grant.pk}/revoke/", {"reason": "mine"})  # 403
    assert not ApprovalRequest.objects.exists()
    as_user(cast.approver).post(f"/grants/{grant.pk}/revoke/", {"reason": "Contract cancelled"})
    grant.refresh_from_db()
    assert grant.status == "active"
    request = ApprovalRequest.objects.get()
    reviewer = as_user(cast.reviewer)
    reviewer.post(f"/approvals/{request.pk}/approve/", {"reason": ""})  # a reviewer may not decide
    grant.refresh_from_db()
    assert grant.status == "active"
    as_user(cast.approver2).post(f"/approvals/{request.pk}/reject/", {"reason": ""})  # a rejection needs a reason
    request.refresh_from_db()
    assert request.status == "pending"
    as_user(cast.approver2).post(f"/approvals/{request.pk}/approve/", {"reason": ""})
    grant.refresh_from_db()
    assert (grant.status, grant.revoked_fen) == ("revoked", 300_000)
    assert Grant.objects.count() == 1


def test_finance_settles_a_provider_exports_the_lines_and_marks_them_paid(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    grant = walk_to_grant(cast)
    redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=100_000, actor=cast.clerk, capture=True, **invoice(cast.clerk)
    )
    redemption_create(
        grant=grant, bill_number="B-2", bill_amount_fen=50_000, actor=cast.clerk, capture=True, **invoice(cast.clerk)
    )
    bills_acknowledged(cast.provider)
    finance = as_user(cast.finance)
    listing = finance.get("/settlements/").content.decode()
    assert "¥450.00" in listing  # 30% of 1,500 yuan waits to be settled
    response = finance.post("/settlements/", {"provider": cast.provider.pk})
    settlement = Settlement.objects.get()
    assert response["Location"] == f"/settlements/{settlement.pk}/"
    assert (settlement.total_fen, settlement.redemptions_count) == (45_000, 2)
    csv_text = finance.get(f"/settlements/{settlement.pk}/lines.csv").content.decode()
    assert csv_text.splitlines()[-1].endswith(",45000,") and "B-1" in csv_text and "B-2" in csv_text
    # The provider reads its own settlement but may not pay it.
    assert as_user(cast.clerk).get(f"/settlements/{settlement.pk}/").status_code == 200
    assert as_user(cast.clerk).post(f"/settlements/{settlement.pk}/pay/", {"bank_reference": "X"}).status_code == 403
    finance.post(f"/settlements/{settlement.pk}/pay/", {"bank_reference": ""})
    settlement.refresh_from_db()
    assert settlement.status == "open"
    finance.post(f"/settlements/{settlement.pk}/pay/", {"bank_reference": "ICBC-20261125-001"})
    settlement.refresh_from_db()
    assert settlement.status == "open"  # Asked for; a second finance user confirms.
    request = ApprovalRequest.objects.get(action="settlement_pay")
    finance.post(f"/approvals/{request.pk}/approve/", {"reason": ""})  # the creator may not
    settlement.refresh_from_db()
    assert settlement.status == "open"
    as_user(UserFactory(roles=[Role.FINANCE])).post(f"/approvals/{request.pk}/approve/", {"reason": ""})
    settlement.refresh_from_db()
    assert (settlement.status, settlement.bank_reference) == ("paid", "ICBC-20261125-001")
    assert Redemption.objects.filter(settlement=settlement).count() == 2


def test_an_auditor_runs_an_audit_and_reads_its_checks(
    cast: Cast,
    year: ProgramYear,
    as_user: Callable[..., Client],
    django_capture_on_commit_callbacks: Callable[..., Any],
):
    walk_to_grant(cast)
    auditor = as_user(UserFactory(roles=[Role.AUDITOR]))
    with django_capture_on_commit_callbacks(execute=True):
        response = auditor.post("/audits/run/")
    run = AuditRun.objects.get()
    assert response["Location"] == f"/audits/{run.pk}/"
    run.refresh_from_db()  # Without REDIS_URL the task ran in-process when the request committed.
    assert run.status == "passed"
    page = auditor.get(f"/audits/{run.pk}/").content.decode()
    assert 'data-status="passed"' in page and "hash_chain" in page
    assert as_user(cast.finance).post("/audits/run/").status_code == 403
    assert AuditRun.objects.count() == 1


def test_staff_read_alerts(cast: Cast, year: ProgramYear, as_user: Callable[..., Client]):
    Alert.objects.create(kind="pool_80", key="pool:test:80", message="The pool is 80% used.")
    assert "The pool is 80% used." in as_user(cast.finance).get("/alerts/").content.decode()
    assert as_user(cast.member).get("/alerts/").status_code == 403
