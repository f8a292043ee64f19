"""The portal's eligibility pages: an enterprise declares its flags, a reviewer confirms them from
the enterprises page, reviewers keep the register of model filings, and the apply form names one."""

from collections.abc import Callable

from django.test import Client

from accounts.models import Enterprise, EnterpriseFlagsEvent, ModelFiling, Role
from accounts.services import model_filing_record, model_filing_verify
from coupons.models import Application, ProgramYear
from tests.coupons.conftest import Cast
from tests.evidence import contract_fields
from tests.factories import UserFactory
from tests.portal.conftest import this_year


def test_an_enterprise_declares_a_flag_which_waits_for_a_reviewer(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(small_or_medium=True, small_or_medium_verified=True)
    member = as_user(cast.member)
    page = member.get("/enterprise/flags/")
    assert page.status_code == 200 and "申领资格" in page.content.decode()
    response = member.post(
        "/enterprise/flags/", {"foundation_model_developer": "on", "small_or_medium": "on", "model_filing_number": ""}
    )
    assert response.status_code == 302
    enterprise = Enterprise.objects.get(pk=cast.enterprise.pk)
    assert (enterprise.foundation_model_developer, enterprise.foundation_model_developer_verified) == (True, False)
    assert (enterprise.small_or_medium, enterprise.small_or_medium_verified) == (True, True)
    assert EnterpriseFlagsEvent.objects.get().flags == {"foundation_model_developer": True}


def test_a_refused_declaration_keeps_the_input_and_writes_nothing(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    member = as_user(cast.member, language="en")
    before = db_snapshot()
    response = member.post("/enterprise/flags/", {"has_registered_model": "on", "model_filing_number": ""})
    assert response.status_code == 400
    assert "A registered model needs its CAC filing number." in response.content.decode()
    assert db_snapshot() == before


def test_a_reviewer_confirms_the_declared_flags_that_are_ticked(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(
        small_or_medium=True, foundation_model_developer=True, foundation_model_developer_verified=True
    )
    reviewer = as_user(cast.reviewer)
    listing = reviewer.get("/enterprises/").content.decode()
    assert 'name="small_or_medium"' in listing and 'name="has_registered_model"' not in listing
    reviewer.post(f"/enterprises/{cast.enterprise.pk}/verify/", {"small_or_medium": "on"})
    enterprise = Enterprise.objects.get(pk=cast.enterprise.pk)
    # Ticked: confirmed. Declared but not ticked: no longer confirmed.
    assert (enterprise.small_or_medium_verified, enterprise.foundation_model_developer_verified) == (True, False)
    event = EnterpriseFlagsEvent.objects.get()
    assert (event.actor_id, event.flags) == (
        cast.reviewer.pk,
        {"small_or_medium": True, "foundation_model_developer": False},
    )


def test_reviewers_record_and_verify_filings_and_other_staff_only_read(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    reviewer = as_user(cast.reviewer)
    response = reviewer.post(
        "/model-filings/",
        {"filing_number": "Zhejiang-202401", "model_name": "Tongyi", "holder_name": "Third Party", "holder_uscc": ""},
    )
    assert response.status_code == 302
    filing = ModelFiling.objects.get()
    assert filing.verified_at is None and filing.recorded_by_id == cast.reviewer.pk
    reviewer.post(f"/model-filings/{filing.pk}/verify/")  # Four eyes: not by the reviewer who recorded it.
    filing.refresh_from_db()
    assert filing.verified_at is None
    second_reviewer = UserFactory(roles=[Role.REVIEWER])
    as_user(second_reviewer).post(f"/model-filings/{filing.pk}/verify/")
    filing.refresh_from_db()
    assert filing.verified_by_id == second_reviewer.pk
    approver, member = as_user(cast.approver), as_user(cast.member)
    assert "Zhejiang-202401" in approver.get("/model-filings/").content.decode()
    member.get("/enterprise/")  # Signed in before the snapshot (sign-in writes last_login).
    before = db_snapshot()
    assert (
        approver.post("/model-filings/", {"filing_number": "X", "model_name": "m", "holder_name": "h"}).status_code
        == 404
    )
    assert approver.post(f"/model-filings/{filing.pk}/verify/").status_code == 403
    assert member.get("/model-filings/").status_code in (403, 404)
    assert db_snapshot() == before


def test_a_duplicate_filing_is_refused_with_the_input_kept(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    model_filing_record(filing_number="Z-1", model_name="m", holder_name="h", actor=cast.reviewer)
    reviewer = as_user(cast.reviewer, language="en")
    before = db_snapshot()
    response = reviewer.post("/model-filings/", {"filing_number": "Z-1", "model_name": "Other", "holder_name": "h"})
    assert response.status_code == 400 and 'value="Other"' in response.content.decode()
    assert db_snapshot() == before


def test_the_apply_form_names_the_filing_and_the_preview_prices_with_it(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    filing = model_filing_record(filing_number="Z-1", model_name="m", holder_name="h", actor=cast.reviewer)
    model_filing_verify(filing=filing, actor=UserFactory(roles=[Role.REVIEWER]))
    member = as_user(cast.member)
    fields = {
        "provider": cast.provider.pk,
        "contract_number": "P-9",
        "contract_fee": "10000",
        "compute_source": "other",
        "purpose": "maas",
    }
    without = member.get("/apply/preview/", fields).content.decode()
    with_filing = member.get("/apply/preview/", {**fields, "model_filing_number": "Z-1"}).content.decode()
    assert "20%" in without and "30%" in with_filing
    response = member.post("/apply/", {**fields, "model_filing_number": "Z-1", **contract_fields(this_year())})
    assert response.status_code == 302
    application = Application.objects.get()
    assert (application.rate_bp, application.model_filing_id) == (3000, filing.pk)


def test_a_reviewer_requests_a_sanction_which_waits_for_an_approver(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    from approvals.models import ApprovalRequest

    reviewer, member = as_user(cast.reviewer, language="en"), as_user(cast.member)
    member.get("/enterprise/")
    before = db_snapshot()
    refused = reviewer.post("/sanctions/", {"uscc": cast.provider.uscc, "reason": "", "valid_from": "2026-01-01"})
    assert refused.status_code == 400 and cast.provider.uscc in refused.content.decode()
    assert member.post(
        "/sanctions/", {"uscc": cast.provider.uscc, "reason": "r", "valid_from": "2026-01-01"}
    ).status_code in (
        403,
        404,
    )
    assert db_snapshot() == before and not ApprovalRequest.objects.exists()
    response = reviewer.post(
        "/sanctions/",
        {"uscc": cast.provider.uscc, "reason": "Billed compute it did not deliver", "valid_from": "2026-01-01"},
    )
    assert response.status_code == 302
    asked = ApprovalRequest.objects.get()
    assert (asked.action, asked.status, asked.requested_by_id) == ("sanction_set", "pending", cast.reviewer.pk)
    assert "Billed compute it did not deliver" in reviewer.get("/sanctions/").content.decode()
