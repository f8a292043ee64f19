"""The seed's other money measures as programs, configured as data (coupons/policy.py
`MEASURE_PROGRAMS`) on the engine's `basis`, `once_per_enterprise`, loan inputs and
`loan_rate_points_max_bp`.

The model filing reward (模型备案奖励): the evaluation and related expenses of a filed model, at most
500,000 yuan, once per enterprise, with the filing certificate. The financing interest subsidy
(贷款贴息): interest paid on a qualifying loan, at most 1.5 points of the loan rate and 50% of the
interest, at most 10 million yuan per enterprise a year, for projects of at least 50 million yuan.

Golden tables at and around every limit, through the real services; each refusal writes nothing;
the audit recomputes every grant's rate from the inputs its application stored.
"""

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from accounts.models import ModelFiling
from config.errors import AlreadyExists, InvalidState, PermissionDenied, ValidationFailed
from coupons.errors import CapExceeded, NotEligible
from coupons.models import Application, ApplicationEvent, Grant, Program, ProgramYear
from coupons.policy import (
    FINANCING_INTEREST_SUBSIDY,
    MEASURES_2024,
    MODEL_FILING_REWARD,
    ApplicationFacts,
    rate_for,
    rules_validate,
)
from coupons.services.applications import (
    application_approve,
    application_reject,
    application_submit,
    application_withdraw,
)
from coupons.services.audit import check_grant_rates_match_policy, check_granted_within_cap
from coupons.services.measures import measure_program_create
from evidence.models import Citation
from ledger.models import Transfer
from tests.claims import claim
from tests.coupons.conftest import IN_YEAR, YEAR, Cast, submit, to_reviewed
from tests.coupons.test_policy import FILING_NUMBER, set_flags
from tests.evidence import contract, document

pytestmark = pytest.mark.django_db

REWARD = "model-filing-reward"
INTEREST = "financing-interest"
POOL_FEN = 100_000_000_000  # One billion yuan: never the limit in these tests.
YUAN = 100


def written() -> tuple[int, ...]:
    """Everything a submission or an approval writes."""
    return (
        Application.objects.count(),
        ApplicationEvent.objects.count(),
        Grant.objects.count(),
        Transfer.objects.count(),
        Citation.objects.count(),
    )


@pytest.fixture
def reward(cast: Cast) -> ProgramYear:
    return measure_program_create(actor=cast.admin, measure=REWARD, year=YEAR, pool_fen=POOL_FEN, open_year=True)


@pytest.fixture
def interest(cast: Cast) -> ProgramYear:
    return measure_program_create(actor=cast.admin, measure=INTEREST, year=YEAR, pool_fen=POOL_FEN, open_year=True)


def apply_reward(cast: Cast, costs_fen: int, **extra: object) -> Application:
    """The enterprise applies for the reward on its evaluation costs, naming its verified filing and
    its filing certificate."""
    extra.setdefault("model_filing_number", FILING_NUMBER)
    extra.setdefault("filing_certificate_document", document(cast.member, "filing_certificate"))
    return submit(cast, fee_fen=costs_fen, program=REWARD, **extra)


def apply_interest(
    cast: Cast, interest_fen: int, *, loan_rate_bp: int = 450, investment_fen: int = 5_000_000_000, **extra: object
) -> Application:
    return submit(
        cast,
        fee_fen=interest_fen,
        program=INTEREST,
        loan_rate_bp=loan_rate_bp,
        project_investment_fen=investment_fen,
        **extra,
    )


def approve(cast: Cast, application: Application, approved_fen: int | None = None) -> Grant:
    application = to_reviewed(cast, application)
    application_approve(application=application, actor=cast.approver, approved_fen=approved_fen)
    return Grant.objects.get(application=application)


# --- The programs as data ------------------------------------------------------------------------


