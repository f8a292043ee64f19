"""Eligibility rests on what staff checked: the region by credit code, flags staff confirmed, filed
models in the register, sanctions; affiliation and sanctions are checked again at every step."""

import datetime as dt

import pytest
from django.db import IntegrityError, ProgrammingError, connection, transaction
from django.utils import timezone

from accounts.models import Enterprise, EnterpriseFlagsEvent, ModelFiling, Role, Sanction
from accounts.selectors import enterprise_is_verified_foundation_model_developer
from accounts.services import (
    enterprise_flags_declare,
    enterprise_verify,
    model_filing_record,
    model_filing_verify,
    related_party_add,
    sanction_set,
)
from config.errors import FourEyes as SanctionFourEyes
from config.errors import PermissionDenied, ValidationFailed
from coupons.errors import AffiliatedProvider, NotEligible
from coupons.models import Application, Grant, ProgramYear
from coupons.policy import REVISION_2025_06
from coupons.services.applications import application_approve, application_confirm, application_review
from coupons.services.redemptions import redemption_create
from coupons.services.years import program_year_create, program_year_open, rule_set_create
from tests.coupons.conftest import CAP_FEN, IN_YEAR, POOL_FEN, YEAR, grant_for, submit, to_reviewed
from tests.evidence import checked, invoice
from tests.factories import EnterpriseFactory, UserFactory, valid_uscc

pytestmark = pytest.mark.django_db

FEE_FEN = 1_000_000
LONG_AGO = dt.date(2000, 1, 1)


def refused(db_snapshot, error, call, **kwargs):
    before = db_snapshot()
    with pytest.raises(error) as caught:
        call(**kwargs)
    assert db_snapshot() == before, "a refusal wrote something"
    return caught.value


def sanction(cast, uscc: str, *, valid_from: dt.date = LONG_AGO, valid_until: dt.date | None = None) -> Sanction:
    return sanction_set(
        uscc=uscc,
        reason="false invoices",
        valid_from=valid_from,
        valid_until=valid_until,
        requested_by=cast.reviewer,
        actor=cast.approver,
    )


# --- Region ------------------------------------------------------------------------------------


def test_an_enterprise_registered_outside_hangzhou_is_refused_at_submission(cast, year, db_snapshot):
    # given an enterprise registered in Beijing's Chaoyang district (110105)
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(uscc=valid_uscc("110105"))
    # when it applies, then
    error = refused(db_snapshot, NotEligible, submit, cast=cast)
    assert (error.code, error.http_status) == ("not_eligible", 403)
    assert "110105" in error.detail and "3301" in error.detail


@pytest.mark.parametrize("division", ["330100", "330106", "330110", "330127"])
def test_every_hangzhou_division_is_inside_the_default_region(cast, year, division):
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(uscc=valid_uscc(division))
    assert submit(cast).status == Application.Status.SUBMITTED


def test_the_region_is_the_years_policy_data(cast):
    # given a year whose region is Hangzhou and Ningbo (3302)
    program_year_create(
        year=YEAR,
        actor=cast.admin,
        pool_fen=POOL_FEN,
        default_cap_fen=CAP_FEN,
        region_division_prefixes=["3301", "3302"],
    )
    program_year_open(year=YEAR, actor=cast.admin)
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(uscc=valid_uscc("330203"))
    # then a Ningbo enterprise applies
    assert submit(cast).status == Application.Status.SUBMITTED


@pytest.mark.parametrize(
    "prefixes", [[], ["3"], ["3301000"], ["33a1"], [3301], "3301", ["3301"] * 51], ids=lambda p: repr(p)[:20]
)
def test_a_year_refuses_malformed_region_prefixes(cast, db_snapshot, prefixes):
    error = refused(
        db_snapshot,
        ValidationFailed,
        program_year_create,
        year=YEAR,
        actor=cast.admin,
        region_division_prefixes=prefixes,
    )
    assert "region_division_prefixes" in error.errors


