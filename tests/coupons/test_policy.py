"""Subsidy-rate policy as data.

The golden table is the municipal measures' sentence, case by case, through the real submission
service: "依托经备案的生成式多模态基础大模型进行模型服务（MaaS）、智能体开发等应用的企业补贴比例不超过
算力合同费用的30%，使用国产算力设施开展模型训练、推理和应用的企业补贴比例不超过算力合同费用的30%，使用
其他算力设施的企业补贴比例不超过算力合同费用的20%。" Then the rule engine on its own, the June 2025
revision written as data only, the validation of rule sets, and their immutability in the database.
"""

import copy

import pytest
from django.db import ProgrammingError, connection, transaction
from django.utils import timezone

from accounts.models import Enterprise, ModelFiling
from config.errors import ValidationFailed
from coupons.models import Application, RateRuleSet
from coupons.policy import MEASURES_2024, REVISION_2025_06, ApplicationFacts, rate_for, rules_validate
from coupons.services.applications import application_submit, application_withdraw
from coupons.services.years import program_year_create, program_year_open, rule_set_create, rule_set_default, year_end
from tests.coupons.conftest import CAP_FEN, POOL_FEN, YEAR
from tests.coupons.conftest import submit as submit_as
from tests.evidence import contract
from tests.factories import EnterpriseFactory, UserFactory

pytestmark = pytest.mark.django_db

# The labels of the 2024 rules, written out: the golden table does not read them from the data it tests.
MODEL_SERVICES = "Model services on a registered foundation model (MaaS, agents, applications)"
DOMESTIC = "Domestic compute"
OTHER = "Other compute"
SME_REVISION = "Small or medium enterprise, contracts at most 500,000 yuan in the year"

FEE_FEN = 333_333  # 30% is 99,999.9 fen and 20% is 66,666.6: both round down.
HALF_A_MILLION_YUAN_FEN = 50_000_000


FILING_NUMBER = "Zhejiang-202401"


def set_flags(enterprise: Enterprise, **flags: object) -> None:
    """The enterprise declares the flags and staff confirm them; a registered model is its own
    filing, verified in the register, which its applications then name."""
    for name, value in flags.items():
        setattr(enterprise, name, value)
        setattr(enterprise, f"{name}_verified", value)
    if enterprise.has_registered_model:
        enterprise.model_filing_number = FILING_NUMBER
        ModelFiling.objects.get_or_create(
            filing_number=FILING_NUMBER,
            defaults={
                "model_name": "A model",
                "holder_name": enterprise.name,
                "recorded_by": UserFactory(),
                "verified_by": UserFactory(),  # Four eyes: not the reviewer who recorded it.
                "verified_at": timezone.now(),
            },
        )
    enterprise.save()


def submit(cast, **extra: object) -> Application:  # type: ignore[no-untyped-def]
    """Submit as the cast's enterprise, naming its own filing when it has a registered model."""
    if cast.enterprise.has_registered_model:
        extra.setdefault("model_filing_number", FILING_NUMBER)
    return submit_as(cast, **extra)


def facts(**overrides: object) -> ApplicationFacts:
    values: dict[str, object] = {
        "purpose": "training",
        "compute_source": "other",
        "has_registered_model": False,
        "foundation_model_developer": False,
        "small_or_medium": False,
        "contracted_total_fen": 1_000_000,
    }
    return ApplicationFacts(**{**values, **overrides})  # type: ignore[arg-type]


def rule(rate_bp: int, label: str = "a rule", **when: object) -> dict[str, object]:
    return {"label": label, "rate_bp": rate_bp, "when": when}


# --- The 2024 measures, through application_submit ------------------------------------------------

