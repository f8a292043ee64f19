"""Grants valid for a number of months from issue (a year's `grant_validity` = `months`): they outlive
their year's close, still redeem until they expire, and then lapse into `lapsed:Y` exactly once."""

import datetime as dt
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from coupons import books
from coupons.errors import GrantExpired, ProgramYearClosed
from coupons.models import Grant, ProgramYear, Redemption
from coupons.selectors import program_year_figures, program_year_figures_from_rows
from coupons.services.audit import audit_execute, audit_run_create
from coupons.services.grants import grant_expires_at, grants_expire_due, months_after
from coupons.services.redemptions import redemption_capture, redemption_create
from coupons.services.reset import annual_reset, program_year_close
from coupons.services.years import PROGRAM_TIME_ZONE, program_year_create, program_year_open, year_end
from coupons.tasks import expire_grants_due
from ledger.models import Transfer
from ledger.selectors import account_balance, account_get
from tests.concurrency import race
from tests.controls import redemption_reverse
from tests.coupons.conftest import CAP_FEN, IN_YEAR, POOL_FEN, YEAR, grant_for, make_cast, submit
from tests.evidence import invoice

pytestmark = pytest.mark.django_db

AFTER = year_end(YEAR) + timedelta(seconds=1)
MONTHS = 12


def shanghai(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PROGRAM_TIME_ZONE)


def open_months_year(cast, *, months: int = MONTHS) -> ProgramYear:
    program_year_create(
        year=YEAR,
        actor=cast.admin,
        pool_fen=POOL_FEN,
        default_cap_fen=CAP_FEN,
        grant_validity="months",
        grant_validity_months=months,
    )
    return program_year_open(year=YEAR, actor=cast.admin)


@pytest.fixture
def months_year(cast):
    return open_months_year(cast)


def lapsed_credits_fen() -> int:
    return account_balance(account_id=account_get(code=books.lapsed_code(YEAR)).pk).credits_posted


@pytest.mark.parametrize(
    ("issued_at", "months", "expected"),
    [
        (shanghai(2026, 6, 15, 10, 30), 12, shanghai(2027, 6, 15, 10, 30)),
        (shanghai(2026, 1, 31, 9, 0), 1, shanghai(2026, 2, 28, 9, 0)),  # Clamped to the month's end.
        (shanghai(2027, 11, 30, 9, 0), 3, shanghai(2028, 2, 29, 9, 0)),  # A leap February.
        (shanghai(2026, 12, 31, 23, 59), 1, shanghai(2027, 1, 31, 23, 59)),
        (shanghai(2026, 3, 31, 0, 0), 36, shanghai(2029, 3, 31, 0, 0)),
        # 17:00 UTC on 31 January is already 1 February in Hangzhou: months count from there.
        (dt.datetime(2026, 1, 31, 17, 0, tzinfo=dt.UTC), 1, shanghai(2026, 3, 1, 1, 0)),
    ],
)
def test_months_are_calendar_months_in_shanghai_clamped_to_the_months_end(issued_at, months, expected):
    assert months_after(issued_at, months) == expected


def test_a_grant_of_a_months_year_expires_months_after_its_issue(cast, months_year):
    grant = grant_for(cast)
    assert abs(grant.expires_at - months_after(grant.issued_at, MONTHS)) < timedelta(seconds=5)
    moment = shanghai(2026, 8, 31, 12, 0)
    assert grant_expires_at(program_year=months_year, issued_at=moment) == shanghai(2027, 8, 31, 12, 0)


def test_a_grant_of_a_year_end_year_expires_at_year_end_plus_grace(cast):
    program_year_create(year=YEAR, actor=cast.admin, grace_days=10)
    program_year = program_year_open(year=YEAR, actor=cast.admin)
    assert grant_expires_at(program_year=program_year, issued_at=IN_YEAR) == year_end(YEAR) + timedelta(days=10)


def test_the_reset_leaves_valid_month_grants_and_their_holds_alone(cast, months_year):
    grant = grant_for(cast)
    last_minute = year_end(YEAR) - timedelta(minutes=1)
    hold = redemption_create(
        grant=grant, bill_number="H", bill_amount_fen=10_000, actor=cast.clerk, now=last_minute, **invoice(cast.clerk)
    )
    expires_at = grant.expires_at
    assert expires_at > AFTER

    report = annual_reset(year=YEAR, now=AFTER)

    assert (report.closed, report.grants_expired, report.holds_released, report.lapsed_fen) == (True, 0, 0, 0)
    assert not report.waiting_for_grace
    assert report.grants_outliving_the_year == 1
    grant.refresh_from_db()
    hold.refresh_from_db()
    assert (grant.status, grant.expires_at, hold.status) == ("active", expires_at, "pending")
    assert ProgramYear.objects.get(year=YEAR).status == "closed"
    # The closed year takes no new application, but its still-valid grant redeems and captures.
    with pytest.raises(ProgramYearClosed):
        submit(cast)
    redemption_capture(redemption=hold, actor=cast.clerk, now=AFTER)
    later = AFTER + timedelta(days=30)
    redemption_create(
        grant=grant,
        bill_number="LATE",
        bill_amount_fen=20_000,
        actor=cast.clerk,
        capture=True,
        now=later,
        **invoice(cast.clerk),
    )
    assert account_balance(account_id=grant.account_id).available_fen == 300_000 - 3_000 - 6_000
    # A second reset changes nothing.
    again = annual_reset(year=YEAR, now=later)
    assert (again.grants_expired, again.holds_released) == (0, 0)
    assert Grant.objects.get(pk=grant.pk).status == "active"