def test_the_region_is_fixed_once_the_year_opens(cast, year):
    with pytest.raises(ProgrammingError, match="Cannot update"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE coupons_programyear SET region_division_prefixes = '[\"11\"]'")
    assert ProgramYear.objects.get(year=YEAR).region_division_prefixes == ["3301"]


# --- Flags staff confirm ---------------------------------------------------------------------------


@pytest.fixture
def revision_year(cast) -> ProgramYear:
    """2026 under the June 2025 revision: 50% for a small or medium enterprise."""
    rule_set = rule_set_create(
        name=REVISION_2025_06["name"], ceiling_bp=REVISION_2025_06["ceiling_bp"], rules=REVISION_2025_06["rules"]
    )
    program_year_create(year=YEAR, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN, rule_set=rule_set)
    return program_year_open(year=YEAR, actor=cast.admin)


def test_a_declared_flag_staff_did_not_confirm_counts_as_false(cast, revision_year):
    enterprise_flags_declare(enterprise=cast.enterprise, actor=cast.member, small_or_medium=True)
    application = submit(cast, fee_fen=FEE_FEN)
    assert (application.rate_bp, application.priced_small_or_medium) == (3000, False)


def test_a_flag_counts_once_staff_confirm_it(cast, revision_year):
    enterprise_flags_declare(enterprise=cast.enterprise, actor=cast.member, small_or_medium=True)
    enterprise_verify(enterprise=cast.enterprise, actor=cast.reviewer, flags={"small_or_medium": True})
    application = submit(cast, fee_fen=FEE_FEN)
    assert (application.rate_bp, application.priced_small_or_medium) == (5000, True)
    assert application.priced_contracted_total_fen == FEE_FEN


def test_staff_confirming_a_flag_the_enterprise_never_declared_gives_nothing(cast, revision_year):
    enterprise_verify(enterprise=cast.enterprise, actor=cast.reviewer, flags={"small_or_medium": True})
    assert submit(cast, fee_fen=FEE_FEN).rate_bp == 3000


def test_a_changed_flag_waits_for_staff_and_open_grants_keep_their_rate(cast, revision_year):
    # given a grant at 50% for a confirmed small enterprise
    enterprise_flags_declare(enterprise=cast.enterprise, actor=cast.member, small_or_medium=True)
    enterprise_verify(enterprise=cast.enterprise, actor=cast.reviewer, flags={"small_or_medium": True})
    grant = grant_for(cast, fee_fen=FEE_FEN, amount_fen=100_000)
    assert grant.rate_bp == 5000
    # when the enterprise withdraws the flag and declares it again
    enterprise_flags_declare(enterprise=cast.enterprise, actor=cast.member, small_or_medium=False)
    changed = enterprise_flags_declare(enterprise=cast.enterprise, actor=cast.member, small_or_medium=True)
    # then the flag waits for staff again, and the grant keeps its rate
    assert (changed.small_or_medium, changed.small_or_medium_verified) == (True, False)
    assert submit(cast, fee_fen=FEE_FEN).rate_bp == 3000
    grant.refresh_from_db()
    assert grant.rate_bp == 5000


def test_who_declared_and_who_verified_which_flags_is_recorded(cast, year):
    enterprise_flags_declare(enterprise=cast.enterprise, actor=cast.member, foundation_model_developer=True)
    enterprise_verify(enterprise=cast.enterprise, actor=cast.reviewer, flags={"foundation_model_developer": True})
    enterprise_verify(enterprise=cast.enterprise, actor=cast.reviewer)  # Names no flag: not recorded.
    events = list(EnterpriseFlagsEvent.objects.filter(enterprise=cast.enterprise))
    assert [(e.action, e.flags, e.actor_id) for e in events] == [
        ("declared", {"foundation_model_developer": True}, cast.member.pk),
        ("verified", {"foundation_model_developer": True}, cast.reviewer.pk),
    ]
    with pytest.raises(ProgrammingError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_enterpriseflagsevent SET flags = '{}'")


def test_only_members_declare_and_only_reviewers_verify(cast, year, db_snapshot):
    for actor in (cast.reviewer, cast.clerk, UserFactory(enterprise=EnterpriseFactory())):
        refused(
            db_snapshot,
            PermissionDenied,
            enterprise_flags_declare,
            enterprise=cast.enterprise,
            actor=actor,
            small_or_medium=True,
        )
    for actor in (cast.member, cast.approver, cast.finance):
        refused(db_snapshot, PermissionDenied, enterprise_verify, enterprise=cast.enterprise, actor=actor, flags={})


@pytest.mark.parametrize("flags", [{"small_or_medium": "yes"}, {"small_or_medium": 1}, {"rich": True}])
def test_verify_refuses_bad_flags(cast, year, db_snapshot, flags):
    refused(
        db_snapshot, ValidationFailed, enterprise_verify, enterprise=cast.enterprise, actor=cast.reviewer, flags=flags
    )


def test_a_registered_model_declared_needs_its_filing_number(cast, year, db_snapshot):
    refused(
        db_snapshot,
        ValidationFailed,
        enterprise_flags_declare,
        enterprise=cast.enterprise,
        actor=cast.member,
        has_registered_model=True,
    )


def test_only_a_verified_staff_flagged_foundation_model_developer_may_have_a_relaxed_cap(cast, year):
    assert not enterprise_is_verified_foundation_model_developer(cast.enterprise)
    declared = enterprise_flags_declare(enterprise=cast.enterprise, actor=cast.member, foundation_model_developer=True)
    assert not enterprise_is_verified_foundation_model_developer(declared)
    confirmed = enterprise_verify(
        enterprise=cast.enterprise, actor=cast.reviewer, flags={"foundation_model_developer": True}
    )
    assert enterprise_is_verified_foundation_model_developer(confirmed)
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(status=Enterprise.Status.SUSPENDED)
    assert not enterprise_is_verified_foundation_model_developer(Enterprise.objects.get(pk=cast.enterprise.pk))


# --- The filed model an application relies on -------------------------------------------------------


def filing(cast, number: str = "Zhejiang-202401", *, verified: bool = True) -> ModelFiling:
    recorded = model_filing_record(
        filing_number=number, model_name="Tongyi", holder_name="A third party", actor=cast.reviewer
    )
    second_reviewer = UserFactory(roles=[Role.REVIEWER])  # Four eyes: not the reviewer who recorded it.
    return model_filing_verify(filing=recorded, actor=second_reviewer) if verified else recorded


def test_maas_on_a_verified_third_party_filing_gets_the_registered_model_rate(cast, year):
    relied_on = filing(cast)
    application = submit(cast, purpose="maas", compute_source="other", model_filing_number="Zhejiang-202401")
    assert (application.rate_bp, application.model_filing_id, application.priced_has_registered_model) == (
        3000,
        relied_on.pk,
        True,
    )


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded, not verified", "not in the register"])
def test_maas_on_a_filing_staff_did_not_verify_is_priced_without_it(cast, year, recorded):
    if recorded:
        filing(cast, verified=False)
    application = submit(cast, purpose="maas", compute_source="other", model_filing_number="Zhejiang-202401")
    assert (application.rate_bp, application.model_filing_id, application.model_filing_number) == (
        2000,
        None,
        "Zhejiang-202401",
    )


def test_the_enterprises_own_declared_model_is_not_enough(cast, year):
    enterprise_flags_declare(
        enterprise=cast.enterprise, actor=cast.member, has_registered_model=True, model_filing_number="Zhejiang-9"
    )
    enterprise_verify(enterprise=cast.enterprise, actor=cast.reviewer, flags={"has_registered_model": True})
    assert submit(cast, purpose="maas", compute_source="other").rate_bp == 2000


def test_the_register_refuses_a_number_twice_and_needs_a_reviewer(cast, year, db_snapshot):
    filing(cast)
    refused(
        db_snapshot,
        ValidationFailed,
        model_filing_record,
        filing_number=" Zhejiang-202401 ",
        model_name="m",
        holder_name="h",
        actor=cast.reviewer,
    )
    refused(
        db_snapshot,
        PermissionDenied,
        model_filing_record,
        filing_number="Zhejiang-2",
        model_name="m",
        holder_name="h",
        actor=cast.member,
    )
    recorded = ModelFiling.objects.get()
    refused(db_snapshot, PermissionDenied, model_filing_verify, filing=recorded, actor=cast.approver)


# --- Sanctions ---------------------------------------------------------------------------------------


def test_a_sanction_is_decided_by_an_approver_other_than_its_requester(cast, db_snapshot):
    error = refused(
        db_snapshot,
        SanctionFourEyes,
        sanction_set,
        uscc=cast.enterprise.uscc,
        reason="r",
        valid_from=LONG_AGO,
        valid_until=None,
        requested_by=cast.approver,
        actor=cast.approver,
    )
    assert (error.code, error.http_status) == ("four_eyes", 403)
    for requester, decider in ((cast.finance, cast.approver), (cast.reviewer, cast.reviewer)):
        refused(
            db_snapshot,
            PermissionDenied,
            sanction_set,
            uscc=cast.enterprise.uscc,
            reason="r",
            valid_from=LONG_AGO,
            valid_until=None,
            requested_by=requester,
            actor=decider,
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Sanction.objects.create(
            uscc=cast.enterprise.uscc,
            reason="r",
            valid_from=LONG_AGO,
            requested_by=cast.approver,
            decided_by=cast.approver,
        )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"uscc": "91330100MA0000000X"}, "uscc"),
        ({"reason": "  "}, "reason"),
        ({"valid_until": dt.date(1999, 12, 31)}, "valid_until"),
    ],
)
def test_a_sanction_refuses_bad_terms(cast, db_snapshot, changes, field):
    terms = {"uscc": cast.enterprise.uscc, "reason": "r", "valid_from": LONG_AGO, "valid_until": None, **changes}
    error = refused(
        db_snapshot, ValidationFailed, sanction_set, requested_by=cast.reviewer, actor=cast.approver, **terms
    )
    assert field in error.errors