def test_each_measure_is_a_program_with_its_year_policy(cast):
    reward = measure_program_create(actor=cast.admin, measure=REWARD, year=YEAR, pool_fen=POOL_FEN)
    interest = measure_program_create(actor=cast.admin, measure=INTEREST, year=YEAR, pool_fen=POOL_FEN)
    assert (reward.program.basis, reward.program.once_per_enterprise) == ("evaluation_costs", True)
    assert (interest.program.basis, interest.program.once_per_enterprise) == ("loan_interest", False)
    assert reward.default_cap_fen == 500_000 * YUAN and interest.default_cap_fen == 10_000_000 * YUAN
    # Both pay the enterprise after it paid: claims, the reimbursement flow, not a center's deduction.
    assert reward.redemption_mode == interest.redemption_mode == "enterprise_reimbursement"
    assert reward.filing_certificate_required
    assert reward.status == interest.status == "draft"
    # The default program is untouched by them.
    assert Program.objects.get(slug="hangzhou-compute").basis == "compute_contract"


def test_a_measure_year_is_created_once_and_only_by_a_superuser(cast, reward):
    with pytest.raises(InvalidState):
        measure_program_create(actor=cast.admin, measure=REWARD, year=YEAR, pool_fen=POOL_FEN)
    with pytest.raises(PermissionDenied):
        measure_program_create(actor=cast.reviewer, measure=INTEREST, year=YEAR, pool_fen=POOL_FEN)
    with pytest.raises(ValidationFailed):
        measure_program_create(actor=cast.admin, measure="no-such-measure", year=YEAR, pool_fen=POOL_FEN)
    # The next year reuses the program and its rule set.
    following = measure_program_create(actor=cast.admin, measure=REWARD, year=YEAR + 1, pool_fen=POOL_FEN)
    assert following.program_id == REWARD and following.rule_set_id == reward.rule_set_id


def test_a_program_of_the_same_slug_with_another_basis_is_refused(cast):
    Program.objects.create(slug=INTEREST, name="x", name_en="x", authority="x", level="city")
    with pytest.raises(AlreadyExists):
        measure_program_create(actor=cast.admin, measure=INTEREST, year=YEAR, pool_fen=POOL_FEN)
    assert not ProgramYear.objects.filter(program_id=INTEREST).exists()


# --- The rule engine's new keys --------------------------------------------------------------------


def loan_facts(loan_rate_bp: int | None, investment_fen: int | None) -> ApplicationFacts:
    return ApplicationFacts(
        purpose="training",
        compute_source="other",
        has_registered_model=False,
        foundation_model_developer=False,
        small_or_medium=False,
        contracted_total_fen=1,
        loan_rate_bp=loan_rate_bp,
        project_investment_fen=investment_fen,
    )


# (loan rate, total investment) → rate on the interest paid: min(50%, 1.5 points / loan rate), floored.
LOAN_GOLDEN = [
    (450, 5_000_000_000, 3333),  # 4.5%: 1.5 points are a third of the interest, rounded down.
    (301, 5_000_000_000, 4983),  # Just above 3%: the 1.5 points bind.
    (300, 5_000_000_000, 5000),  # 3%: both limits are 50%.
    (299, 5_000_000_000, 5000),  # Below 3%: the 50% binds (1.5 points would be 50.16%).
    (100, 5_000_000_000, 5000),  # 1%: 1.5 points would be 150% of the interest.
    (1, 5_000_000_000, 5000),
    (10_000, 5_000_000_000, 150),  # A 100% loan: 1.5 points are 1.5% of the interest.
    (450, 4_999_999_999, 0),  # One fen short of 50 million yuan: no subsidy.
    (450, 50_000_000_000, 3333),
    (None, 5_000_000_000, 0),  # No loan rate: the rule capped in points of it cannot price.
    (450, None, 0),
]


