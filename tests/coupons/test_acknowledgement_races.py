"""Acknowledgements, disputes and their resolution raced against settlements and the deem job, by
threads on real PostgreSQL connections: each bill ends in one state, never two."""

from datetime import timedelta

import pytest

from config.errors import InvalidState
from coupons.models import Redemption, Settlement
from coupons.selectors import program_year_figures, program_year_figures_from_rows
from coupons.services.acknowledgements import (
    acknowledgements_deem_confirmed,
    redemption_acknowledge,
    redemption_dispute,
    redemption_dispute_resolve,
)
from coupons.services.redemptions import redemption_create
from coupons.services.settlements import settlement_create
from ledger.selectors import account_balance
from tests.concurrency import race
from tests.coupons.conftest import IN_YEAR, YEAR, Cast, grant_for, make_cast, open_year
from tests.evidence import invoice

pytestmark = pytest.mark.django_db(transaction=True)

A = Redemption.Acknowledgement
BILLS = 20
DEADLINE = IN_YEAR + timedelta(days=7)  # Every bill here is captured at IN_YEAR.
JUST_BEFORE = DEADLINE - timedelta(seconds=1)


def bills(cast: Cast, count: int = BILLS) -> list[Redemption]:
    grant = grant_for(cast, fee_fen=10_000_000, amount_fen=400_000)
    return [
        redemption_create(
            grant=grant,
            bill_number=f"B-{n}",
            bill_amount_fen=10_000,
            actor=cast.clerk,
            capture=True,
            now=IN_YEAR,
            **invoice(cast.clerk),
        )
        for n in range(count)
    ]


def assert_settlement_is_its_lines(settlement: Settlement) -> None:
    lines = Redemption.objects.filter(settlement=settlement)
    assert settlement.redemptions_count == lines.count()
    assert settlement.total_fen == sum(r.coupon_fen for r in lines)
    assert all(r.acknowledgement in (A.CONFIRMED, A.DEEMED_CONFIRMED, A.DISMISSED) for r in lines)


def test_disputes_racing_a_settlement_each_bill_is_disputed_or_settled_never_both():
    # given: bills whose window closes at DEADLINE; the enterprise disputes each just before it, and
    # finance settles at it (when silence would confirm them)
    cast = make_cast()
    open_year(cast.admin)
    redemptions = bills(cast)

    # when
    results = race(
        [lambda: settlement_create(provider=cast.provider, actor=cast.finance, now=DEADLINE)]
        + [
            lambda r=r: redemption_dispute(redemption=r, actor=cast.member, reason="Never ran.", now=JUST_BEFORE)
            for r in redemptions
        ]
    )

    # then: a dispute that won kept its bill out of the settlement; one that lost was refused (409)
    settled, disputes = results[0], results[1:]
    for redemption, outcome in zip(redemptions, disputes, strict=True):
        row = Redemption.objects.get(pk=redemption.pk)
        if isinstance(outcome, Exception):
            assert isinstance(outcome, InvalidState), outcome
            assert row.settlement_id is not None and row.acknowledgement == A.DEEMED_CONFIRMED
        else:
            assert row.settlement_id is None and row.acknowledgement == A.DISPUTED
    won = sum(not isinstance(o, Exception) for o in disputes)
    if isinstance(settled, Exception):  # Every dispute got there first.
        assert isinstance(settled, InvalidState) and won == BILLS
        assert not Settlement.objects.exists()
    else:
        assert_settlement_is_its_lines(settled)
        assert Settlement.objects.get().redemptions_count == BILLS - won