@pytest.mark.parametrize("party", ["enterprise", "provider"])
def test_a_sanctioned_party_is_refused_at_submission(cast, year, db_snapshot, party):
    sanction(cast, getattr(cast, party).uscc)
    error = refused(db_snapshot, NotEligible, submit, cast=cast)
    assert error.code == "not_eligible" and "sanctioned" in error.detail


def test_a_sanction_outside_its_period_does_not_refuse(cast, year):
    today = timezone.localdate()
    sanction(cast, cast.enterprise.uscc, valid_from=LONG_AGO, valid_until=dt.date(2001, 1, 1))
    sanction(cast, cast.enterprise.uscc, valid_from=today + dt.timedelta(days=400))
    application = submit(cast)
    to_reviewed(cast, application)
    application_approve(application=application, actor=cast.approver)


@pytest.mark.parametrize("party", ["enterprise", "provider"])
def test_a_sanction_decided_after_submission_stops_confirmation(cast, year, db_snapshot, party):
    application = submit(cast)
    sanction(cast, getattr(cast, party).uscc)
    refused(db_snapshot, NotEligible, application_confirm, application=application, actor=cast.clerk)


def test_a_sanction_decided_after_review_stops_approval(cast, year, db_snapshot):
    application = to_reviewed(cast, submit(cast))
    sanction(cast, cast.enterprise.uscc)
    refused(db_snapshot, NotEligible, application_approve, application=application, actor=cast.approver)
    assert not Grant.objects.exists()


