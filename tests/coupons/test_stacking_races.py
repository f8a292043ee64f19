"""Two programs on one ledger, raced by threads on real PostgreSQL connections: approvals and
submissions for one contract in two programs never pass the combined ceiling, and each program's
approvals racing on its own pool and caps never touch the other's accounts."""

import pytest

from coupons import books
from coupons.errors import CapExceeded, PoolExhausted, StackingCeiling
from coupons.models import DEFAULT_PROGRAM, Application, Grant, ProgramYear
from coupons.selectors import program_year_figures, program_year_figures_from_rows
from coupons.services.applications import application_approve
from coupons.services.audit import check_stacking_within_ceiling
from coupons.services.stacking import stacking_rule_create
from ledger.selectors import account_balance, account_get
from tests.concurrency import race
from tests.coupons.conftest import YEAR, make_cast, open_year, submit, to_reviewed
from tests.coupons.test_stacking import DISTRICT, ELIGIBLE_FEN, FEE_FEN, district_program

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 8
CEILING_BP = 4000  # 40% of the fee together: 4,000,000 fen, less than the two 30% requests.


def balance(code: str):
    return account_balance(account_id=account_get(code=code).pk)


def test_approvals_of_one_contract_in_two_programs_at_once_never_pass_the_combined_ceiling():
    # given: every round, a contract whose city and district applications were each submitted for
    # 30% of its fee under a 60% rule, then a 40% rule joined the same programs
    cast = make_cast()
    open_year(cast.admin, pool_fen=1_000_000_000, cap_fen=500_000_000)
    district_program(cast.admin, pool_fen=1_000_000_000, cap_fen=500_000_000)
    rule = {"actor": cast.admin, "programs": [DEFAULT_PROGRAM, DISTRICT]}
    stacking_rule_create(name="city+district", share_bp=6000, **rule)
    pairs = []
    for i in range(ROUNDS):
        number = f"RACE-{i}"
        pairs.append(
            [
                to_reviewed(cast, submit(cast, fee_fen=FEE_FEN, number=number)),
                to_reviewed(cast, submit(cast, fee_fen=FEE_FEN, number=number, program=DISTRICT)),
            ]
        )
    stacking_rule_create(name="city+district tightened", share_bp=CEILING_BP, **rule)
    ceiling_fen = FEE_FEN * CEILING_BP // 10_000

    for city, district in pairs:
        # when: both approvals at once, in two threads
        results = race(
            [
                lambda a=city: application_approve(application=a, actor=cast.approver),
                lambda a=district: application_approve(application=a, actor=cast.approver2),
            ]
        )

        # then: one was granted its 30%, the other what is left of the 40%, never more
        assert not any(isinstance(r, Exception) for r in results), results
        amounts = sorted(Grant.objects.filter(application__in=[city, district]).values_list("amount_fen", flat=True))
        assert amounts == [ceiling_fen - ELIGIBLE_FEN, ELIGIBLE_FEN]
        assert sum(amounts) == ceiling_fen
    assert check_stacking_within_ceiling() == ([], ROUNDS)


def test_submissions_of_one_contract_in_two_programs_at_once_never_ask_past_the_combined_ceiling():
    # given: a 40% rule; the enterprise applies for the contract in both programs for the whole 30%
    # at once (the contract's lock, taken before the enterprise's, orders them)
    cast = make_cast()
    open_year(cast.admin)
    district_program(cast.admin)
    stacking_rule_create(
        actor=cast.admin, name="city+district", programs=[DEFAULT_PROGRAM, DISTRICT], share_bp=CEILING_BP
    )
    ceiling_fen = FEE_FEN * CEILING_BP // 10_000

    for i in range(ROUNDS):
        number = f"RACE-{i}"
        results = race(
            [
                lambda n=number: submit(cast, fee_fen=FEE_FEN, number=n),
                lambda n=number: submit(cast, fee_fen=FEE_FEN, number=n, program=DISTRICT),
            ]
        )

        # then: both taken, the later lowered to what the earlier left
        assert not any(isinstance(r, Exception) for r in results), results
        requested = sorted(Application.objects.filter(contract_number=number).values_list("requested_fen", flat=True))
        assert requested == [ceiling_fen - ELIGIBLE_FEN, ELIGIBLE_FEN]


def test_a_contract_with_nothing_left_refuses_every_racer_but_the_first():
    # given: a 30% rule: the first application in either program takes all of it
    cast = make_cast()
    open_year(cast.admin)
    district_program(cast.admin)
    stacking_rule_create(actor=cast.admin, name="city+district", programs=[DEFAULT_PROGRAM, DISTRICT], share_bp=3000)

    results = race(
        [
            lambda: submit(cast, fee_fen=FEE_FEN, number="RACE"),
            lambda: submit(cast, fee_fen=FEE_FEN, number="RACE", program=DISTRICT),
        ]
    )

    assert sorted(type(r).__name__ for r in results) == ["Application", StackingCeiling.__name__], results
    assert Application.objects.filter(contract_number="RACE").count() == 1