def test_acknowledgements_racing_the_deem_job_each_bill_is_confirmed_once():
    # given: bills acknowledged just before their deadline while two runs of the job deem at it
    cast = make_cast()
    open_year(cast.admin)
    redemptions = bills(cast)

    # when
    results = race(
        [lambda: acknowledgements_deem_confirmed(now=DEADLINE) for _ in range(2)]
        + [lambda r=r: redemption_acknowledge(redemption=r, actor=cast.member, now=JUST_BEFORE) for r in redemptions]
    )

    # then: each bill is confirmed by the enterprise or deemed by one run, and counted once
    deemed_counts, acknowledgements = results[:2], results[2:]
    assert all(isinstance(n, int) for n in deemed_counts), deemed_counts
    for redemption, outcome in zip(redemptions, acknowledgements, strict=True):
        row = Redemption.objects.get(pk=redemption.pk)
        if isinstance(outcome, Exception):
            assert isinstance(outcome, InvalidState), outcome
            assert row.acknowledgement == A.DEEMED_CONFIRMED and row.acknowledged_by is None
        else:
            assert row.acknowledgement == A.CONFIRMED and row.acknowledged_by == cast.member
    assert sum(deemed_counts) == Redemption.objects.filter(acknowledgement=A.DEEMED_CONFIRMED).count()
    assert sum(deemed_counts) == sum(isinstance(o, Exception) for o in acknowledgements)


def test_the_deem_job_run_many_times_at_once_deems_each_bill_once():
    cast = make_cast()
    open_year(cast.admin)
    bills(cast)

    counts = race([lambda: acknowledgements_deem_confirmed(now=DEADLINE) for _ in range(6)])

    assert all(isinstance(n, int) for n in counts), counts
    assert sum(counts) == BILLS
    assert acknowledgements_deem_confirmed(now=DEADLINE) == 0
    assert set(Redemption.objects.values_list("acknowledgement", flat=True)) == {A.DEEMED_CONFIRMED}


def test_resolutions_racing_a_settlement_an_upheld_bill_is_reversed_and_never_settled():
    # given: half the bills confirmed, half disputed; a reviewer upholds or dismisses each dispute
    # while finance settles
    cast = make_cast()
    open_year(cast.admin)
    redemptions = bills(cast)
    grant = redemptions[0].grant
    confirmed, disputed = redemptions[: BILLS // 2], redemptions[BILLS // 2 :]
    for r in confirmed:
        redemption_acknowledge(redemption=r, actor=cast.member, now=IN_YEAR)
    for r in disputed:
        redemption_dispute(redemption=r, actor=cast.member, reason="Never ran.", now=IN_YEAR)
    available_before = account_balance(account_id=grant.account_id).available_fen
    decisions = {r.pk: ("uphold" if i % 2 else "dismiss") for i, r in enumerate(disputed)}

    # when
    results = race(
        [lambda: settlement_create(provider=cast.provider, actor=cast.finance, now=IN_YEAR + timedelta(days=1))]
        + [
            lambda r=r: redemption_dispute_resolve(
                redemption=r, actor=cast.reviewer, decision=decisions[r.pk], note="Checked.", now=IN_YEAR
            )
            for r in disputed
        ]
    )

    # then: every resolution held; upheld bills are reversed and unsettled; the settlement holds the
    # confirmed bills and whichever dismissed ones it saw, to the fen
    assert not any(isinstance(r, Exception) for r in results), results
    settlement = results[0]
    assert_settlement_is_its_lines(settlement)
    lines = set(Redemption.objects.filter(settlement=settlement).values_list("pk", flat=True))
    assert {r.pk for r in confirmed} <= lines
    upheld_fen = 0
    for r in disputed:
        row = Redemption.objects.get(pk=r.pk)
        if decisions[r.pk] == "uphold":
            assert row.status == Redemption.Status.REVERSED and row.acknowledgement == A.UPHELD
            assert row.settlement_id is None and row.reversed_by == cast.reviewer
            upheld_fen += row.coupon_fen
        else:
            assert row.status == Redemption.Status.CAPTURED and row.acknowledgement == A.DISMISSED
    assert account_balance(account_id=grant.account_id).available_fen == available_before + upheld_fen
    assert program_year_figures(year=YEAR) == program_year_figures_from_rows(year=YEAR)
