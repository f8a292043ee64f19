"""Policy by effective date: a program year's rule-set versions, each in force from its own day.

The golden table is Hangzhou's 2025, as the service ships it (`policy_hangzhou_2025`): the 2024
measures from 1 January, the June 2025 revision from 13 June. Applications submitted on 12 and on
13 June 2025 (and, in a year priced by contract, contracts signed on those days) get the rates
written out here, not read from the data under test. Then the refusals of versions that would
leave a day without one policy or reprice what was priced, each leaving nothing written, in the
service and in the database; the audit; the year-end carry; and the migration's first versions.
"""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, transaction

from accounts.models import listing_day
from accounts.services import enterprise_flags_declare, enterprise_verify
from config.errors import PermissionDenied, ValidationFailed
from coupons.errors import ProgramYearClosed
from coupons.models import Application, Grant, ProgramYear, RateRuleSet, RuleSetVersion
from coupons.policy import MEASURES_2024, REVISION_2025_06
from coupons.rule_sets import rule_set_in_force, rule_set_versions
from coupons.services.applications import application_approve, application_submit
from coupons.services.audit import check_grant_rates_match_policy
from coupons.services.years import (
    PROGRAM_TIME_ZONE,
    program_year_create,
    program_year_create_with_rates,
    program_year_hangzhou_2025_create,
    program_year_open,
    rule_set_default,
    rule_set_version_add,
)
from tests.coupons.conftest import CAP_FEN, POOL_FEN, to_reviewed
from tests.coupons.test_policy import FILING_NUMBER, set_flags
from tests.evidence import contract
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# The labels, written out: the table does not read them from the data it tests.
MODEL_SERVICES = "Model services on a registered foundation model (MaaS, agents, applications)"
DOMESTIC = "Domestic compute"
OTHER = "Other compute"
SME_REVISION = "Small or medium enterprise, contracts at most 500,000 yuan in the year"

FEE_FEN = 333_333  # 3,333.33 yuan: well within 500,000 yuan of contracts.
BEFORE = dt.date(2025, 6, 12)
FROM = dt.date(2025, 6, 13)
AFTER = dt.date(2025, 6, 20)


def noon(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, 12, tzinfo=PROGRAM_TIME_ZONE)


def hangzhou_2025(cast, **policy: object) -> ProgramYear:  # type: ignore[no-untyped-def]
    program_year_hangzhou_2025_create(actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN, **policy)
    return program_year_open(year=2025, actor=cast.admin)


def submit_2025(cast, *, on: dt.date, signed_on: dt.date | None = None, **extra: object) -> Application:  # type: ignore[no-untyped-def]
    """Submit as the cast's enterprise on the day `on` (Asia/Shanghai), its contract signed on
    `signed_on` (1 January 2025 unless named)."""
    evidence = contract(cast.member, 2025)
    if signed_on is not None:
        evidence["contract_signed_on"] = signed_on
    if cast.enterprise.has_registered_model:
        extra.setdefault("model_filing_number", FILING_NUMBER)
    submit_2025.counter += 1  # type: ignore[attr-defined]
    return application_submit(
        actor=cast.member,
        provider=cast.provider,
        contract_number=f"HZ-2025-{submit_2025.counter}",  # type: ignore[attr-defined]
        contract_fee_fen=FEE_FEN,
        compute_source=extra.pop("compute_source", "domestic"),  # type: ignore[arg-type]
        purpose=extra.pop("purpose", "training"),  # type: ignore[arg-type]
        now=noon(on),
        **evidence,
        **extra,  # type: ignore[arg-type]
    )


submit_2025.counter = 0  # type: ignore[attr-defined]


# --- The golden table --------------------------------------------------------------------------

# enterprise (small or medium, registered model), purpose, compute source
#   -> (rate, rule) priced on 12 June 2025, (rate, rule) priced on 13 June 2025
GOLDEN_TABLE = [
    ("sme", "training", "domestic", (3000, DOMESTIC), (5000, SME_REVISION)),
    ("sme", "training", "other", (2000, OTHER), (5000, SME_REVISION)),
    ("sme registered", "maas", "other", (3000, MODEL_SERVICES), (5000, SME_REVISION)),
    ("large", "training", "domestic", (3000, DOMESTIC), (3000, DOMESTIC)),
    ("large", "inference", "other", (2000, OTHER), (2000, OTHER)),
    ("large registered", "maas", "other", (3000, MODEL_SERVICES), (3000, MODEL_SERVICES)),
    ("large registered", "agent", "domestic", (3000, MODEL_SERVICES), (3000, MODEL_SERVICES)),
]
ELIGIBLE_FEN = {5000: 166_666, 3000: 99_999, 2000: 66_666}


