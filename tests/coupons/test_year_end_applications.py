"""Year end without strays: applications of Y still submitted, confirmed or reviewed when Y closes
are carried into Y+1's queue or withdrawn with a recorded reason, by Y's policy, exactly once."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction

from coupons import books
from coupons.models import Application, ApplicationEvent, Grant, ProgramYear
from coupons.services.applications import application_approve, application_confirm, application_review
from coupons.services.reset import annual_reset, program_year_close
from coupons.services.year_end import application_settle_at_close
from coupons.services.years import program_year_create, program_year_open, rule_set_create, year_end
from ledger.selectors import account_balance, account_get
from tests.concurrency import race
from tests.coupons.conftest import CAP_FEN, POOL_FEN, YEAR, grant_for, make_cast, submit, to_reviewed
from tests.evidence import checked

pytestmark = pytest.mark.django_db

AFTER = year_end(YEAR) + timedelta(seconds=1)
NEXT = YEAR + 1
OPEN_STATUSES = ("submitted", "confirmed", "reviewed")


def available_fen(code: str) -> int:
    return account_balance(account_id=account_get(code=code).pk).available_fen


def open_year_with(cast, **policy) -> ProgramYear:
    program_year_create(year=YEAR, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN, **policy)
    return program_year_open(year=YEAR, actor=cast.admin)


def applications_in_every_open_state(cast):
    """One submitted, one confirmed, one reviewed application (contracts of 100,000 fen at 30%),
    beside an approved one that the year end must leave alone."""
    submitted = submit(cast, fee_fen=100_000)
    confirmed = submit(cast, fee_fen=100_000)
    application_confirm(application=confirmed, actor=cast.clerk)
    reviewed = to_reviewed(cast, submit(cast, fee_fen=100_000), 20_000)
    approved = grant_for(cast, fee_fen=100_000).application
    return submitted, confirmed, reviewed, approved


def system_events(application: Application) -> list[ApplicationEvent]:
    return list(application.events.filter(actor__isnull=True))


def test_by_default_open_applications_are_carried_and_can_be_approved_next_year(cast):
    open_year_with(cast)
    submitted, confirmed, reviewed, approved = applications_in_every_open_state(cast)

    report = annual_reset(year=YEAR, now=AFTER)

    assert (report.applications_carried, report.applications_withdrawn) == (3, 0)
    for application, status in ((submitted, "submitted"), (confirmed, "confirmed"), (reviewed, "reviewed")):
        application.refresh_from_db()
        # Next year's rates are a copy of this year's: the terms and the review stand.
        assert (application.year.year, application.status, application.rate_bp) == (NEXT, status, 3000)
        [event] = system_events(application)
        assert event.action == "carried"
        assert f"{YEAR}" in event.note and f"{NEXT}" in event.note
    assert reviewed.recommended_fen == 20_000
    approved.refresh_from_db()
    assert (approved.year.year, approved.status) == (YEAR, "approved")
    assert ProgramYear.objects.get(year=NEXT).status == "open"

    # In Y+1 each is confirmed, reviewed and approved against Y+1's pool and the enterprise's Y+1 cap.
    application_confirm(application=submitted, actor=cast.clerk)
    application_review(application=submitted, actor=cast.reviewer, recommended_fen=30_000, **checked(submitted))
    application_review(application=confirmed, actor=cast.reviewer, recommended_fen=30_000, **checked(confirmed))
    pool_before = available_fen(books.pool_code(NEXT))
    for application in (submitted, confirmed, reviewed):
        application_approve(application=application, actor=cast.approver)
    grants = Grant.objects.filter(application__in=[submitted, confirmed, reviewed])
    assert {grant.year.year for grant in grants} == {NEXT}
    assert pool_before - available_fen(books.pool_code(NEXT)) == 80_000
    assert available_fen(books.cap_code(cast.enterprise.pk, NEXT)) == CAP_FEN - 80_000
    assert all(grant.expires_at == year_end(NEXT) for grant in grants)
    # Y's books are untouched by them.
    assert available_fen(books.pool_code(YEAR)) == POOL_FEN - 30_000


def test_a_carried_application_is_repriced_by_next_years_rates(cast):
    open_year_with(cast)
    reviewed = to_reviewed(cast, submit(cast, fee_fen=100_000))  # 30%: 30,000 requested and recommended.
    other = submit(cast, fee_fen=100_000, compute_source="other")  # 20%: 20,000.
    flat = rule_set_create(
        name="flat-25", ceiling_bp=2500, rules=[{"label": "Everything at 25%", "rate_bp": 2500, "when": {}}]
    )
    program_year_create(year=NEXT, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN, rule_set=flat)

    annual_reset(year=YEAR, now=AFTER)

    reviewed.refresh_from_db()
    # The rate fell: what was asked is cut to the new eligible amount, and the review was of other
    # terms, so the application goes back to the reviewers.
    assert (reviewed.year.year, reviewed.rate_bp, reviewed.rate_rule) == (NEXT, 2500, "Everything at 25%")
    assert (reviewed.eligible_fen, reviewed.requested_fen) == (25_000, 25_000)
    assert (reviewed.status, reviewed.recommended_fen, reviewed.reviewed_by_id) == ("confirmed", None, None)
    [event] = system_events(reviewed)
    assert "3000" in event.note and "2500" in event.note
    # The rate rose: never more than was asked.
    other.refresh_from_db()
    assert (other.rate_bp, other.eligible_fen, other.requested_fen, other.status) == (2500, 25_000, 20_000, "submitted")

    application_review(application=reviewed, actor=cast.reviewer, recommended_fen=25_000, **checked(reviewed))
    application_approve(application=reviewed, actor=cast.approver)
    assert Grant.objects.get(application=reviewed).amount_fen == 25_000


def test_an_application_next_years_rates_do_not_subsidise_is_withdrawn(cast):
    open_year_with(cast)
    application = submit(cast, fee_fen=100_000)  # Domestic compute.
    other_only = rule_set_create(
        name="other-only",
        ceiling_bp=2000,
        rules=[{"label": "Other", "rate_bp": 2000, "when": {"compute_sources": ["other"]}}],
    )
    program_year_create(year=NEXT, actor=cast.admin, rule_set=other_only)

    report = annual_reset(year=YEAR, now=AFTER)

    assert (report.applications_carried, report.applications_withdrawn) == (0, 1)
    application.refresh_from_db()
    assert (application.status, application.year.year) == ("withdrawn", YEAR)
    [event] = system_events(application)
    assert event.action == "withdrawn" and "no subsidy" in event.note


def test_a_withdraw_policy_withdraws_them_with_a_recorded_reason(cast):
    open_year_with(cast, open_applications_at_close="withdraw")
    submitted, confirmed, reviewed, approved = applications_in_every_open_state(cast)

    report = annual_reset(year=YEAR, now=AFTER)

    assert (report.applications_carried, report.applications_withdrawn) == (0, 3)
    for application in (submitted, confirmed, reviewed):
        application.refresh_from_db()
        assert (application.status, application.year.year) == ("withdrawn", YEAR)
        [event] = system_events(application)
        assert event.action == "withdrawn"
        assert f"{YEAR}" in event.note and "policy" in event.note
    assert Application.objects.get(pk=approved.pk).status == "approved"
    # The contracts are free again for an application in the new year.
    assert not Application.objects.filter(year__year=NEXT).exists()


def test_an_early_close_carries_too(cast):
    open_year_with(cast)
    application = submit(cast, fee_fen=100_000)
    program_year_close(year=YEAR, now=AFTER - timedelta(days=100), actor=cast.admin)
    annual_reset(year=YEAR, now=AFTER - timedelta(days=100))
    application.refresh_from_db()
    assert application.year.year == NEXT


def test_a_second_reset_and_a_resumed_one_settle_each_application_once(cast, db_snapshot):
    open_year_with(cast)
    applications = [submit(cast, fee_fen=100_000) for _ in range(4)]
    program_year_close(year=YEAR, now=year_end(YEAR))
    program_year_create(year=NEXT, actor=cast.admin)
    # A run that died after carrying one application...
    assert application_settle_at_close(application_id=applications[0].pk, year=YEAR) == "carried"
    assert application_settle_at_close(application_id=applications[0].pk, year=YEAR) is None
    # ...is finished by the next one, and a further run changes nothing.
    assert annual_reset(year=YEAR, now=AFTER).applications_carried == 3
    before = db_snapshot()
    assert annual_reset(year=YEAR, now=AFTER + timedelta(hours=1)).applications_carried == 0
    assert db_snapshot() == before
    for application in applications:
        assert ApplicationEvent.objects.filter(application=application, action="carried").count() == 1


def test_only_the_programs_own_steps_have_no_actor(cast):
    open_year_with(cast)
    application = submit(cast, fee_fen=100_000)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO coupons_applicationevent (application_id, action, actor_id, note, at) "
            "VALUES (%s, 'approved', NULL, '', now())",
            [application.pk],
        )


@pytest.mark.django_db(transaction=True)
def test_resets_racing_carry_each_application_once():
    cast = make_cast()
    open_year_with(cast)
    applications = [submit(cast, fee_fen=100_000) for _ in range(6)]

    results = race([lambda: annual_reset(year=YEAR, now=AFTER) for _ in range(6)])

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.applications_carried for r in results) == 6
    for application in applications:
        application.refresh_from_db()
        assert application.year.year == NEXT
        assert ApplicationEvent.objects.filter(application=application, action="carried").count() == 1
