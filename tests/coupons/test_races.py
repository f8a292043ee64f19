"""The coupon program's money rules, raced by threads on real PostgreSQL connections."""

import pytest

from config.errors import InvalidState
from coupons import books
from coupons.errors import CapExceeded, GrantExhausted, PoolExhausted
from coupons.models import Application, Grant, Redemption
from coupons.selectors import program_year_figures, program_year_figures_from_rows
from coupons.services.applications import application_approve
from coupons.services.redemptions import redemption_capture, redemption_create, redemption_void
from ledger.selectors import account_balance, account_get
from tests.concurrency import THREADS, race
from tests.coupons.conftest import IN_YEAR, YEAR, grant_for, make_cast, open_year, submit, to_reviewed
from tests.evidence import invoice

pytestmark = pytest.mark.django_db(transaction=True)

ATTEMPTS = THREADS + 8


def balance(code: str):
    return account_balance(account_id=account_get(code=code).pk)


def reviewed_applications(cast, count: int, amount_fen: int) -> list[Application]:
    return [to_reviewed(cast, submit(cast, fee_fen=10_000_000), amount_fen) for _ in range(count)]


def assert_figures_reconcile() -> None:
    assert program_year_figures(year=YEAR) == program_year_figures_from_rows(year=YEAR)


def test_approvals_racing_for_the_last_of_the_pool():
    # given: a pool of 1,000,000 fen and 40 approvals of 70,000 racing (the cap is no constraint)
    cast = make_cast()
    open_year(cast.admin, pool_fen=1_000_000, cap_fen=100_000_000)
    applications = reviewed_applications(cast, ATTEMPTS, 70_000)

    # when
    results = race([lambda a=a: application_approve(application=a, actor=cast.approver) for a in applications])

    # then: exactly the 14 that fit won; the rest were told the pool is exhausted
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1_000_000 // 70_000
    assert all(isinstance(r, PoolExhausted) for r in losers), losers
    assert Grant.objects.count() == len(winners)
    assert set(Grant.objects.values_list("application_id", flat=True)) == {w.pk for w in winners}
    assert Application.objects.filter(status="approved").count() == len(winners)
    pool = balance(books.pool_code(YEAR))
    assert pool.debits_posted == 14 * 70_000 <= pool.credits_posted
    assert_figures_reconcile()


def test_approvals_for_one_enterprise_racing_for_the_last_of_its_cap():
    cast = make_cast()
    open_year(cast.admin, pool_fen=100_000_000, cap_fen=400_000)
    applications = reviewed_applications(cast, ATTEMPTS, 30_000)

    results = race([lambda a=a: application_approve(application=a, actor=cast.approver) for a in applications])

    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 400_000 // 30_000
    assert all(isinstance(r, CapExceeded) for r in results if isinstance(r, Exception))
    cap = balance(books.cap_code(cast.enterprise.pk, YEAR))
    assert cap.debits_posted == 13 * 30_000 <= cap.credits_posted == 400_000
    assert balance(books.pool_code(YEAR)).debits_posted == 13 * 30_000
    assert_figures_reconcile()


def test_redemptions_racing_on_one_grant_never_pass_its_balance():
    # given: a grant of 100,000 fen and bills whose coupons add up to three times that
    cast = make_cast()
    open_year(cast.admin)
    grant = grant_for(cast, fee_fen=10_000_000, amount_fen=100_000)
    bill_fen = 27_778  # 8,333 fen of coupon each at 30%; 36 bills carry 299,988 fen
    count = 36

    def redeem(i: int) -> Redemption:
        return redemption_create(
            grant=grant,
            bill_number=f"B{i}",
            bill_amount_fen=bill_fen,
            actor=cast.clerk,
            capture=i % 2 == 0,
            now=IN_YEAR,
            **invoice(cast.clerk),
        )

    results = race([lambda i=i: redeem(i) for i in range(count)])

    made = [r for r in results if not isinstance(r, Exception)]
    assert all(isinstance(r, GrantExhausted) for r in results if isinstance(r, Exception)), results
    assert sum(r.coupon_fen for r in made) == 100_000  # Every fen used, not one past.
    assert len(made) == 13  # Twelve full coupons of 8,333 and one of the last 4 fen.
    account = account_balance(account_id=grant.account_id)
    assert account.available_fen == 0
    assert account.debits_pending + account.debits_posted == 100_000
    assert_figures_reconcile()


def test_capture_and_void_racing_on_one_hold():
    cast = make_cast()
    open_year(cast.admin)
    grant = grant_for(cast)
    hold = redemption_create(
        grant=grant, bill_number="B1", bill_amount_fen=100_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )

    def capture() -> Redemption:
        return redemption_capture(redemption=hold, actor=cast.clerk, now=IN_YEAR)

    def void() -> Redemption:
        return redemption_void(redemption=hold, actor=cast.clerk)

    results = race([capture if i % 2 == 0 else void for i in range(THREADS)])

    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1, results
    assert all(isinstance(r, InvalidState) for r in results if isinstance(r, Exception))
    hold.refresh_from_db()
    account = account_balance(account_id=grant.account_id)
    assert account.debits_pending == 0
    if hold.status == "captured":
        assert account.debits_posted == 30_000
    else:
        assert (hold.status, account.debits_posted) == ("voided", 0)
    assert_figures_reconcile()


def test_one_contract_file_under_many_numbers_at_once_makes_one_application():
    """The same contract's bytes under different numbers, submitted at once by one enterprise: the
    enterprise's row lock orders the submissions, so the check that one file is one contract number
    cannot be slipped past by a race (only one application, the rest 409 `duplicate_contract`)."""
    from coupons.errors import DuplicateContract
    from tests.evidence import contract

    cast = make_cast()
    open_year(cast.admin)
    evidence = contract(cast.member, YEAR)

    results = race([lambda n=n: submit(cast, number=f"HZ-RACE-{n}", **evidence) for n in range(8)])

    created = [result for result in results if isinstance(result, Application)]
    assert len(created) == 1, results
    assert all(isinstance(result, DuplicateContract) for result in results if result not in created), results
    assert Application.objects.filter(contract_document=evidence["contract_document"]).count() == 1
