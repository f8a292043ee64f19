"""The annual reset: close, release holds, lapse unused coupons (after grace), open the next year."""

from datetime import timedelta

import pytest

from config.errors import InvalidState, PermissionDenied
from coupons import books
from coupons.errors import GrantExpired, ProgramYearClosed
from coupons.models import Grant, ProgramYear, Redemption
from coupons.selectors import program_year_figures, program_year_figures_from_rows
from coupons.services.redemptions import redemption_capture, redemption_create
from coupons.services.reset import annual_reset, grant_expire, program_year_close
from coupons.services.years import year_end
from ledger.selectors import account_balance, account_get
from tests.concurrency import race
from tests.controls import grant_revoke
from tests.coupons.conftest import CAP_FEN, IN_YEAR, POOL_FEN, YEAR, grant_for, make_cast, open_year, submit
from tests.evidence import invoice

pytestmark = pytest.mark.django_db

AFTER = year_end(YEAR) + timedelta(seconds=1)


def balance(code: str):
    return account_balance(account_id=account_get(code=code).pk)


def program_in_every_state(cast):
    """Grants: untouched, partly captured with a hold, fully used, revoked; return them."""
    untouched = grant_for(cast, fee_fen=100_000)  # 30,000
    partly = grant_for(cast, fee_fen=200_000)  # 60,000
    hold = redemption_create(
        grant=partly, bill_number="H", bill_amount_fen=50_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )
    redemption_create(
        grant=partly,
        bill_number="C",
        bill_amount_fen=100_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )
    used = grant_for(cast, fee_fen=100_000, amount_fen=3_000)
    redemption_create(
        grant=used,
        bill_number="U",
        bill_amount_fen=10_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )
    revoked = grant_for(cast, fee_fen=100_000)
    grant_revoke(grant=revoked, actor=cast.approver, reason="cancelled", now=IN_YEAR)
    return untouched, partly, hold, used, revoked


def test_the_reset_lapses_every_remaining_fen_and_opens_the_next_year(cast, year):
    untouched, partly, hold, used, revoked = program_in_every_state(cast)
    remaining = sum(account_balance(account_id=g.account_id).available_fen for g in (untouched, partly, used))
    held = account_balance(account_id=partly.account_id).debits_pending

    report = annual_reset(year=YEAR, now=AFTER)

    assert (report.closed, report.holds_released, report.grants_expired) == (True, 1, 3)
    assert report.lapsed_fen == remaining + held == 30_000 + (60_000 - 30_000) + 0
    assert balance(books.lapsed_code(YEAR)).credits_posted == report.lapsed_fen
    hold.refresh_from_db()
    assert hold.status == Redemption.Status.VOIDED
    for grant in (untouched, partly, used):
        grant.refresh_from_db()
        assert grant.status == "expired"
        account = account_balance(account_id=grant.account_id)
        assert (account.available_fen, account.debits_pending) == (0, 0)
    revoked.refresh_from_db()
    assert revoked.status == "revoked"
    assert ProgramYear.objects.get(year=YEAR).status == "closed"
    next_year = ProgramYear.objects.get(year=YEAR + 1)
    assert (next_year.status, next_year.pool_fen, next_year.default_cap_fen) == ("open", POOL_FEN, CAP_FEN)
    assert balance(books.pool_code(YEAR + 1)).available_fen == POOL_FEN
    assert program_year_figures(year=YEAR) == program_year_figures_from_rows(year=YEAR)


def test_a_second_run_changes_nothing(cast, year, db_snapshot):
    program_in_every_state(cast)
    annual_reset(year=YEAR, now=AFTER)
    before = db_snapshot()
    report = annual_reset(year=YEAR, now=AFTER + timedelta(hours=1))
    assert (report.closed, report.holds_released, report.grants_expired, report.lapsed_fen) == (False, 0, 0, 0)
    assert not report.next_year_opened
    assert db_snapshot() == before


def test_redemption_at_the_edge_of_the_year(cast, year):
    grant = grant_for(cast)
    last_second = year_end(YEAR) - timedelta(seconds=1)
    made = redemption_create(
        grant=grant,
        bill_number="EDGE-1",
        bill_amount_fen=10_000,
        actor=cast.clerk,
        now=last_second,
        **invoice(cast.clerk),
    )
    assert made.status == "pending"
    with pytest.raises(GrantExpired):
        redemption_create(
            grant=grant,
            bill_number="EDGE-2",
            bill_amount_fen=10_000,
            actor=cast.clerk,
            now=year_end(YEAR),
            **invoice(cast.clerk),
        )


