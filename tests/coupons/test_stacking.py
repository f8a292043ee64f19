"""Stacking: one contract subsidised by several programs, within their combined ceiling
(coupons/services/stacking.py, docs/programs.md "Stacking")."""

import pytest
from django.db import connection, transaction
from django.db.utils import ProgrammingError

from accounts.models import User
from config.errors import AlreadyExists, PermissionDenied, ValidationFailed
from coupons.errors import DuplicateContract, StackingCeiling
from coupons.models import DEFAULT_PROGRAM, Application, Grant, Program, ProgramYear, StackingRule
from coupons.services.applications import application_approve, application_withdraw
from coupons.services.audit import check_stacking_within_ceiling
from coupons.services.stacking import stacking_rule_create
from coupons.services.years import program_year_create, program_year_open
from tests.coupons.conftest import YEAR, Cast, open_year, submit, to_reviewed
from tests.factories import UserFactory

DISTRICT = "binjiang-compute"
FEE_FEN = 10_000_000  # At 30%, each program's eligible amount is 3,000,000 fen.
ELIGIBLE_FEN = 3_000_000


def district_program(admin: User, *, slug: str = DISTRICT, pool_fen: int = 100_000_000, cap_fen: int = 50_000_000):
    """A district program beside the city's, its year YEAR open (the same 2024 rates)."""
    Program.objects.create(
        slug=slug,
        name="滨江区算力券",
        name_en="Binjiang District computing-power coupons",
        authority="Binjiang District Science and Technology Bureau",
        level=Program.Level.DISTRICT,
        region=["3301"],
    )
    program_year_create(year=YEAR, actor=admin, program=slug, pool_fen=pool_fen, default_cap_fen=cap_fen)
    return program_year_open(year=YEAR, actor=admin, program=slug)


@pytest.fixture
def two_programs(cast: Cast) -> tuple[ProgramYear, ProgramYear]:
    return open_year(cast.admin, pool_fen=100_000_000, cap_fen=50_000_000), district_program(cast.admin)


def rule(cast: Cast, share_bp: int, amount_fen: int | None = None, name: str = "city+district") -> StackingRule:
    return stacking_rule_create(
        actor=cast.admin, name=name, programs=[DEFAULT_PROGRAM, DISTRICT], share_bp=share_bp, amount_fen=amount_fen
    )


def approve(cast: Cast, application: Application) -> Grant:
    application_approve(application=to_reviewed(cast, application), actor=cast.approver)
    return Grant.objects.get(application=application)


# --- Submission -------------------------------------------------------------------------------------


def test_programs_no_rule_joins_do_not_take_the_same_contract(cast, two_programs):
    submit(cast, fee_fen=FEE_FEN, number="K-1")

    with pytest.raises(DuplicateContract, match="do not stack"):
        submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT)

    assert Application.objects.filter(contract_number="K-1").count() == 1


def test_a_rule_joining_other_programs_does_not_make_these_stack(cast, two_programs):
    Program.objects.create(slug="zhejiang-compute", name="浙江省算力券", name_en="x", authority="x", level="province")
    stacking_rule_create(
        actor=cast.admin, name="city+province", programs=[DEFAULT_PROGRAM, "zhejiang-compute"], share_bp=6000
    )
    submit(cast, fee_fen=FEE_FEN, number="K-1")

    with pytest.raises(DuplicateContract, match="do not stack"):
        submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT)


def test_the_second_program_is_asked_for_what_fits_the_combined_ceiling(cast, two_programs):
    # given: 50% of the fee together; the city's application asks for its whole 30%
    rule(cast, 5000)
    submit(cast, fee_fen=FEE_FEN, number="K-1")

    # when: the district's asks for its whole 30% too
    district = submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT)

    # then: it is lowered to the 20% left, and its history says why
    assert (district.eligible_fen, district.requested_fen) == (ELIGIBLE_FEN, 2_000_000)
    note = district.events.get(action="submitted").note
    assert "lowered from 3000000 to 2000000 fen" in note and "city+district" in note


def test_a_request_within_the_room_is_left_as_it_is(cast, two_programs):
    rule(cast, 6000)
    submit(cast, fee_fen=FEE_FEN, number="K-1")

    district = submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT, requested_fen=2_500_000)

    assert district.requested_fen == 2_500_000
    assert district.events.get(action="submitted").note == ""


def test_the_ceiling_in_fen_binds_when_it_is_below_the_share(cast, two_programs):
    rule(cast, 10_000, amount_fen=3_500_000)
    submit(cast, fee_fen=FEE_FEN, number="K-1")

    district = submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT)

    assert district.requested_fen == 500_000


def test_nothing_left_is_refused_with_stacking_ceiling_and_nothing_is_written(cast, two_programs):
    rule(cast, 3000)
    submit(cast, fee_fen=FEE_FEN, number="K-1")

    with pytest.raises(StackingCeiling) as refused:
        submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT)

    assert refused.value.code == "stacking_ceiling" and refused.value.http_status == 409
    assert not Application.objects.filter(program_id=DISTRICT).exists()