GOLDEN_TABLE = [
    # registered model, purpose, compute source -> rate, rule
    (True, "maas", "other", 3000, MODEL_SERVICES),
    (True, "agent", "other", 3000, MODEL_SERVICES),
    (True, "application", "other", 3000, MODEL_SERVICES),
    (True, "training", "other", 2000, OTHER),
    (True, "inference", "other", 2000, OTHER),
    (True, "maas", "domestic", 3000, MODEL_SERVICES),
    (True, "agent", "domestic", 3000, MODEL_SERVICES),
    (True, "application", "domestic", 3000, MODEL_SERVICES),
    (True, "training", "domestic", 3000, DOMESTIC),
    (True, "inference", "domestic", 3000, DOMESTIC),
    (False, "maas", "other", 2000, OTHER),
    (False, "agent", "other", 2000, OTHER),
    (False, "application", "other", 2000, OTHER),
    (False, "training", "other", 2000, OTHER),
    (False, "inference", "other", 2000, OTHER),
    (False, "maas", "domestic", 3000, DOMESTIC),
    (False, "agent", "domestic", 3000, DOMESTIC),
    (False, "application", "domestic", 3000, DOMESTIC),
    (False, "training", "domestic", 3000, DOMESTIC),
    (False, "inference", "domestic", 3000, DOMESTIC),
]
ELIGIBLE_FEN = {3000: 99_999, 2000: 66_666}


@pytest.mark.parametrize(("registered", "purpose", "compute_source", "rate_bp", "label"), GOLDEN_TABLE)
def test_the_2024_measures_golden_table(cast, year, registered, purpose, compute_source, rate_bp, label):
    # given
    set_flags(cast.enterprise, has_registered_model=registered)
    # when
    application = submit(cast, fee_fen=FEE_FEN, purpose=purpose, compute_source=compute_source)
    # then
    application.refresh_from_db()
    assert (application.rate_bp, application.rate_rule) == (rate_bp, label)
    assert application.eligible_fen == application.requested_fen == ELIGIBLE_FEN[rate_bp]


def test_registered_model_services_on_other_compute_get_30_percent(cast, year):
    set_flags(cast.enterprise, has_registered_model=True)
    application = submit(cast, fee_fen=FEE_FEN, purpose="maas", compute_source="other")
    assert (application.rate_bp, application.eligible_fen) == (3000, 99_999)


def test_maas_on_other_compute_without_a_registered_model_gets_20_percent(cast, year):
    set_flags(cast.enterprise, has_registered_model=False, foundation_model_developer=True)
    application = submit(cast, fee_fen=FEE_FEN, purpose="maas", compute_source="other")
    assert (application.rate_bp, application.eligible_fen) == (2000, 66_666)


def test_training_on_other_compute_gets_20_percent_even_with_a_registered_model(cast, year):
    set_flags(cast.enterprise, has_registered_model=True)
    application = submit(cast, fee_fen=FEE_FEN, purpose="training", compute_source="other")
    assert (application.rate_bp, application.eligible_fen) == (2000, 66_666)


@pytest.mark.parametrize("flag", ["small_or_medium", "foundation_model_developer"])
def test_flags_the_2024_measures_ignore_change_no_rate(cast, year, flag):
    set_flags(cast.enterprise, **{flag: True})
    domestic = submit(cast, fee_fen=FEE_FEN, compute_source="domestic")
    other = submit(cast, fee_fen=FEE_FEN, compute_source="other")
    assert (domestic.rate_bp, other.rate_bp) == (3000, 2000)


@pytest.mark.parametrize(
    ("fee_fen", "compute_source", "eligible_fen"),
    [
        (333_334, "domestic", 100_000),  # 100,000.2
        (333_333, "domestic", 99_999),  # 99,999.9
        (333_333, "other", 66_666),  # 66,666.6
        (4, "domestic", 1),  # 1.2
        (9, "other", 1),  # 1.8
        (10, "other", 2),
        (10**13, "domestic", 3 * 10**12),  # the largest fee: no overflow, no float
        (10**13 - 1, "other", 2 * 10**12 - 1),  # 1,999,999,999,999.8
    ],
)
def test_the_eligible_amount_rounds_down_to_the_fen(cast, year, fee_fen, compute_source, eligible_fen):
    application = submit(cast, fee_fen=fee_fen, compute_source=compute_source)
    application.refresh_from_db()
    assert application.eligible_fen == eligible_fen


@pytest.mark.parametrize(("fee_fen", "compute_source"), [(3, "domestic"), (4, "other"), (1, "domestic")])
def test_a_contract_whose_subsidy_rounds_to_nothing_is_refused_and_nothing_written(
    cast, year, db_snapshot, fee_fen, compute_source
):
    before = db_snapshot()
    with pytest.raises(ValidationFailed) as caught:
        submit(cast, fee_fen=fee_fen, compute_source=compute_source)
    assert list(caught.value.errors) == ["contract_fee_fen"]
    assert db_snapshot() == before