def test_an_early_close_does_not_shorten_month_grants(cast, months_year):
    grant = grant_for(cast)
    program_year_close(year=YEAR, now=IN_YEAR, actor=cast.admin)
    assert Grant.objects.get(pk=grant.pk).expires_at == grant.expires_at


def test_a_reversal_after_the_close_goes_back_to_a_still_valid_month_grant(cast, months_year):
    grant = grant_for(cast)
    captured = redemption_create(
        grant=grant,
        bill_number="C",
        bill_amount_fen=10_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )
    annual_reset(year=YEAR, now=AFTER)
    reversed_ = redemption_reverse(redemption=captured, actor=cast.approver, reason="dispute", now=AFTER)
    assert reversed_.reversed_to == "grant"
    assert account_balance(account_id=grant.account_id).available_fen == 300_000


def test_the_expiry_job_lapses_a_month_grant_once_and_voids_its_holds(cast, months_year, db_snapshot):
    grant = grant_for(cast)
    redemption_create(
        grant=grant,
        bill_number="C",
        bill_amount_fen=10_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )
    annual_reset(year=YEAR, now=AFTER)
    before_expiry = grant.expires_at - timedelta(seconds=1)
    hold = redemption_create(
        grant=grant, bill_number="H", bill_amount_fen=10_000, actor=cast.clerk, now=before_expiry, **invoice(cast.clerk)
    )
    # Not yet due: nothing happens.
    assert grants_expire_due(now=before_expiry) == 0
    assert Grant.objects.get(pk=grant.pk).status == "active"

    assert grants_expire_due(now=grant.expires_at) == 1

    grant.refresh_from_db()
    hold.refresh_from_db()
    assert (grant.status, grant.lapsed_fen, hold.status) == ("expired", 300_000 - 3_000, "voided")
    account = account_balance(account_id=grant.account_id)
    assert (account.available_fen, account.debits_pending) == (0, 0)
    assert lapsed_credits_fen() == 300_000 - 3_000
    with pytest.raises(GrantExpired):
        redemption_create(
            grant=grant,
            bill_number="X",
            bill_amount_fen=10_000,
            actor=cast.clerk,
            now=grant.expires_at,
            **invoice(cast.clerk),
        )
    snapshot = db_snapshot()
    assert grants_expire_due(now=grant.expires_at + timedelta(days=1)) == 0
    assert annual_reset(year=YEAR, now=grant.expires_at + timedelta(days=1)).grants_expired == 0
    assert db_snapshot() == snapshot
    assert Transfer.objects.filter(key=f"grant:{grant.application_id}:lapse").count() == 1
    assert program_year_figures(year=YEAR) == program_year_figures_from_rows(year=YEAR)


def test_a_month_grant_that_expires_while_its_year_is_open_lapses_too(cast):
    open_months_year(cast, months=1)
    grant = grant_for(cast)
    assert grant.expires_at < year_end(YEAR) + timedelta(days=40)
    assert grants_expire_due(now=grant.expires_at) == 1
    assert Grant.objects.get(pk=grant.pk).status == "expired"
    assert lapsed_credits_fen() == 300_000


def test_the_task_and_the_command_expire_due_grants(cast, months_year, django_capture_on_commit_callbacks):
    first, second = grant_for(cast), grant_for(cast, fee_fen=100_000)
    Grant.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert expire_grants_due() == [first.pk]
    assert len(callbacks) == 1  # Each grant's expiry is sent after the sweep's transaction commits.
    assert Grant.objects.get(pk=first.pk).status == "expired"
    assert Grant.objects.get(pk=second.pk).status == "active"

    out = io.StringIO()
    call_command("expire_grants", now=second.expires_at.isoformat(), stdout=out)
    assert "Expired 1 grant" in out.getvalue()
    assert Grant.objects.get(pk=second.pk).status == "expired"
    assert lapsed_credits_fen() == 300_000 + 30_000


def test_the_audit_allows_still_valid_month_grants_of_a_closed_year(cast, months_year):
    grant = grant_for(cast)
    redemption_create(
        grant=grant, bill_number="H", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )
    annual_reset(year=YEAR, now=AFTER)
    Redemption.objects.update(expires_at=timezone.now() + timedelta(days=1))  # The hold is live at audit time.

    def closed_years_check() -> dict:
        run = audit_execute(run_id=audit_run_create().pk)
        return next(check for check in run.checks if check["name"] == "closed_years_hold_nothing")

    assert closed_years_check()["ok"]
    # Once past its expiry and not yet lapsed, the same grant is a finding; after the job, it is not.
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert not closed_years_check()["ok"]
    grants_expire_due()
    assert closed_years_check()["ok"]


@pytest.mark.django_db(transaction=True)
def test_expiry_jobs_racing_lapse_each_grant_once():
    cast = make_cast()
    open_months_year(cast)
    grants = [grant_for(cast, fee_fen=100_000) for _ in range(6)]
    redemption_create(
        grant=grants[0], bill_number="H", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )
    due = max(grant.expires_at for grant in grants)

    results = race([lambda: grants_expire_due(now=due) for _ in range(6)])

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(results) == 6
    assert lapsed_credits_fen() == 6 * 30_000
    assert Transfer.objects.filter(reason="grant_lapse").count() == 6
    assert Redemption.objects.get().status == "voided"