def _enterprise(cast, kind: str) -> None:  # type: ignore[no-untyped-def]
    set_flags(cast.enterprise, small_or_medium=kind.startswith("sme"), has_registered_model="registered" in kind)


def _small_or_medium_on_record(cast) -> None:  # type: ignore[no-untyped-def]
    """The enterprise declares it is small or medium and a reviewer confirms it, as the audit reads
    from its flags history."""
    enterprise_flags_declare(enterprise=cast.enterprise, actor=cast.member, small_or_medium=True)
    enterprise_verify(enterprise=cast.enterprise, actor=cast.reviewer, flags={"small_or_medium": True})


@pytest.mark.parametrize(("kind", "purpose", "compute_source", "before", "after"), GOLDEN_TABLE)
@pytest.mark.parametrize("day", [BEFORE, FROM], ids=["submitted-06-12", "submitted-06-13"])
def test_hangzhou_2025_golden_table_by_submission_day(cast, kind, purpose, compute_source, before, after, day):
    # given Hangzhou's 2025, priced by submission day (the default)
    hangzhou_2025(cast)
    _enterprise(cast, kind)
    # when the enterprise applies on the day, for a contract signed on 1 January
    application = submit_2025(cast, on=day, purpose=purpose, compute_source=compute_source)
    # then
    rate_bp, label = before if day == BEFORE else after
    application.refresh_from_db()
    assert (application.rate_bp, application.rate_rule) == (rate_bp, label)
    assert application.eligible_fen == ELIGIBLE_FEN[rate_bp]
    assert application.rule_set is not None
    assert application.rule_set.name == ("measures-2024" if day == BEFORE else "revision-2025-06")


@pytest.mark.parametrize(("kind", "purpose", "compute_source", "before", "after"), GOLDEN_TABLE)
@pytest.mark.parametrize("signed_on", [BEFORE, FROM], ids=["signed-06-12", "signed-06-13"])
def test_hangzhou_2025_golden_table_by_contract_day(cast, kind, purpose, compute_source, before, after, signed_on):
    # given Hangzhou's 2025, priced by the contract's signing day
    hangzhou_2025(cast, priced_by="contract")
    _enterprise(cast, kind)
    # when the enterprise applies after the revision, for a contract signed on the day
    application = submit_2025(cast, on=AFTER, signed_on=signed_on, purpose=purpose, compute_source=compute_source)
    # then the signing day decides, not the submission day
    rate_bp, label = before if signed_on == BEFORE else after
    assert (application.rate_bp, application.rate_rule) == (rate_bp, label)


@pytest.mark.parametrize(
    ("priced_by", "rate_bp"), [("submission", 5000), ("contract", 3000)], ids=["by-submission", "by-contract"]
)
def test_a_contract_signed_before_the_revision_and_submitted_after_it(cast, priced_by, rate_bp):
    hangzhou_2025(cast, priced_by=priced_by)
    _enterprise(cast, "sme")
    application = submit_2025(cast, on=FROM, signed_on=BEFORE)
    assert application.rate_bp == rate_bp


def test_the_year_read_lists_its_versions(cast):
    program_year = hangzhou_2025(cast)
    assert [(version.effective_from, version.rule_set.name) for version in rule_set_versions(program_year)] == [
        (dt.date(2025, 1, 1), "measures-2024"),
        (FROM, "revision-2025-06"),
    ]
    assert program_year.rule_set.name == "measures-2024"  # The year's own rule set: the first version.
    assert rule_set_in_force(program_year, dt.date(2025, 12, 31)).name == "revision-2025-06"


def test_the_command_sets_up_hangzhou_2025_and_changes_nothing_when_run_again(cast):
    out = StringIO()
    call_command("policy_hangzhou_2025", actor=cast.admin.username, stdout=out)
    assert "measures-2024 from 2025-01-01, revision-2025-06 from 2025-06-13" in out.getvalue()
    rows = list(RuleSetVersion.objects.order_by("pk").values_list("pk", "effective_from"))
    call_command("policy_hangzhou_2025", actor=cast.admin.username, stdout=StringIO())
    assert list(RuleSetVersion.objects.order_by("pk").values_list("pk", "effective_from")) == rows
    assert ProgramYear.objects.get(program_id="hangzhou-compute", year=2025).status == ProgramYear.Status.DRAFT