def test_grace_days_keep_grants_alive_until_they_pass(db):
    cast = make_cast()
    open_year(cast.admin, grace_days=10)
    grant = grant_for(cast)
    first = annual_reset(year=YEAR, now=AFTER)
    assert first.waiting_for_grace and first.grants_expired == 0
    # During the grace period the grant still redeems; applications are closed.
    redemption_create(
        grant=grant,
        bill_number="G",
        bill_amount_fen=10_000,
        actor=cast.clerk,
        capture=True,
        now=AFTER + timedelta(days=5),
        **invoice(cast.clerk),
    )
    with pytest.raises(ProgramYearClosed):
        submit(cast)
    later = year_end(YEAR) + timedelta(days=10)
    second = annual_reset(year=YEAR, now=later)
    assert (second.grants_expired, second.lapsed_fen) == (1, 300_000 - 3_000)
    assert Grant.objects.get(pk=grant.pk).status == "expired"


def test_a_superuser_may_close_early(cast, year):
    grant = grant_for(cast)
    with pytest.raises(PermissionDenied):
        program_year_close(year=YEAR, now=IN_YEAR, actor=cast.approver)
    program_year_close(year=YEAR, now=IN_YEAR, actor=cast.admin)
    grant.refresh_from_db()
    assert grant.expires_at == IN_YEAR  # No grace: the grants expire with the close.
    report = annual_reset(year=YEAR, now=IN_YEAR + timedelta(seconds=1))
    assert report.grants_expired == 1
    with pytest.raises(GrantExpired):
        redemption_create(
            grant=grant, bill_number="X", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
        )


def test_an_open_year_is_not_reset_before_it_ends(cast, year, db_snapshot):
    before = db_snapshot()
    with pytest.raises(InvalidState):
        annual_reset(year=YEAR, now=IN_YEAR)
    assert db_snapshot() == before


def test_an_administrator_prepared_next_year_is_opened_as_prepared(cast, year):
    from coupons.services.years import program_year_create

    program_year_create(year=YEAR + 1, actor=cast.admin, pool_fen=777_000, default_cap_fen=70_000)
    annual_reset(year=YEAR, now=AFTER)
    next_year = ProgramYear.objects.get(year=YEAR + 1)
    assert (next_year.status, next_year.pool_fen, next_year.default_cap_fen) == ("open", 777_000, 70_000)


def test_a_resumed_reset_expires_each_grant_once(cast, year):
    grants = [grant_for(cast, fee_fen=100_000) for _ in range(4)]
    program_year_close(year=YEAR, now=year_end(YEAR))
    # A run that died after expiring two grants...
    for grant in grants[:2]:
        assert grant_expire(grant_id=grant.pk, now=AFTER) == 30_000
    # ...is finished by the next one.
    report = annual_reset(year=YEAR, now=AFTER)
    assert report.grants_expired == 2
    assert balance(books.lapsed_code(YEAR)).credits_posted == 4 * 30_000
    assert grant_expire(grant_id=grants[0].pk, now=AFTER) is None


@pytest.mark.django_db(transaction=True)
def test_resets_started_at_the_same_moment_do_the_work_once():
    cast = make_cast()
    open_year(cast.admin)
    grants = [grant_for(cast, fee_fen=100_000) for _ in range(6)]
    hold = redemption_create(
        grant=grants[0], bill_number="H", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )

    results = race([lambda: annual_reset(year=YEAR, now=AFTER) for _ in range(8)])

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.grants_expired for r in results) == 6
    assert sum(r.holds_released for r in results) == 1
    assert sum(r.next_year_opened for r in results) == 1
    assert balance(books.lapsed_code(YEAR)).credits_posted == 6 * 30_000
    hold.refresh_from_db()
    assert hold.status == "voided"
    assert balance(books.pool_code(YEAR + 1)).credits_posted == POOL_FEN
    assert program_year_figures(year=YEAR) == program_year_figures_from_rows(year=YEAR)


def test_captures_after_the_reset_are_refused(cast, year):
    grant = grant_for(cast)
    hold = redemption_create(
        grant=grant, bill_number="H", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )
    annual_reset(year=YEAR, now=AFTER)
    with pytest.raises(InvalidState):
        redemption_capture(redemption=hold, actor=cast.clerk, now=AFTER)
