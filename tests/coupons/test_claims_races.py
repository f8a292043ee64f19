"""Claims raced by threads on real PostgreSQL connections: never a fen past the grant, one decision
per claim, one use per invoice across claims and redemptions."""

import datetime as dt

import pytest

from config.errors import InvalidState
from coupons import books
from coupons.errors import DuplicateInvoice, GrantExhausted
from coupons.models import Claim, Grant, Invoice, Redemption
from coupons.selectors import program_year_figures, program_year_figures_from_rows
from coupons.services.applications import (
    application_approve,
    application_confirm,
    application_review,
    application_submit,
)
from coupons.services.claims import claim_approve, claim_reject, claim_submit
from coupons.services.redemptions import redemption_create
from coupons.services.years import program_year_create, program_year_open, year_end
from ledger.selectors import account_balance, account_get
from tests.claims import evidence, grant_in, open_reimbursement_year
from tests.concurrency import race
from tests.coupons.conftest import IN_YEAR, YEAR, make_cast
from tests.evidence import checked, contract, document, invoice_number

pytestmark = pytest.mark.django_db(transaction=True)


def balance(code: str):
    return account_balance(account_id=account_get(code=code).pk)


def assert_figures_reconcile(year: int = YEAR) -> None:
    assert program_year_figures(year=year) == program_year_figures_from_rows(year=year)


def test_claims_racing_on_one_grant_never_pass_its_balance():
    # given: a grant of 100,000 fen and 36 claims of 8,333 fen each (three times the grant)
    cast = make_cast()
    open_reimbursement_year(cast.admin)
    grant = grant_in(cast, fee_fen=10_000_000, amount_fen=100_000)
    bills = [evidence(cast.member) for _ in range(36)]

    def submit(kwargs):
        return claim_submit(grant=grant, actor=cast.member, bill_amount_fen=27_778, now=IN_YEAR, **kwargs)

    # when
    results = race([lambda k=k: submit(k) for k in bills])

    # then: twelve whole coupons and the last 4 fen; the rest told the grant is exhausted
    winners = [r for r in results if isinstance(r, Claim)]
    losers = [r for r in results if not isinstance(r, Claim)]
    assert sorted(w.coupon_fen for w in winners) == [4] + [8_333] * 12
    assert all(isinstance(r, GrantExhausted) for r in losers), losers
    account = balance(grant.account.code)
    assert (account.debits_pending, account.available_fen) == (100_000, 0)
    assert balance(books.enterprise_code(cast.enterprise.pk)).credits_pending == 100_000
    assert Invoice.objects.filter(claim__isnull=False).count() == len(winners)  # A refused claim used no invoice.
    assert_figures_reconcile()


def test_approve_and_reject_of_one_claim_race_and_exactly_one_wins():
    cast = make_cast()
    open_reimbursement_year(cast.admin)
    grant = grant_in(cast, fee_fen=10_000_000, amount_fen=100_000)
    claims = [
        claim_submit(grant=grant, actor=cast.member, bill_amount_fen=10_000, now=IN_YEAR, **evidence(cast.member))
        for _ in range(8)
    ]
    calls = []
    for c in claims:
        calls.append(lambda c=c: claim_approve(claim=c, actor=cast.reviewer, now=IN_YEAR))
        calls.append(lambda c=c: claim_reject(claim=c, actor=cast.reviewer, reason="raced", now=IN_YEAR))

    results = race(calls)

    for index, c in enumerate(claims):
        approved, rejected = results[2 * index], results[2 * index + 1]
        outcomes = [r for r in (approved, rejected) if isinstance(r, Claim)]
        assert len(outcomes) == 1, (approved, rejected)
        assert isinstance(approved if outcomes[0] is rejected else rejected, InvalidState)
        c.refresh_from_db()
        assert c.status == outcomes[0].status
    approved_fen = sum(c.coupon_fen for c in Claim.objects.filter(status="approved"))
    account = balance(grant.account.code)
    assert (account.debits_pending, account.debits_posted) == (0, approved_fen)
    assert balance(books.enterprise_code(cast.enterprise.pk)).credits_posted == approved_fen
    assert Invoice.objects.filter(released_at__isnull=True).count() == Claim.objects.filter(status="approved").count()
    assert_figures_reconcile()


def _deduction_grant_next_year(cast) -> tuple[Grant, dt.datetime]:
    """A grant in YEAR + 1, a year of provider deduction, and a moment inside it."""
    next_year = YEAR + 1
    program_year_create(year=next_year, actor=cast.admin, pool_fen=1_000_000, default_cap_fen=400_000)
    program_year_open(year=next_year, actor=cast.admin)
    now = year_end(YEAR).replace(month=6)
    application = application_submit(
        actor=cast.member,
        provider=cast.provider,
        contract_number="NEXT-1",
        contract_fee_fen=1_000_000,
        compute_source="domestic",
        purpose="training",
        now=now,
        **contract(cast.member, next_year),
    )
    application_confirm(application=application, actor=cast.clerk)
    application_review(
        application=application, actor=cast.reviewer, recommended_fen=application.requested_fen, **checked(application)
    )
    application_approve(application=application, actor=cast.approver)
    return Grant.objects.get(application=application), now


def test_a_claim_and_a_redemption_race_for_one_invoice_and_one_wins():
    # given: a reimbursement year (claims) and the next, a provider-deduction year (redemptions)
    cast = make_cast()
    open_reimbursement_year(cast.admin)
    claim_grant = grant_in(cast)
    redemption_grant, next_year_now = _deduction_grant_next_year(cast)
    rounds = 6
    numbers = [invoice_number() for _ in range(rounds)]
    claim_evidence = [evidence(cast.member, number) for number in numbers]
    center_invoices = [document(cast.clerk, "invoice") for _ in range(rounds)]

    def claim(i: int) -> Claim:
        return claim_submit(
            grant=claim_grant, actor=cast.member, bill_amount_fen=10_000, now=IN_YEAR, **claim_evidence[i]
        )

    def redeem(i: int) -> Redemption:
        return redemption_create(
            grant=redemption_grant,
            bill_number=f"B{i}",
            bill_amount_fen=10_000,
            actor=cast.clerk,
            now=next_year_now,
            invoice_number=numbers[i],
            invoice_document=center_invoices[i],
        )

    calls = []
    for i in range(rounds):
        calls += [lambda i=i: claim(i), lambda i=i: redeem(i)]

    # when
    results = race(calls)

    # then: each invoice was used once, by whichever committed first; the other was refused and left nothing
    for i in range(rounds):
        pair = results[2 * i : 2 * i + 2]
        assert sum(isinstance(r, (Claim, Redemption)) for r in pair) == 1, pair
        assert sum(isinstance(r, DuplicateInvoice) for r in pair) == 1, pair
        assert Invoice.objects.filter(number=numbers[i]).count() == 1
    claims_won = Claim.objects.count()
    redemptions_won = Redemption.objects.count()
    assert claims_won + redemptions_won == rounds
    assert balance(claim_grant.account.code).debits_pending == claims_won * 3_000
    assert balance(redemption_grant.account.code).debits_pending == redemptions_won * 3_000
    assert_figures_reconcile(YEAR)
    assert_figures_reconcile(YEAR + 1)