def test_the_command_adds_the_revision_to_a_draft_2025_that_lacks_it(cast):
    program_year_create(year=2025, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN)
    call_command("policy_hangzhou_2025", actor=cast.admin.username, stdout=StringIO())
    program_year = ProgramYear.objects.get(program_id="hangzhou-compute", year=2025)
    assert [version.rule_set.name for version in rule_set_versions(program_year)] == [
        "measures-2024",
        "revision-2025-06",
    ]


# --- Refusals: nothing written -----------------------------------------------------------------


def _revision() -> dict[str, object]:
    return {"name": "a-revision", "ceiling_bp": 4000, "rules": [{"label": "All", "rate_bp": 4000, "when": {}}]}


def _written() -> tuple[int, int, int]:
    return RuleSetVersion.objects.count(), RateRuleSet.objects.count(), ProgramYear.objects.count()


@pytest.fixture
def draft_2027(cast) -> ProgramYear:  # type: ignore[no-untyped-def]
    return program_year_create(year=2027, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN)


@pytest.mark.parametrize(
    ("effective_from", "words"),
    [
        (dt.date(2026, 12, 31), "outside program year 2027"),
        (dt.date(2028, 1, 1), "outside program year 2027"),
        (dt.date(2027, 1, 1), "already"),  # The year's own rule set is in force from 1 January.
    ],
    ids=["the-year-before", "the-year-after", "overlaps-the-first"],
)
def test_a_version_outside_its_year_or_on_a_day_taken_is_refused(cast, draft_2027, effective_from, words):
    before = _written()
    with pytest.raises(ValidationFailed, match=words) as refused:
        rule_set_version_add(year=2027, effective_from=effective_from, rates=_revision(), actor=cast.admin)
    assert refused.value.errors.keys() == {"effective_from"}
    assert _written() == before


def test_two_versions_on_one_day_are_refused(cast, draft_2027):
    rule_set_version_add(year=2027, effective_from=dt.date(2027, 3, 1), rates=_revision(), actor=cast.admin)
    before = _written()
    other = {**_revision(), "name": "another-revision"}
    with pytest.raises(ValidationFailed, match="may not overlap"):
        rule_set_version_add(year=2027, effective_from=dt.date(2027, 3, 1), rates=other, actor=cast.admin)
    assert _written() == before


def test_a_year_whose_first_version_starts_after_1_january_is_refused(cast):
    before = _written()
    with pytest.raises(ValidationFailed, match="takes effect on 2027-01-01") as refused:
        program_year_create_with_rates(
            year=2027,
            actor=cast.admin,
            rule_sets=[{"effective_from": dt.date(2027, 2, 1), "rates": _revision()}],
        )
    assert refused.value.errors.keys() == {"rule_sets.0.effective_from"}
    assert _written() == before


def test_a_year_made_with_versions_out_of_order_or_on_one_day_is_refused(cast):
    before = _written()
    first = {"effective_from": dt.date(2027, 1, 1), "rates": MEASURES_2024}
    for later in (
        [{"effective_from": dt.date(2027, 1, 1), "rates": REVISION_2025_06}],
        [
            {"effective_from": dt.date(2027, 9, 1), "rates": REVISION_2025_06},
            {"effective_from": dt.date(2027, 5, 1), "rates": _revision()},
        ],
    ):
        with pytest.raises(ValidationFailed):
            program_year_create_with_rates(year=2027, actor=cast.admin, rule_sets=[first, *later])
    assert _written() == before


def test_in_an_open_year_a_version_from_today_or_before_is_refused_and_from_tomorrow_accepted(cast):
    # given this year, open (the database's clock decides what today is, so the test uses it)
    today = listing_day()
    program_year_create(year=today.year, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN)
    program_year_open(year=today.year, actor=cast.admin)
    before = _written()
    # when a version from today is added, then refused
    with pytest.raises(ValidationFailed, match=r"today|already"):
        rule_set_version_add(year=today.year, effective_from=today, rates=_revision(), actor=cast.admin)
    assert _written() == before
    # and a version from tomorrow is accepted, when tomorrow is in the year
    tomorrow = today + dt.timedelta(days=1)
    if tomorrow.year != today.year:
        pytest.skip("31 December: no day of the year is after today")
    rule_set_version_add(year=today.year, effective_from=tomorrow, rates=_revision(), actor=cast.admin)
    assert RuleSetVersion.objects.filter(effective_from=tomorrow).exists()