@pytest.mark.parametrize(("loan_rate_bp", "investment_fen", "rate_bp"), LOAN_GOLDEN)
def test_the_interest_subsidy_rate_golden_table(loan_rate_bp, investment_fen, rate_bp):
    rates = FINANCING_INTEREST_SUBSIDY["rates"]
    rate = rate_for(
        rules=rates["rules"], ceiling_bp=rates["ceiling_bp"], facts=loan_facts(loan_rate_bp, investment_fen)
    )
    assert rate.rate_bp == rate_bp


def test_the_compute_rules_ignore_the_loan_inputs():
    """A compute rule set prices the same with or without the new facts (their defaults are None)."""
    for loan in (None, 450):
        rate = rate_for(rules=MEASURES_2024["rules"], ceiling_bp=3000, facts=loan_facts(loan, 1))
        assert (rate.rate_bp, rate.label) == (2000, "Other compute")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"loan_rate_points_max_bp": 0}, "loan_rate_points_max_bp"),
        ({"loan_rate_points_max_bp": 10_001}, "loan_rate_points_max_bp"),
        ({"loan_rate_points_max_bp": True}, "loan_rate_points_max_bp"),
        ({"loan_rate_points_max_bp": "150"}, "loan_rate_points_max_bp"),
        ({"when": {"project_investment_fen_min": 0}}, "project_investment_fen_min"),
        ({"when": {"project_investment_fen_min": 1.5}}, "project_investment_fen_min"),
        ({"points": 150}, "must have exactly label, rate_bp and when"),
    ],
)
def test_rules_validate_refuses_bad_new_keys(rule, message):
    base = {"label": "x", "rate_bp": 5000, "when": {}}
    with pytest.raises(ValidationFailed) as refused:
        rules_validate(rules=[{**base, **rule}], ceiling_bp=5000)
    assert message in str(refused.value.errors)


def test_the_measures_rules_are_valid():
    for measure in (MODEL_FILING_REWARD, FINANCING_INTEREST_SUBSIDY):
        rules_validate(rules=measure["rates"]["rules"], ceiling_bp=measure["rates"]["ceiling_bp"])


# --- The model filing reward ------------------------------------------------------------------------


@pytest.fixture
def filed(cast: Cast) -> Cast:
    """The enterprise's own model is filed and staff verified the filing."""
    set_flags(cast.enterprise, has_registered_model=True)
    return cast


# Evaluation costs → eligible (100%) and the largest approval the 500,000-yuan cap allows.
REWARD_GOLDEN = [
    (1, 1),
    (400_000 * YUAN, 400_000 * YUAN),
    (500_000 * YUAN - 1, 500_000 * YUAN - 1),
    (500_000 * YUAN, 500_000 * YUAN),
    (500_000 * YUAN + 1, 500_000 * YUAN),
    (2_000_000 * YUAN, 500_000 * YUAN),
]


@pytest.mark.parametrize(("costs_fen", "paid_fen"), REWARD_GOLDEN)
def test_the_reward_golden_table(filed, reward, costs_fen, paid_fen):
    application = apply_reward(filed, costs_fen)
    assert (application.rate_bp, application.eligible_fen) == (10_000, costs_fen)
    assert application.once_per_enterprise and application.loan_rate_bp is None
    if costs_fen > paid_fen:
        reviewed = to_reviewed(filed, application)
        before = written()
        with pytest.raises(CapExceeded) as refused:
            application_approve(application=reviewed, actor=filed.approver)
        assert refused.value.extra["available_fen"] == 500_000 * YUAN
        assert written() == before
        application_approve(application=reviewed, actor=filed.approver, approved_fen=paid_fen)
        grant = Grant.objects.get(application=application)
    else:
        grant = approve(filed, application)
    assert grant.amount_fen == paid_fen


def test_the_reward_is_once_per_enterprise(filed, reward):
    first = apply_reward(filed, 100_000 * YUAN)
    before = written()
    with pytest.raises(NotEligible) as refused:
        apply_reward(filed, 100_000 * YUAN)
    assert refused.value.extra["reason"] == "once_per_enterprise"
    assert written() == before
    approve(filed, first)
    with pytest.raises(NotEligible):
        apply_reward(filed, 1)
    assert written()[0] == before[0]