def test_a_sanction_decided_after_the_grant_stops_redemption(cast, year, db_snapshot):
    grant = grant_for(cast)
    sanction(cast, cast.provider.uscc)
    refused(
        db_snapshot,
        NotEligible,
        redemption_create,
        grant=grant,
        bill_number="B-1",
        bill_amount_fen=10_000,
        actor=cast.clerk,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )


# --- Affiliation recorded after submission (the reproduced bug) -------------------------------------


def related(cast) -> None:
    related_party_add(uscc_a=cast.enterprise.uscc, uscc_b=cast.provider.uscc, actor=cast.reviewer)


def test_an_affiliation_recorded_after_submission_stops_confirmation(cast, year, db_snapshot):
    application = submit(cast)
    related(cast)
    error = refused(db_snapshot, AffiliatedProvider, application_confirm, application=application, actor=cast.clerk)
    assert error.code == "affiliated_provider"


def test_an_affiliation_recorded_after_review_stops_approval(cast, year, db_snapshot):
    application = to_reviewed(cast, submit(cast))
    related(cast)
    refused(db_snapshot, AffiliatedProvider, application_approve, application=application, actor=cast.approver)
    assert not Grant.objects.exists()


def test_an_affiliation_recorded_after_the_grant_stops_redemption(cast, year, db_snapshot):
    grant = grant_for(cast)
    related(cast)
    refused(
        db_snapshot,
        AffiliatedProvider,
        redemption_create,
        grant=grant,
        bill_number="B-1",
        bill_amount_fen=10_000,
        actor=cast.clerk,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )


def test_review_is_not_where_eligibility_is_judged_approval_is(cast, year):
    # A reviewer may still recommend; the approver's step is the one that refuses.
    application = submit(cast)
    application_confirm(application=application, actor=cast.clerk)
    related(cast)
    reviewed = application_review(
        application=application, actor=cast.reviewer, recommended_fen=1, **checked(application)
    )
    assert reviewed.status == Application.Status.REVIEWED


def test_the_database_refuses_a_filing_verified_by_its_recorder(cast):
    from django.db import IntegrityError, transaction
    from django.utils import timezone

    recorded = filing(cast, "Z-DB-1", verified=False)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelFiling.objects.filter(pk=recorded.pk).update(verified_by=cast.reviewer, verified_at=timezone.now())