def test_an_open_years_past_day_is_refused_even_when_nothing_was_priced_on_it(cast):
    hangzhou_2025(cast)
    before = _written()
    with pytest.raises(ValidationFailed, match="no retroactive repricing"):
        rule_set_version_add(year=2025, effective_from=dt.date(2025, 9, 1), rates=_revision(), actor=cast.admin)
    assert _written() == before


def test_a_closed_year_takes_no_version(cast, draft_2027):
    ProgramYear.objects.filter(pk=draft_2027.pk).update(status=ProgramYear.Status.CLOSED)
    before = _written()
    with pytest.raises(ProgramYearClosed):
        rule_set_version_add(year=2027, effective_from=dt.date(2027, 6, 1), rates=_revision(), actor=cast.admin)
    assert _written() == before


def test_only_a_superuser_adds_a_version(cast, draft_2027):
    before = _written()
    for actor in (cast.reviewer, cast.approver, cast.member, UserFactory(is_staff=True)):
        with pytest.raises(PermissionDenied):
            rule_set_version_add(year=2027, effective_from=dt.date(2027, 6, 1), rates=_revision(), actor=actor)
    assert _written() == before


# --- The database refuses the same -------------------------------------------------------------


def _insert(program_year: ProgramYear, day: dt.date, rule_set: RateRuleSet) -> None:
    with transaction.atomic():
        RuleSetVersion.objects.create(program_year=program_year, rule_set=rule_set, effective_from=day)


@pytest.mark.parametrize(
    ("day", "words"),
    [
        (dt.date(2026, 6, 1), "outside its year"),
        (dt.date(2027, 6, 1), None),
        (dt.date(2027, 1, 1), "coupons_rule_set_version_once_a_day"),
    ],
    ids=["outside", "accepted", "twice-on-a-day"],
)
def test_the_database_refuses_a_version_outside_its_year_or_twice_on_a_day(cast, draft_2027, day, words):
    if words is None:
        _insert(draft_2027, day, RateRuleSet.objects.create(name="other", ceiling_bp=1000, rules=[]))
        return
    # The year's own rule set on 1 January: only the day is wrong.
    with pytest.raises(DatabaseError, match=words):
        _insert(draft_2027, day, draft_2027.rule_set)


def test_the_database_refuses_a_first_version_that_is_not_the_years_rule_set(cast):
    # given a year written without its first version row (as by code from before versions)
    program_year = ProgramYear.objects.create(
        program_id="hangzhou-compute",
        year=2027,
        chain="hangzhou-compute:2027",
        pool_fen=POOL_FEN,
        default_cap_fen=CAP_FEN,
        rule_set=rule_set_default(),
    )
    other = RateRuleSet.objects.create(name="other", ceiling_bp=1000, rules=_revision()["rules"])
    with pytest.raises(DatabaseError, match="start on 1 January"):
        _insert(program_year, dt.date(2027, 6, 1), other)
    with pytest.raises(DatabaseError, match="the year's own rule set"):
        _insert(program_year, dt.date(2027, 1, 1), other)


def test_the_database_refuses_a_retroactive_version_in_an_open_year(cast):
    program_year = hangzhou_2025(cast)
    other = RateRuleSet.objects.create(name="other", ceiling_bp=1000, rules=_revision()["rules"])
    with pytest.raises(DatabaseError, match="not after today in a open year"):
        _insert(program_year, dt.date(2025, 9, 1), other)


def test_the_database_refuses_to_change_or_delete_a_version(cast):
    program_year = hangzhou_2025(cast)
    version = RuleSetVersion.objects.get(program_year=program_year, effective_from=FROM)
    with pytest.raises(DatabaseError, match="Cannot update"), transaction.atomic():
        RuleSetVersion.objects.filter(pk=version.pk).update(effective_from=dt.date(2025, 7, 1))
    with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
        RuleSetVersion.objects.filter(pk=version.pk).delete()


def test_an_opened_year_keeps_its_priced_by(cast):
    program_year = hangzhou_2025(cast)
    with pytest.raises(DatabaseError, match="Cannot update"), transaction.atomic():
        ProgramYear.objects.filter(pk=program_year.pk).update(priced_by="contract")


# --- The audit and the year-end carry ----------------------------------------------------------