def test_a_withdrawn_or_rejected_reward_application_frees_the_enterprise(filed, reward):
    application_withdraw(application=apply_reward(filed, 100 * YUAN), actor=filed.member)
    application_reject(application=apply_reward(filed, 100 * YUAN), actor=filed.reviewer, reason="Wrong costs.")
    assert approve(filed, apply_reward(filed, 100 * YUAN)).amount_fen == 100 * YUAN


def test_the_reward_is_once_across_the_programs_years(filed, reward):
    approve(filed, apply_reward(filed, 100_000 * YUAN))
    measure_program_create(actor=filed.admin, measure=REWARD, year=YEAR + 1, pool_fen=POOL_FEN, open_year=True)
    next_year = IN_YEAR + dt.timedelta(days=365)
    before = written()
    with pytest.raises(NotEligible):
        application_submit(
            actor=filed.member,
            provider=filed.provider,
            contract_number="NEXT-YEAR",
            contract_fee_fen=100_000 * YUAN,
            compute_source="domestic",
            purpose="training",
            model_filing_number=FILING_NUMBER,
            filing_certificate_document=document(filed.member, "filing_certificate"),
            now=next_year,
            program=REWARD,
            **contract(filed.member, YEAR + 1),
        )
    assert written() == before
    # The year is open and the enterprise in its region: only the one-time rule refused it.
    assert ProgramYear.objects.get(program_id=REWARD, year=YEAR + 1).status == "open"


def test_the_database_keeps_one_live_reward_application_per_enterprise(filed, reward):
    """The partial unique index is the backstop the service's check cannot race past."""
    first = apply_reward(filed, 100 * YUAN)
    second = Application.objects.get(pk=first.pk)
    second.pk = None
    second.contract_number = "ANOTHER"
    with pytest.raises(IntegrityError, match="coupons_application_once_per_enterprise"), transaction.atomic():
        second.save()


def test_another_enterprise_gets_its_own_reward(filed, reward):
    from tests.coupons.conftest import make_cast

    other = make_cast()
    set_flags(other.enterprise, has_registered_model=True)
    approve(filed, apply_reward(filed, 100 * YUAN))
    other_application = apply_reward(other, 200 * YUAN)
    assert approve(other, other_application).amount_fen == 200 * YUAN


def test_the_reward_needs_a_verified_filing(cast, reward):
    before = written()
    with pytest.raises(ValidationFailed, match="No subsidy applies"):
        apply_reward(cast, 100 * YUAN, model_filing_number="")
    ModelFiling.objects.create(filing_number="UNVERIFIED-1", model_name="m", holder_name="h", recorded_by=cast.admin)
    with pytest.raises(ValidationFailed, match="No subsidy applies"):
        apply_reward(cast, 100 * YUAN, model_filing_number="UNVERIFIED-1")
    assert written() == before


def test_the_reward_needs_the_filing_certificate(filed, reward):
    before = written()
    with pytest.raises(ValidationFailed) as refused:
        apply_reward(filed, 100 * YUAN, filing_certificate_document=None)
    assert "filing_certificate_document" in refused.value.errors
    assert written() == before


def test_the_reward_takes_no_loan_inputs(filed, reward):
    before = written()
    for extra in ({"loan_rate_bp": 450}, {"project_investment_fen": 5_000_000_000}):
        with pytest.raises(ValidationFailed) as refused:
            apply_reward(filed, 100 * YUAN, **extra)
        assert set(refused.value.errors) == set(extra)
    assert written() == before


# --- The financing interest subsidy ------------------------------------------------------------------


# (interest paid, loan rate, total investment) → (rate, eligible) through submission.
INTEREST_GOLDEN = [
    (3_000_000, 450, 5_000_000_000, 3333, 999_900),
    (1_000_000, 300, 5_000_000_000, 5000, 500_000),
    (1_000_000, 301, 5_000_000_000, 4983, 498_300),
    (1_000_000, 299, 5_000_000_000, 5000, 500_000),
    (1_000_001, 299, 5_000_000_000, 5000, 500_000),  # Half a fen rounds down.
    (1_000_000, 600, 5_000_000_000, 2500, 250_000),
]