def test_the_smallest_fee_stated_sets_the_ceiling(cast, two_programs):
    # The district's application states a fee twice the city's: the ceiling is on the city's.
    rule(cast, 5000)
    submit(cast, fee_fen=FEE_FEN, number="K-1")

    district = submit(cast, fee_fen=2 * FEE_FEN, number="K-1", program=DISTRICT)

    assert district.requested_fen == FEE_FEN * 5000 // 10_000 - ELIGIBLE_FEN


def test_a_withdrawn_application_elsewhere_leaves_the_room_free(cast, two_programs):
    rule(cast, 3000)
    city = submit(cast, fee_fen=FEE_FEN, number="K-1")
    application_withdraw(application=city, actor=cast.member)

    district = submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT)

    assert district.requested_fen == ELIGIBLE_FEN


def test_an_approved_application_elsewhere_counts_at_its_grant(cast, two_programs):
    # given: the city asked for 3,000,000 but was granted 1,000,000
    rule(cast, 5000)
    city = submit(cast, fee_fen=FEE_FEN, number="K-1")
    application_approve(application=to_reviewed(cast, city, 1_000_000), actor=cast.approver)

    district = submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT)

    assert district.requested_fen == ELIGIBLE_FEN  # 5,000,000 - 1,000,000 leaves more than its 30%.


def test_the_same_contract_with_another_provider_is_another_contract(cast, two_programs):
    from tests.factories import ProviderFactory

    other = ProviderFactory()
    submit(cast, fee_fen=FEE_FEN, number="K-1")

    district = submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT, provider=other)

    assert district.requested_fen == ELIGIBLE_FEN


# --- Approval ---------------------------------------------------------------------------------------


def test_an_approval_is_lowered_to_what_the_other_programs_grants_leave(cast, two_programs):
    # given: both submitted for 30% under a 60% rule, then a 40% rule joins the same programs
    rule(cast, 6000)
    city = submit(cast, fee_fen=FEE_FEN, number="K-1")
    district = submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT)
    rule(cast, 4000, name="city+district tightened")

    # when
    first = approve(cast, city)
    second = approve(cast, district)

    # then: the second gets the 10% left, and its history says it was lowered
    assert (first.amount_fen, second.amount_fen) == (ELIGIBLE_FEN, 1_000_000)
    assert district.events.get(action="approved").note.startswith("1000000 fen (lowered from 3000000 fen")
    assert check_stacking_within_ceiling() == ([], 1)


def test_an_approval_with_nothing_left_is_refused_and_writes_nothing(cast, two_programs):
    rule(cast, 6000)
    city = submit(cast, fee_fen=FEE_FEN, number="K-1")
    district = to_reviewed(cast, submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT))
    rule(cast, 3000, name="city+district tightened")
    approve(cast, city)

    with pytest.raises(StackingCeiling):
        application_approve(application=district, actor=cast.approver)

    district.refresh_from_db()
    assert district.status == Application.Status.REVIEWED
    assert not Grant.objects.filter(application=district).exists()


def test_a_revoked_grant_elsewhere_counts_net_of_what_was_revoked(cast, two_programs):
    from approvals.services import approval_request_approve
    from coupons.services.grants import grant_revoke_request

    rule(cast, 6000)
    city = submit(cast, fee_fen=FEE_FEN, number="K-1")
    district = to_reviewed(cast, submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT))
    rule(cast, 3000, name="city+district tightened")
    grant = approve(cast, city)
    request = grant_revoke_request(grant=grant, requester=cast.reviewer, reason="The contract was cancelled.")
    approval_request_approve(request_id=request.pk, decider=cast.approver2)

    application_approve(application=district, actor=cast.approver)

    assert Grant.objects.get(application=district).amount_fen == ELIGIBLE_FEN


# --- Rules ------------------------------------------------------------------------------------------


def test_a_rule_joins_two_programs_at_least(cast, two_programs):
    with pytest.raises(ValidationFailed, match="2 to"):
        stacking_rule_create(actor=cast.admin, name="alone", programs=[DEFAULT_PROGRAM, DEFAULT_PROGRAM], share_bp=6000)
    with pytest.raises(ValidationFailed, match="no program"):
        stacking_rule_create(actor=cast.admin, name="ghost", programs=[DEFAULT_PROGRAM, "nowhere"], share_bp=6000)
    with pytest.raises(ValidationFailed, match="share_bp"):
        rule(cast, 10_001)
    with pytest.raises(ValidationFailed, match="amount_fen"):
        rule(cast, 6000, amount_fen=0)
    assert not StackingRule.objects.exists()


def test_only_a_superuser_writes_a_rule(cast, two_programs):
    with pytest.raises(PermissionDenied):
        stacking_rule_create(
            actor=UserFactory(roles=["approver"]), name="r", programs=[DEFAULT_PROGRAM, DISTRICT], share_bp=6000
        )


def test_writing_a_rule_again_returns_it_and_a_name_taken_is_refused(cast, two_programs):
    first = rule(cast, 6000)

    assert rule(cast, 6000) == first
    with pytest.raises(AlreadyExists):
        rule(cast, 5000)
    assert StackingRule.objects.count() == 1
    assert sorted(first.programs.values_list("slug", flat=True)) == sorted([DEFAULT_PROGRAM, DISTRICT])