def test_a_request_above_the_eligible_amount_is_refused_and_nothing_written(cast, year, db_snapshot):
    before = db_snapshot()
    with pytest.raises(ValidationFailed) as caught:
        submit(cast, fee_fen=FEE_FEN, compute_source="domestic", requested_fen=100_000)
    assert caught.value.errors == {"requested_fen": ["requested_fen may be at most the eligible 99999 fen."]}
    assert db_snapshot() == before


# --- rate_for on its own --------------------------------------------------------------------------


def test_the_first_matching_rule_wins_even_when_a_later_one_pays_more():
    rules = [rule(1000, "first", compute_sources=["other"]), rule(2500, "second"), rule(3000, "third")]
    rate = rate_for(rules=rules, ceiling_bp=3000, facts=facts(compute_source="other"))
    assert (rate.rate_bp, rate.label) == (1000, "first")


def test_rules_that_do_not_match_are_skipped():
    rules = [
        rule(3000, "registered", has_registered_model=True),
        rule(2800, "inference", purposes=["inference"]),
        rule(2600, "big", contracted_total_fen_max=999_999),
        rule(1500, "fallback"),
    ]
    rate = rate_for(rules=rules, ceiling_bp=3000, facts=facts(purpose="training", contracted_total_fen=1_000_000))
    assert (rate.rate_bp, rate.label) == (1500, "fallback")


def test_a_contracted_total_equal_to_the_maximum_matches():
    rules = [rule(2600, "small", contracted_total_fen_max=1_000_000), rule(1500, "fallback")]
    assert rate_for(rules=rules, ceiling_bp=3000, facts=facts(contracted_total_fen=1_000_000)).rate_bp == 2600
    assert rate_for(rules=rules, ceiling_bp=3000, facts=facts(contracted_total_fen=1_000_001)).rate_bp == 1500


def test_every_condition_of_a_rule_must_hold():
    rules = [rule(3000, "both", purposes=["maas"], small_or_medium=True), rule(1000, "fallback")]
    assert rate_for(rules=rules, ceiling_bp=3000, facts=facts(purpose="maas", small_or_medium=True)).rate_bp == 3000
    assert rate_for(rules=rules, ceiling_bp=3000, facts=facts(purpose="maas")).rate_bp == 1000
    assert rate_for(rules=rules, ceiling_bp=3000, facts=facts(small_or_medium=True)).rate_bp == 1000


def test_a_rate_above_the_ceiling_is_clamped_to_it():
    rate = rate_for(rules=[rule(4000, "generous")], ceiling_bp=3000, facts=facts())
    assert (rate.rate_bp, rate.label) == (3000, "generous")


def test_no_matching_rule_gives_no_subsidy():
    rules = [rule(3000, "domestic only", compute_sources=["domestic"])]
    rate = rate_for(rules=rules, ceiling_bp=3000, facts=facts(compute_source="other"))
    assert (rate.rate_bp, rate.label) == (0, "no rule matched")


def test_an_application_that_no_rule_covers_is_refused_and_nothing_written(cast, db_snapshot):
    # given a year whose only rule covers domestic compute
    domestic_only = rule_set_create(
        name="domestic-only", ceiling_bp=3000, rules=[rule(3000, "Domestic only", compute_sources=["domestic"])]
    )
    program_year_create(year=YEAR, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN, rule_set=domestic_only)
    program_year_open(year=YEAR, actor=cast.admin)
    before = db_snapshot()
    # when
    with pytest.raises(ValidationFailed) as caught:
        submit(cast, fee_fen=FEE_FEN, compute_source="other")
    # then
    assert "no rule matched" in caught.value.errors["contract_fee_fen"][0]
    assert db_snapshot() == before


# --- The June 2025 revision, as data only -----------------------------------------------------------


def revision_rule_set() -> RateRuleSet:
    return rule_set_create(
        name=REVISION_2025_06["name"],
        description=REVISION_2025_06["description"],
        ceiling_bp=REVISION_2025_06["ceiling_bp"],
        rules=REVISION_2025_06["rules"],
    )


@pytest.fixture
def revision_year(cast):
    """Program year 2026 under the June 2025 revision; the cast's enterprise is small or medium."""
    program_year_create(
        year=YEAR, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN, rule_set=revision_rule_set()
    )
    set_flags(cast.enterprise, small_or_medium=True)
    return program_year_open(year=YEAR, actor=cast.admin)