@pytest.mark.parametrize(("interest_fen", "loan_rate_bp", "investment_fen", "rate_bp", "eligible_fen"), INTEREST_GOLDEN)
def test_the_interest_subsidy_golden_table(
    cast, interest, interest_fen, loan_rate_bp, investment_fen, rate_bp, eligible_fen
):
    application = apply_interest(cast, interest_fen, loan_rate_bp=loan_rate_bp, investment_fen=investment_fen)
    assert (application.rate_bp, application.eligible_fen) == (rate_bp, eligible_fen)
    assert (application.loan_rate_bp, application.project_investment_fen) == (loan_rate_bp, investment_fen)
    assert not application.once_per_enterprise
    assert approve(cast, application).amount_fen == eligible_fen


def test_a_project_under_50_million_yuan_gets_nothing(cast, interest):
    before = written()
    with pytest.raises(ValidationFailed, match="No subsidy applies"):
        apply_interest(cast, 1_000_000, investment_fen=5_000_000_000 - 1)
    assert written() == before
    assert apply_interest(cast, 1_000_000, investment_fen=5_000_000_000).eligible_fen == 333_300


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"loan_rate_bp": None}, "loan_rate_bp"),
        ({"loan_rate_bp": 0}, "loan_rate_bp"),
        ({"loan_rate_bp": 10_001}, "loan_rate_bp"),
        ({"loan_rate_bp": True}, "loan_rate_bp"),
        ({"investment_fen": None}, "project_investment_fen"),
        ({"investment_fen": 0}, "project_investment_fen"),
    ],
)
def test_the_loan_inputs_are_required_and_checked(cast, interest, extra, field):
    before = written()
    with pytest.raises(ValidationFailed) as refused:
        apply_interest(cast, 1_000_000, **extra)
    assert set(refused.value.errors) == {field}
    assert written() == before


def test_ten_million_yuan_per_enterprise_a_year(cast, interest):
    cap_fen = 10_000_000 * YUAN
    # 20,000,000.02 yuan of interest on a 2% loan: 50% is 10,000,000.01 yuan, one fen over the cap.
    over = apply_interest(cast, 2 * cap_fen + 2, loan_rate_bp=200)
    assert over.eligible_fen == cap_fen + 1
    reviewed = to_reviewed(cast, over)
    before = written()
    with pytest.raises(CapExceeded) as refused:
        application_approve(application=reviewed, actor=cast.approver)
    assert refused.value.extra["available_fen"] == cap_fen
    assert written() == before
    application_approve(application=reviewed, actor=cast.approver, approved_fen=cap_fen)
    # The cap is spent: another loan's interest in the same year gets nothing more.
    more = to_reviewed(cast, apply_interest(cast, 1_000_000, loan_rate_bp=200))
    before = written()
    with pytest.raises(CapExceeded) as refused:
        application_approve(application=more, actor=cast.approver)
    assert refused.value.extra["available_fen"] == 0
    assert written() == before


def test_the_interest_subsidy_is_not_once_per_enterprise(cast, interest):
    approve(cast, apply_interest(cast, 1_000_000))
    assert approve(cast, apply_interest(cast, 1_000_000)).amount_fen == 333_300


def test_the_compute_program_takes_no_loan_inputs(cast, year):
    before = written()
    with pytest.raises(ValidationFailed) as refused:
        submit(cast, loan_rate_bp=450)
    assert set(refused.value.errors) == {"loan_rate_bp"}
    assert written() == before