def test_a_rule_is_never_changed_in_the_database(cast, two_programs):
    made = rule(cast, 6000)

    for sql in (
        "UPDATE coupons_stackingrule SET share_bp = 10000 WHERE id = %s",
        "DELETE FROM coupons_stackingruleprogram WHERE rule_id = %s",
    ):
        with pytest.raises(ProgrammingError, match="pgtrigger"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [made.pk])


# --- The audit --------------------------------------------------------------------------------------


def test_the_audit_finds_grants_past_the_combined_ceiling(cast, two_programs):
    # given: both programs granted within a 60% ceiling
    rule(cast, 6000)
    approve(cast, submit(cast, fee_fen=FEE_FEN, number="K-1"))
    district = approve(cast, submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT))
    assert check_stacking_within_ceiling() == ([], 1)

    # when: the district's grant is raised past it behind the services' back
    with connection.cursor() as cursor:
        cursor.execute("UPDATE coupons_grant SET amount_fen = amount_fen + 1 WHERE id = %s", [district.pk])

    # then
    findings, examined = check_stacking_within_ceiling()
    assert examined == 1
    assert findings == [
        {
            "provider_id": cast.provider.pk,
            "contract_number": "K-1",
            "programs": sorted([DEFAULT_PROGRAM, DISTRICT]),
            "fee_fen": FEE_FEN,
            "net_fen": 6_000_001,
            "ceiling_fen": 6_000_000,
            "unjoined_pairs": 0,
        }
    ]


def test_the_audit_finds_a_contract_granted_in_programs_that_do_not_stack(cast, two_programs):
    approve(cast, submit(cast, fee_fen=FEE_FEN, number="K-1"))
    district = approve(cast, submit(cast, fee_fen=FEE_FEN, number="K-2", program=DISTRICT))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE coupons_application SET contract_number = 'K-1' WHERE id = %s", [district.application_id]
        )

    findings, examined = check_stacking_within_ceiling()

    assert examined == 1
    assert [(f["contract_number"], f["unjoined_pairs"], f["ceiling_fen"]) for f in findings] == [("K-1", 1, None)]


def test_another_enterprise_naming_the_contract_in_another_program_is_refused(cast, two_programs):
    # Programs stack on one enterprise's contract; another enterprise is not its party (found in review).
    from tests.factories import EnterpriseFactory

    rule(cast, share_bp=6000)
    submit(cast, number="K-1")
    stranger = UserFactory(enterprise=EnterpriseFactory())

    with pytest.raises(DuplicateContract):
        submit(cast, number="K-1", program=DISTRICT, actor=stranger)

    assert Application.objects.filter(contract_number="K-1").count() == 1


def test_a_stacked_contracts_bills_never_pass_its_fee_across_its_programs(cast, two_programs):
    """Each program grants the one contract: its bills are counted across every grant of it, and a
    bill is subsidised once (found in review: each grant took bills up to the whole fee)."""
    from coupons.errors import ContractExceeded, DuplicateBill
    from coupons.services.audit import check_contract_bills_within_fee
    from coupons.services.redemptions import redemption_create
    from tests.coupons.conftest import IN_YEAR
    from tests.evidence import invoice

    rule(cast, share_bp=6000)
    city = approve(cast, submit(cast, fee_fen=FEE_FEN, number="K-9"))
    district = approve(cast, submit(cast, fee_fen=FEE_FEN, number="K-9", program=DISTRICT))

    def redeem(grant: Grant, bill: str, amount_fen: int) -> None:
        # The district's by id (the API's form: the fast path), the city's as a row (the careful path).
        redemption_create(
            grant=grant.pk if grant.year.program_id == DISTRICT else grant,
            bill_number=bill,
            bill_amount_fen=amount_fen,
            actor=cast.clerk,
            capture=True,
            now=IN_YEAR,
            **invoice(cast.clerk),
        )

    redeem(city, "B-1", FEE_FEN // 2)
    with pytest.raises(DuplicateBill):  # The same bill on the other program's grant.
        redeem(district, "B-1", FEE_FEN // 2)
    redeem(district, "B-2", FEE_FEN // 2)  # The other half of the contract, on the district's coupon.
    with pytest.raises(ContractExceeded):
        redeem(district, "B-3", 1)
    with pytest.raises(ContractExceeded):
        redeem(city, "B-4", 1)
    assert check_contract_bills_within_fee() == ([], 1)


def test_a_rule_written_after_the_grants_does_not_judge_them(cast, two_programs):
    """Found from outside: a tighter rule written afterwards (a rule is never changed or deleted) made
    every later audit fail for a contract granted right; a rule judges the grants made after it."""
    rule(cast, 6000)
    approve(cast, submit(cast, fee_fen=FEE_FEN, number="K-1"))
    approve(cast, submit(cast, fee_fen=FEE_FEN, number="K-1", program=DISTRICT))

    rule(cast, 3000, name="city+district tightened")

    assert check_stacking_within_ceiling() == ([], 1)