def test_the_revision_is_a_valid_rule_set_stored_as_data(revision_year):
    assert revision_year.rule_set.name == "revision-2025-06"
    assert revision_year.rule_set.ceiling_bp == 5000
    assert revision_year.rule_set.rules[0] == {
        "label": SME_REVISION,
        "rate_bp": 5000,
        "when": {"small_or_medium": True, "contracted_total_fen_max": HALF_A_MILLION_YUAN_FEN},
    }
    assert revision_year.rule_set.rules[1:] == MEASURES_2024["rules"]


@pytest.mark.parametrize(
    ("compute_source", "purpose"), [("domestic", "training"), ("other", "training"), ("other", "maas")]
)
def test_a_small_enterprise_contracting_at_most_500000_yuan_gets_50_percent(
    cast, revision_year, compute_source, purpose
):
    application = submit(cast, fee_fen=HALF_A_MILLION_YUAN_FEN, compute_source=compute_source, purpose=purpose)
    application.refresh_from_db()
    assert (application.rate_bp, application.rate_rule) == (5000, SME_REVISION)
    assert application.eligible_fen == 25_000_000


def test_a_small_enterprise_rounds_down_at_50_percent_too(cast, revision_year):
    application = submit(cast, fee_fen=FEE_FEN, compute_source="other")
    assert (application.rate_bp, application.eligible_fen) == (5000, 166_666)


@pytest.mark.parametrize(
    ("compute_source", "rate_bp", "eligible_fen"), [("domestic", 3000, 15_000_000), ("other", 2000, 10_000_000)]
)
def test_a_small_enterprise_contracting_more_falls_back_to_the_2024_rates(
    cast, revision_year, compute_source, rate_bp, eligible_fen
):
    application = submit(cast, fee_fen=HALF_A_MILLION_YUAN_FEN + 1, compute_source=compute_source)
    assert (application.rate_bp, application.eligible_fen) == (rate_bp, eligible_fen)


@pytest.mark.parametrize(
    ("second_fee_fen", "rate_bp", "rule_label"),
    [(20_000_000, 5000, SME_REVISION), (20_000_001, 2000, OTHER)],
    ids=["total exactly 500,000 yuan", "total one fen more"],
)
def test_the_contracted_total_counts_earlier_applications_of_the_year(
    cast, revision_year, second_fee_fen, rate_bp, rule_label
):
    # given a first contract of 300,000 yuan at 50%
    first = submit(cast, fee_fen=30_000_000, compute_source="other")
    assert first.rate_bp == 5000
    # when a second contract brings the year's total to `30,000,000 + second_fee_fen` fen
    second = submit(cast, fee_fen=second_fee_fen, compute_source="other")
    # then
    assert (second.rate_bp, second.rate_rule) == (rate_bp, rule_label)
    assert second.eligible_fen == second_fee_fen * rate_bp // 10_000
    first.refresh_from_db()
    assert first.rate_bp == 5000  # an earlier application keeps its rate


def test_a_withdrawn_application_does_not_count_towards_the_contracted_total(cast, revision_year):
    first = submit(cast, fee_fen=30_000_000)
    application_withdraw(application=first, actor=cast.member)
    second = submit(cast, fee_fen=30_000_000)
    assert second.rate_bp == 5000


def test_another_enterprises_contracts_do_not_count(cast, revision_year):
    other = EnterpriseFactory(small_or_medium=True)
    submit(cast, fee_fen=40_000_000, actor=UserFactory(enterprise=other))
    assert submit(cast, fee_fen=40_000_000).rate_bp == 5000


def test_contracts_of_another_year_do_not_count(cast, revision_year):
    # given the same policy in 2025, and 400,000 yuan contracted then
    program_year_create(
        year=YEAR - 1, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN, rule_set=revision_rule_set()
    )
    program_year_open(year=YEAR - 1, actor=cast.admin)
    earlier = application_submit(
        actor=cast.member,
        provider=cast.provider,
        contract_number="C-2025",
        contract_fee_fen=40_000_000,
        compute_source="domestic",
        purpose="training",
        now=year_end(YEAR - 2).replace(month=6),
        **contract(cast.member, YEAR - 1),
    )
    assert (earlier.year.year, earlier.rate_bp) == (YEAR - 1, 5000)
    # when 400,000 yuan more is contracted in 2026
    later = submit(cast, fee_fen=40_000_000)
    # then
    assert (later.year.year, later.rate_bp) == (YEAR, 5000)