def test_the_audit_recomputes_a_revised_rate_by_the_version_that_priced_it(cast):
    # given a grant at the revision's 50%, approved
    hangzhou_2025(cast)
    _small_or_medium_on_record(cast)
    application = to_reviewed(cast, submit_2025(cast, on=FROM))
    application_approve(application=application, actor=cast.approver)
    assert Grant.objects.get(application=application).rate_bp == 5000
    # when the audit recomputes the rates, then it finds nothing
    findings, examined = check_grant_rates_match_policy()
    assert (findings, examined) == ([], 1)
    # and had the application recorded the 2024 measures, it would have found the rate
    Application.objects.filter(pk=application.pk).update(rule_set=RateRuleSet.objects.get(name="measures-2024"))
    findings, _ = check_grant_rates_match_policy()
    assert [finding["problems"] for finding in findings] == [["rate_not_from_policy"]]


def test_the_audit_finds_a_rule_set_that_is_not_one_of_the_years_versions(cast):
    hangzhou_2025(cast)
    _small_or_medium_on_record(cast)
    application = to_reviewed(cast, submit_2025(cast, on=FROM))
    application_approve(application=application, actor=cast.approver)
    stranger = RateRuleSet.objects.create(name="stranger", ceiling_bp=5000, rules=REVISION_2025_06["rules"])
    Application.objects.filter(pk=application.pk).update(rule_set=stranger)
    findings, _ = check_grant_rates_match_policy()
    assert [finding["problems"] for finding in findings] == [["rule_set_not_of_year"]]


def test_an_application_made_before_versions_is_audited_by_its_years_rule_set(cast):
    hangzhou_2025(cast)
    application = to_reviewed(cast, submit_2025(cast, on=BEFORE))
    application_approve(application=application, actor=cast.approver)
    Application.objects.filter(pk=application.pk).update(rule_set=None)
    assert check_grant_rates_match_policy()[0] == []


def test_a_carried_application_is_priced_by_the_next_years_first_version(cast):
    from coupons.services.year_end import application_settle_at_close

    # given 2025 with the revision, and 2026 prepared with the 2024 measures from 1 January
    hangzhou_2025(cast)
    _enterprise(cast, "sme")
    application = submit_2025(cast, on=FROM)
    assert application.rate_bp == 5000
    program_year_create(year=2026, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN)
    ProgramYear.objects.filter(program_id="hangzhou-compute", year=2025).update(status=ProgramYear.Status.CLOSED)
    # when the close carries it
    assert application_settle_at_close(application_id=application.pk, year=2025) == "carried"
    # then 2026's version from 1 January priced it
    application.refresh_from_db()
    assert (application.year.year, application.rate_bp, application.rate_rule) == (2026, 3000, DOMESTIC)
    assert application.rule_set is not None and application.rule_set.name == "measures-2024"


def test_the_reset_starts_the_next_year_under_the_last_version(cast):
    from coupons.services.reset import _prepare_next_year

    program_year = hangzhou_2025(cast)
    _prepare_next_year(program_year)
    next_year = ProgramYear.objects.get(program_id="hangzhou-compute", year=2026)
    assert [(version.effective_from, version.rule_set.name) for version in rule_set_versions(next_year)] == [
        (dt.date(2026, 1, 1), "revision-2025-06")
    ]
    assert RuleSetVersion.objects.filter(program_year=next_year).count() == 1


# --- Migration 0016 ----------------------------------------------------------------------------


def test_the_migration_gives_each_year_one_version_from_1_january_and_nothing_when_run_again(cast):
    import importlib

    from django.db import connection

    first_versions = importlib.import_module("coupons.migrations.0016_rule_set_versions").FIRST_VERSIONS
    # given a year with its versions, and one written without any (as every year was before 0016)
    with_versions = hangzhou_2025(cast)
    bare = ProgramYear.objects.create(
        program_id="hangzhou-compute",
        year=2027,
        chain="hangzhou-compute:2027",
        pool_fen=POOL_FEN,
        default_cap_fen=CAP_FEN,
        rule_set=rule_set_default(),
    )
    before = list(RuleSetVersion.objects.filter(program_year=with_versions).order_by("pk").values())
    # when the data step runs, twice
    for _ in range(2):
        with connection.cursor() as cursor:
            cursor.execute(first_versions)
    # then the bare year has its one version and the other year is untouched
    assert list(RuleSetVersion.objects.filter(program_year=bare).values_list("effective_from", "rule_set_id")) == [
        (dt.date(2027, 1, 1), bare.rule_set_id)
    ]
    assert list(RuleSetVersion.objects.filter(program_year=with_versions).order_by("pk").values()) == before