def test_two_programs_approvals_racing_on_their_own_pools_and_caps_never_touch_each_other():
    # given: the city's pool is what runs out (1,000,000 fen), the district's cap is (300,000 fen),
    # and the same enterprise's approvals of 70,000 fen race in both at once
    cast = make_cast()
    open_year(cast.admin, pool_fen=1_000_000, cap_fen=100_000_000)
    district_program(cast.admin, pool_fen=100_000_000, cap_fen=300_000)
    count = 20
    city = [to_reviewed(cast, submit(cast, fee_fen=1_000_000), 70_000) for _ in range(count)]
    district = [to_reviewed(cast, submit(cast, fee_fen=1_000_000, program=DISTRICT), 70_000) for _ in range(count)]

    # when
    results = race(
        [
            lambda a=a: application_approve(application=a, actor=cast.approver)
            for pair in zip(city, district)
            for a in pair
        ]
    )

    # then: each program ran out of its own limit only, and its accounts carry only its own grants
    city_results, district_results = results[0::2], results[1::2]
    assert sum(not isinstance(r, Exception) for r in city_results) == 1_000_000 // 70_000
    assert all(isinstance(r, PoolExhausted) for r in city_results if isinstance(r, Exception)), city_results
    assert sum(not isinstance(r, Exception) for r in district_results) == 300_000 // 70_000
    assert all(isinstance(r, CapExceeded) for r in district_results if isinstance(r, Exception)), district_results
    city_year = ProgramYear.objects.get(program_id=DEFAULT_PROGRAM, year=YEAR)
    district_year = ProgramYear.objects.get(program_id=DISTRICT, year=YEAR)
    for year, winners, cap_fen in ((city_year, 14, 100_000_000), (district_year, 4, 300_000)):
        assert Grant.objects.filter(year=year).count() == winners
        assert set(Grant.objects.filter(year=year).values_list("application__program_id", flat=True)) == {
            year.program_id
        }
        assert balance(books.pool_code(year)).debits_posted == winners * 70_000
        cap = balance(books.cap_code(cast.enterprise.pk, year))
        assert (cap.debits_posted, cap.credits_posted) == (winners * 70_000, cap_fen)
        assert balance(books.cap_used_code(year)).credits_posted == winners * 70_000
        assert program_year_figures(year=YEAR, program=year.program_id) == program_year_figures_from_rows(
            year=YEAR, program=year.program_id
        )


def test_an_approval_and_a_submission_of_one_contract_in_two_programs_at_once_neither_deadlock_nor_pass():
    # given: a 40% rule and the city's application for its 30%, reviewed; the same enterprise applies
    # to the district for the contract while the city approves (the approval holds the contract's
    # lock and inserts a grant, which waits on the enterprise's row, which the submission locks)
    cast = make_cast()
    open_year(cast.admin, pool_fen=1_000_000_000, cap_fen=500_000_000)
    district_program(cast.admin)
    stacking_rule_create(
        actor=cast.admin, name="city+district", programs=[DEFAULT_PROGRAM, DISTRICT], share_bp=CEILING_BP
    )
    ceiling_fen = FEE_FEN * CEILING_BP // 10_000

    for i in range(ROUNDS):
        number = f"RACE-{i}"
        city = to_reviewed(cast, submit(cast, fee_fen=FEE_FEN, number=number))

        results = race(
            [
                lambda a=city: application_approve(application=a, actor=cast.approver),
                lambda n=number: submit(cast, fee_fen=FEE_FEN, number=n, program=DISTRICT),
            ]
        )

        # then: both went through, whichever came first, and the district asked for what is left
        assert not any(isinstance(r, Exception) for r in results), results
        assert results[1].requested_fen == ceiling_fen - ELIGIBLE_FEN


def test_bills_of_one_contract_redeemed_on_its_two_programs_grants_at_once_never_pass_its_fee():
    # given: every round, a contract granted by the city and the district under a 60% rule
    from coupons.errors import ContractExceeded
    from coupons.models import Redemption
    from coupons.services.audit import check_contract_bills_within_fee
    from coupons.services.redemptions import redemption_create
    from tests.coupons.conftest import IN_YEAR
    from tests.evidence import invoice

    cast = make_cast()
    open_year(cast.admin, pool_fen=1_000_000_000, cap_fen=500_000_000)
    district_program(cast.admin, pool_fen=1_000_000_000, cap_fen=500_000_000)
    stacking_rule_create(actor=cast.admin, name="city+district", programs=[DEFAULT_PROGRAM, DISTRICT], share_bp=6000)
    bill_fen = FEE_FEN * 6 // 10  # Two such bills would pass the fee.

    for i in range(ROUNDS):
        number = f"BILLS-{i}"
        grants = []
        for program in (DEFAULT_PROGRAM, DISTRICT):
            application = to_reviewed(cast, submit(cast, fee_fen=FEE_FEN, number=number, program=program))
            application_approve(application=application, actor=cast.approver)
            grants.append(Grant.objects.get(application=application))
        invoices = [invoice(cast.clerk) for _ in grants]

        # when: a bill on each program's grant at once, by id (the API's fast path)
        results = race(
            [
                lambda g=grant, n=k, paper=paper: redemption_create(
                    grant=g.pk, bill_number=f"{number}-B{n}", bill_amount_fen=bill_fen, actor=cast.clerk,
                    capture=True, now=IN_YEAR, **paper,
                )
                for k, (grant, paper) in enumerate(zip(grants, invoices, strict=True))
            ]
        )  # fmt: skip

        # then: one is redeemed, the other refused: the contract's bills never pass its fee
        assert sorted(type(r).__name__ for r in results) == [ContractExceeded.__name__, Redemption.__name__], results
    assert check_contract_bills_within_fee() == ([], ROUNDS)