@pytest.mark.parametrize(
    ("registered", "purpose", "compute_source", "rate_bp"),
    [(False, "training", "domestic", 3000), (False, "training", "other", 2000), (True, "maas", "other", 3000)],
)
def test_an_enterprise_that_is_not_small_or_medium_gets_the_2024_rates(
    cast, revision_year, registered, purpose, compute_source, rate_bp
):
    set_flags(cast.enterprise, small_or_medium=False, has_registered_model=registered)
    application = submit(cast, fee_fen=FEE_FEN, purpose=purpose, compute_source=compute_source)
    assert (application.rate_bp, application.eligible_fen) == (rate_bp, ELIGIBLE_FEN[rate_bp])


def test_each_year_applies_its_own_rule_set(cast, revision_year):
    # given 2025 under the 2024 measures, 2026 under the revision
    program_year_create(year=YEAR - 1, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN)
    program_year_open(year=YEAR - 1, actor=cast.admin)
    # when the same small enterprise applies in each year
    in_2025 = application_submit(
        actor=cast.member,
        provider=cast.provider,
        contract_number="C-2025",
        contract_fee_fen=FEE_FEN,
        compute_source="domestic",
        purpose="training",
        now=year_end(YEAR - 2).replace(month=6),
        **contract(cast.member, YEAR - 1),
    )
    in_2026 = submit(cast, fee_fen=FEE_FEN)
    # then
    assert (in_2025.rate_bp, in_2025.eligible_fen) == (3000, 99_999)
    assert (in_2026.rate_bp, in_2026.eligible_fen) == (5000, 166_666)
    assert Application.objects.filter(enterprise=cast.enterprise).count() == 2


# --- Validation of rule sets -----------------------------------------------------------------------


@pytest.mark.parametrize("policy", [MEASURES_2024, REVISION_2025_06], ids=["2024", "2025-06"])
def test_the_shipped_rule_sets_are_valid(policy):
    rules_validate(rules=policy["rules"], ceiling_bp=policy["ceiling_bp"])


MALFORMED = [
    ("unknown condition", [rule(1000, sector=["ai"])], "rule 1: unknown condition sector."),
    ("bad purpose word", [rule(1000, purposes=["mining"])], "rule 1: purposes must be a non-empty list of training"),
    ("purposes not a list", [rule(1000, purposes="maas")], "rule 1: purposes must be a non-empty list"),
    ("no purposes", [rule(1000, purposes=[])], "rule 1: purposes must be a non-empty list"),
    ("bad compute source", [rule(1000, compute_sources=["cloud"])], "rule 1: compute_sources must be a non-empty list"),
    ("rate above 10000", [rule(10_001)], "rule 1: rate_bp must be a whole number from 0 to 10000."),
    ("negative rate", [rule(-1)], "rule 1: rate_bp must be a whole number from 0 to 10000."),
    ("bool as rate", [rule(True)], "rule 1: rate_bp must be a whole number from 0 to 10000."),
    ("float as rate", [rule(0.3)], "rule 1: rate_bp must be a whole number from 0 to 10000."),
    ("rate as text", [rule("3000")], "rule 1: rate_bp must be a whole number from 0 to 10000."),
    ("flag not bool", [rule(1000, small_or_medium="yes")], "rule 1: small_or_medium must be true or false."),
    ("flag as 1", [rule(1000, has_registered_model=1)], "rule 1: has_registered_model must be true or false."),
    ("zero total", [rule(1000, contracted_total_fen_max=0)], "rule 1: contracted_total_fen_max must be a positive"),
    ("bool total", [rule(1000, contracted_total_fen_max=True)], "rule 1: contracted_total_fen_max must be a positive"),
    ("missing when", [{"label": "x", "rate_bp": 1000}], "rule 1 must have exactly label, rate_bp and when."),
    ("extra key", [{**rule(1000), "priority": 1}], "rule 1 must have exactly label, rate_bp and when."),
    ("rule not an object", ["everyone gets 20%"], "rule 1 must have exactly label, rate_bp and when."),
    ("when not an object", [{"label": "x", "rate_bp": 1000, "when": []}], "rule 1: when must be an object."),
    ("empty label", [rule(1000, "")], "rule 1: label must be 1 to 200 characters."),
    ("second rule bad", [rule(1000), rule(20_000)], "rule 2: rate_bp must be a whole number from 0 to 10000."),
]


