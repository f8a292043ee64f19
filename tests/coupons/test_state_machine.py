"""A hypothesis state machine over the whole program: apply, confirm, review, approve, redeem,
capture, void, expire, reverse, revoke and settle, in any order, with the program's invariants
checked after every step. A refusal with a stable code is fine; anything else fails the test."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from config.errors import ApplicationError
from coupons import books
from coupons.models import Application, Grant, Redemption
from coupons.policy import subsidy_fen
from coupons.selectors import program_year_figures, program_year_figures_from_rows
from coupons.services.applications import (
    application_approve,
    application_confirm,
    application_review,
    application_submit,
)
from coupons.services.redemptions import (
    redemption_capture,
    redemption_create,
    redemption_void,
    redemptions_expire_holds,
)
from coupons.services.settlements import settlement_create
from coupons.services.years import enterprise_cap_fen
from ledger.models import Account
from tests.controls import grant_revoke, redemption_reverse, settlement_pay
from tests.coupons.conftest import IN_YEAR, YEAR, make_cast, open_year
from tests.evidence import checked, contract, invoice
from tests.factories import EnterpriseFactory, UserFactory

POOL_FEN = 600_000
CAP_FEN = 250_000
fees = st.sampled_from([10_000, 99_999, 333_333, 500_000, 1_000_000])
fractions = st.sampled_from([1, 2, 3, 4])  # take 1/n of what is allowed


class CouponProgram(RuleBasedStateMachine):
    applications = Bundle("applications")
    redemptions = Bundle("redemptions")

    def __init__(self) -> None:
        super().__init__()
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.cast = make_cast()
        self.year = open_year(self.cast.admin, pool_fen=POOL_FEN, cap_fen=CAP_FEN)
        second = EnterpriseFactory()
        self.members = [self.cast.member, UserFactory(enterprise=second)]
        self.counter = 0

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self.atomic.__exit__(None, None, None)

    def attempt(self, call):
        """Run one service call in its own savepoint; an ApplicationError is an allowed refusal."""
        try:
            with transaction.atomic():
                return call()
        except ApplicationError:
            return None

    @rule(target=applications, member=st.integers(0, 1), fee=fees, domestic=st.booleans())
    def apply(self, member: int, fee: int, domestic: bool) -> object:
        self.counter += 1
        return self.attempt(
            lambda: application_submit(
                actor=self.members[member],
                provider=self.cast.provider,
                contract_number=f"C{self.counter}",
                contract_fee_fen=fee,
                compute_source="domestic" if domestic else "other",
                purpose="training",
                now=IN_YEAR,
                **contract(self.members[member], YEAR),
            )
        )

    @rule(application=applications, fraction=fractions)
    def advance(self, application: Application | None, fraction: int) -> None:
        """Take the application one step further: confirm, review or approve, by its status."""
        if application is None:
            return
        application.refresh_from_db()
        if application.status == "submitted":
            self.attempt(lambda: application_confirm(application=application, actor=self.cast.clerk))
        elif application.status == "confirmed":
            amount = max(1, application.requested_fen // fraction)
            self.attempt(
                lambda: application_review(
                    application=application, actor=self.cast.reviewer, recommended_fen=amount, **checked(application)
                )
            )
        elif application.status == "reviewed":
            amount = max(1, (application.recommended_fen or 1) // fraction)
            self.attempt(
                lambda: application_approve(application=application, actor=self.cast.approver, approved_fen=amount)
            )

    @rule(target=applications, member=st.integers(0, 1), fee=fees, fraction=fractions)
    def apply_through_approval(self, member: int, fee: int, fraction: int) -> object:
        """The whole way at once, so that grants (and the money rules) come early and often."""
        application = self.apply(member, fee, domestic=True)
        for _ in range(3):
            self.advance(application, fraction)
        return application

    @rule(target=redemptions, application=applications, bill=st.integers(1_000, 400_000), capture=st.booleans())
    def redeem(self, application: Application | None, bill: int, capture: bool) -> object:
        grant = Grant.objects.filter(application=application).first() if application is not None else None
        if grant is None:
            return None
        self.counter += 1
        return self.attempt(
            lambda: redemption_create(
                grant=grant,
                bill_number=f"B{self.counter}",
                bill_amount_fen=bill,
                actor=self.cast.clerk,
                capture=capture,
                now=IN_YEAR,
                **invoice(self.cast.clerk),
            )
        )

    @rule(redemption=redemptions)
    def capture(self, redemption: Redemption | None) -> None:
        if redemption is not None:
            self.attempt(lambda: redemption_capture(redemption=redemption, actor=self.cast.clerk, now=IN_YEAR))

    @rule(redemption=redemptions)
    def void(self, redemption: Redemption | None) -> None:
        if redemption is not None:
            self.attempt(lambda: redemption_void(redemption=redemption, actor=self.cast.clerk))

    @rule()
    def expire_holds(self) -> None:
        redemptions_expire_holds(now=IN_YEAR + timedelta(days=3650))

    @rule(redemption=redemptions)
    def reverse(self, redemption: Redemption | None) -> None:
        if redemption is not None:
            self.attempt(
                lambda: redemption_reverse(redemption=redemption, actor=self.cast.approver, reason="audit", now=IN_YEAR)
            )

    @rule(application=applications)
    def revoke(self, application: Application | None) -> None:
        grant = Grant.objects.filter(application=application).first() if application is not None else None
        if grant is not None:
            self.attempt(lambda: grant_revoke(grant=grant, actor=self.cast.approver, reason="revoked"))

    @rule(pay=st.booleans())
    def settle(self, pay: bool) -> None:
        settlement = self.attempt(lambda: settlement_create(provider=self.cast.provider, actor=self.cast.finance))
        if settlement is not None and pay:
            self.counter += 1
            self.attempt(
                lambda: settlement_pay(
                    settlement=settlement, actor=self.cast.finance, bank_reference=f"R{self.counter}"
                )
            )

    # --- invariants, checked after every step -------------------------------------------------

    @invariant()
    def no_limited_account_overdrawn_and_books_balance(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM ledger_account WHERE least(debits_pending, debits_posted, credits_pending,"
                " credits_posted) < 0 OR (debits_must_not_exceed_credits AND debits_pending + debits_posted >"
                " credits_posted)"
            )
            assert cursor.fetchone() == (0,)
            cursor.execute(
                "SELECT coalesce(sum(debits_posted - credits_posted), 0),"
                " coalesce(sum(debits_pending - credits_pending), 0) FROM ledger_account"
            )
            assert cursor.fetchone() == (0, 0)

    @invariant()
    def issued_within_pool_and_caps_and_figures_equal_the_domain_recomputation(self) -> None:
        # One read of the ledger's figures serves both checks (each step's figures, read once).
        figures = program_year_figures(year=YEAR)
        assert figures.issued_fen - figures.revoked_fen <= figures.pool_fen == POOL_FEN
        assert figures.available_fen >= 0
        assert figures == program_year_figures_from_rows(year=YEAR)
        enterprise_ids = [member.enterprise_id for member in self.members]
        totals = {
            row["enterprise_id"]: row
            for row in Grant.objects.filter(enterprise_id__in=enterprise_ids, year=self.year)
            .values("enterprise_id")
            .annotate(granted=Sum("amount_fen"), returned=Sum("revoked_fen"))
        }
        for enterprise_id in enterprise_ids:
            row = totals.get(enterprise_id, {})
            granted, returned = row.get("granted") or 0, row.get("returned") or 0
            assert granted - returned <= enterprise_cap_fen(enterprise_id=enterprise_id, year=self.year)

    @invariant()
    def every_redemption_within_rate_bill_and_contract(self) -> None:
        for redemption in Redemption.objects.select_related("grant__application"):
            assert 0 < redemption.coupon_fen <= subsidy_fen(redemption.bill_amount_fen, redemption.grant.rate_bp)
        # Each grant's open and captured bills, summed in one query for all grants.
        grants = Grant.objects.select_related("application").annotate(
            billed=fen_of_redemptions("bill_amount_fen", status__in=["pending", "captured"])
        )
        for grant in grants:
            assert grant.billed <= grant.application.contract_fee_fen

    @invariant()
    def every_grant_and_provider_matches_its_ledger_account(self) -> None:
        # Each grant's ledger account beside its redemptions' coupons by status, in one query.
        grants = Grant.objects.select_related("account").annotate(
            pending=fen_of_redemptions("coupon_fen", status="pending"),
            spent=fen_of_redemptions("coupon_fen", status__in=["captured", "reversed"]),
            returned=fen_of_redemptions("coupon_fen", reversed_to="grant"),
        )
        for grant in grants:
            account = grant.account
            assert account.debits_pending == grant.pending
            assert account.debits_posted == grant.spent + grant.revoked_fen + grant.lapsed_fen
            assert account.credits_posted == grant.amount_fen + grant.returned
            if grant.status == "revoked":
                assert account.credits_posted - account.debits_posted - account.debits_pending == 0
        provider = Account.objects.filter(code=books.provider_code(self.cast.provider.pk)).first()
        if provider is not None:
            coupons = Redemption.objects.filter(provider=self.cast.provider).aggregate(
                paid_lines=coupon_total(settlement__status="paid"),
                paid_clawbacks=coupon_total(clawback_settlement__status="paid"),
                spent=coupon_total(status__in=["captured", "reversed"]),
                reversed=coupon_total(status="reversed"),
            )
            assert provider.credits_posted == coupons["spent"] + coupons["paid_clawbacks"]
            assert provider.debits_posted == coupons["reversed"] + coupons["paid_lines"]


def fen_of_redemptions(field: str, **where: object) -> Coalesce:
    """A grant's sum of `field` over its redemptions matching `where` (0 when none do)."""
    condition = Q(**{f"redemptions__{name}": value for name, value in where.items()})
    return Coalesce(Sum(f"redemptions__{field}", filter=condition), 0)


def coupon_total(**where: object) -> Coalesce:
    """The sum of coupon_fen over the redemptions matching `where` (0 when none do)."""
    return Coalesce(Sum("coupon_fen", filter=Q(**where)), 0)


@pytest.mark.slow
@pytest.mark.django_db
def test_coupon_program_state_machine() -> None:
    run_state_machine_as_test(
        CouponProgram,
        settings=settings(
            max_examples=40,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