def test_the_subsidy_is_paid_by_a_claim_on_the_interest_paid(cast, interest):
    """The enterprise paid the interest, and claims it with the bank's invoice and the proof of
    payment: the grant's rate applies to the bill, within the interest the application named."""
    grant = approve(cast, apply_interest(cast, 3_000_000))
    paid = claim(cast, grant, 1_500_000)
    assert paid.coupon_fen == 1_500_000 * 3333 // 10_000


# --- The audit --------------------------------------------------------------------------------------


def test_the_audit_recomputes_the_measures_rates(filed, reward, interest):
    approve(filed, apply_reward(filed, 300_000 * YUAN))
    approve(filed, apply_interest(filed, 3_000_000, loan_rate_bp=450))
    approve(filed, apply_interest(filed, 1_000_000, loan_rate_bp=250))
    findings, examined = check_grant_rates_match_policy()
    assert (findings, examined) == ([], 3)
    assert check_granted_within_cap()[0] == []
    # A loan input changed after pricing is found: the rate no longer follows from it.
    Application.objects.filter(loan_rate_bp=450).update(loan_rate_bp=300)
    findings, _ = check_grant_rates_match_policy()
    assert [finding["problems"] for finding in findings] == [["rate_not_from_policy"]]


# --- Races ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_reward_applications_racing_for_one_enterprise_make_one():
    """Many members' submissions at once for one enterprise: exactly one reward application lives,
    every other is refused as once_per_enterprise (the enterprise's lock orders them; the partial
    unique index is the backstop)."""
    from tests.concurrency import THREADS, race
    from tests.coupons.conftest import make_cast

    cast = make_cast()
    set_flags(cast.enterprise, has_registered_model=True)
    measure_program_create(actor=cast.admin, measure=REWARD, year=YEAR, pool_fen=POOL_FEN, open_year=True)
    evidence = [
        {**contract(cast.member, YEAR), "filing_certificate_document": document(cast.member, "filing_certificate")}
        for _ in range(THREADS)
    ]

    def call(index: int):  # type: ignore[no-untyped-def]
        return lambda: application_submit(
            actor=cast.member,
            provider=cast.provider,
            contract_number=f"EVAL-{index}",
            contract_fee_fen=100 * YUAN,
            compute_source="domestic",
            purpose="training",
            model_filing_number=FILING_NUMBER,
            now=IN_YEAR,
            program=REWARD,
            **evidence[index],
        )

    results = race([call(index) for index in range(THREADS)])
    made = [result for result in results if isinstance(result, Application)]
    refused = [result for result in results if isinstance(result, NotEligible)]
    assert len(made) == 1 and len(refused) == THREADS - 1, [
        r for r in results if not isinstance(r, (Application, NotEligible))
    ]
    assert Application.objects.filter(program_id=REWARD, enterprise=cast.enterprise).count() == 1


# --- Year end ---------------------------------------------------------------------------------------


def test_open_measure_applications_are_carried_at_their_terms(filed, reward, interest):
    """The annual reset carries open applications into the next year, re-priced by its rates (a copy
    of this year's) with the inputs they were priced with: the filing for the reward, the loan for
    the subsidy. The reward's one-time rule holds across the carry."""
    from coupons.services.reset import annual_reset
    from coupons.services.years import year_end

    rewarded = apply_reward(filed, 100_000 * YUAN)
    loan = apply_interest(filed, 3_000_000, loan_rate_bp=450)
    after = year_end(YEAR) + dt.timedelta(seconds=1)
    for measure in (REWARD, INTEREST):
        report = annual_reset(year=YEAR, now=after, program=measure)
        assert (report.applications_carried, report.applications_withdrawn) == (1, 0)
    for application, rate_bp, eligible_fen in ((rewarded, 10_000, 100_000 * YUAN), (loan, 3333, 999_900)):
        application.refresh_from_db()
        assert (application.year.year, application.status) == (YEAR + 1, "submitted")
        assert (application.rate_bp, application.eligible_fen) == (rate_bp, eligible_fen)
        assert approve(filed, application).year.year == YEAR + 1
    assert check_grant_rates_match_policy() == ([], 2)