@pytest.mark.parametrize(("rules", "message"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_a_malformed_rule_is_rejected_saying_what_is_wrong(rules, message):
    with pytest.raises(ValidationFailed) as caught:
        rules_validate(rules=rules, ceiling_bp=3000)
    assert list(caught.value.errors) == ["rules"]
    assert any(error.startswith(message) for error in caught.value.errors["rules"]), caught.value.errors


@pytest.mark.parametrize(
    "rules",
    [{"label": "x", "rate_bp": 1000, "when": {}}, "rules", None, [], [rule(1000)] * 51],
    ids=["one rule not in a list", "text", "none", "empty", "51 rules"],
)
def test_rules_that_are_not_a_list_of_1_to_50_are_rejected(rules):
    with pytest.raises(ValidationFailed) as caught:
        rules_validate(rules=rules, ceiling_bp=3000)
    assert caught.value.errors == {"rules": ["rules must be a list of 1 to 50 rules."]}


@pytest.mark.parametrize("ceiling_bp", [0, 10_001, True, 3000.0, "3000"])
def test_a_bad_ceiling_is_rejected(ceiling_bp):
    with pytest.raises(ValidationFailed) as caught:
        rules_validate(rules=[rule(1000)], ceiling_bp=ceiling_bp)
    assert caught.value.errors == {
        "rules": ["ceiling_bp must be a whole number of basis points from 1 to 10000."],
    }


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValidationFailed) as caught:
        rules_validate(rules=[rule(True, sector=1), rule(1000, purposes=["x"])], ceiling_bp=0)
    assert len(caught.value.errors["rules"]) == 4


def test_rule_set_create_writes_nothing_for_a_malformed_rule_set():
    before = RateRuleSet.objects.count()
    with pytest.raises(ValidationFailed):
        rule_set_create(name="bad", ceiling_bp=3000, rules=[rule(4000, sector=["ai"])])
    assert RateRuleSet.objects.count() == before


def test_rule_set_create_is_idempotent_and_refuses_other_rules_under_a_taken_name():
    first = rule_set_create(name="flat", ceiling_bp=3000, rules=[rule(2000, "Flat")])
    again = rule_set_create(name="flat", ceiling_bp=3000, rules=[rule(2000, "Flat")])
    assert again.pk == first.pk
    with pytest.raises(ValidationFailed) as caught:
        rule_set_create(name="flat", ceiling_bp=3000, rules=[rule(2500, "Flat")])
    assert list(caught.value.errors) == ["name"]
    assert RateRuleSet.objects.filter(name="flat").count() == 1
    assert RateRuleSet.objects.get(name="flat").rules == [rule(2000, "Flat")]


def test_the_default_rule_set_is_the_2024_measures():
    rule_set = rule_set_default()
    assert (rule_set.name, rule_set.ceiling_bp) == ("measures-2024", 3000)
    assert rule_set.rules == copy.deepcopy(MEASURES_2024["rules"])
    assert rule_set_default().pk == rule_set.pk


# --- Rule sets are immutable in the database ---------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE coupons_rateruleset SET ceiling_bp = 5000 WHERE id = %s",
        "UPDATE coupons_rateruleset SET rules = '[]'::jsonb WHERE id = %s",
        "DELETE FROM coupons_rateruleset WHERE id = %s",
    ],
)
def test_a_rule_set_cannot_be_changed_or_deleted_even_with_raw_sql(sql):
    # given
    rule_set = rule_set_default()
    # when
    with (
        pytest.raises(ProgrammingError, match="Cannot update or delete rows"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [rule_set.pk])
    # then
    stored = RateRuleSet.objects.get(pk=rule_set.pk)
    assert (stored.ceiling_bp, stored.rules) == (3000, MEASURES_2024["rules"])


def test_a_rule_set_cannot_be_changed_through_the_orm_either():
    rule_set = rule_set_default()
    with pytest.raises(ProgrammingError), transaction.atomic():
        RateRuleSet.objects.filter(pk=rule_set.pk).update(ceiling_bp=10_000)
    assert RateRuleSet.objects.get(pk=rule_set.pk).ceiling_bp == 3000
