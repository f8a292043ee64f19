"""The enterprise acknowledges or disputes its captured bills; a reviewer resolves disputes; only
acknowledged bills are settled (coupons/services/acknowledgements.py)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from accounts.models import Role, User
from approvals.models import ApprovalRequest
from config.errors import InvalidState, PermissionDenied, ValidationFailed
from coupons import books
from coupons.errors import FourEyes
from coupons.models import ProgramYear, Redemption
from coupons.services.acknowledgements import (
    acknowledgements_deem_confirmed,
    redemption_acknowledge,
    redemption_dispute,
    redemption_dispute_resolve,
)
from coupons.services.audit import audit_execute, audit_run_create
from coupons.services.redemptions import redemption_capture, redemption_create
from coupons.services.settlements import settlement_create
from coupons.services.years import program_year_create, program_year_open
from coupons.tasks import deem_acknowledgements
from ledger.selectors import account_balance
from tests.controls import redemption_reverse
from tests.coupons.conftest import IN_YEAR, YEAR, Cast, grant_for, make_cast
from tests.evidence import invoice
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory

A = Redemption.Acknowledgement
BILL_FEN = 100_000  # 30,000 fen of coupon at 30%
WINDOW = timedelta(days=7)


def bill(cast: Cast, grant, *, number: str, capture: bool = True, now=IN_YEAR) -> Redemption:
    return redemption_create(
        grant=grant,
        bill_number=number,
        bill_amount_fen=BILL_FEN,
        actor=cast.clerk,
        capture=capture,
        now=now,
        **invoice(cast.clerk),
    )


@pytest.fixture
def grant(grant_of):
    return grant_of()


@pytest.fixture
def captured(cast, grant) -> Redemption:
    return bill(cast, grant, number="B-1")


def reloaded(redemption: Redemption) -> Redemption:
    return Redemption.objects.get(pk=redemption.pk)


def provider_balance(cast: Cast) -> int:
    return account_balance(account_id=books.provider_account_ensure(cast.provider.pk).pk).credit_balance_fen


def grant_available(grant) -> int:
    return account_balance(account_id=grant.account_id).available_fen


# --- The window ---------------------------------------------------------------------------------


def test_a_captured_bill_awaits_the_enterprise_for_the_years_window(cast, grant):
    redemption = bill(cast, grant, number="B-1")

    assert redemption.acknowledgement == A.AWAITING
    assert reloaded(redemption).acknowledge_by == IN_YEAR + WINDOW


def test_a_hold_opens_its_window_when_it_is_captured_not_when_it_is_made(cast, grant):
    held = bill(cast, grant, number="B-1", capture=False)
    assert reloaded(held).acknowledge_by is None

    later = IN_YEAR + timedelta(minutes=5)
    redemption_capture(redemption=held, actor=cast.clerk, now=later)

    assert reloaded(held).acknowledge_by == later + WINDOW
    assert reloaded(held).acknowledgement == A.AWAITING


def test_the_window_is_the_years_policy(db):
    cast = make_cast()
    program_year_create(year=YEAR, actor=cast.admin, pool_fen=1_000_000, default_cap_fen=400_000)
    ProgramYear.objects.filter(year=YEAR).update(acknowledgement_window_days=3)
    program_year_open(year=YEAR, actor=cast.admin)

    redemption = bill(cast, grant_for(cast), number="B-1")

    assert reloaded(redemption).acknowledge_by == IN_YEAR + timedelta(days=3)


# --- Acknowledge ----------------------------------------------------------------------------------


def test_the_enterprise_acknowledges_within_the_window(cast, captured):
    at = IN_YEAR + timedelta(days=6)

    done = redemption_acknowledge(redemption=captured, actor=cast.member, now=at)

    row = reloaded(captured)
    assert done.acknowledgement == row.acknowledgement == A.CONFIRMED
    assert row.acknowledged_by == cast.member and row.acknowledged_at == at


def test_acknowledging_a_confirmed_bill_again_answers_it_unchanged(cast, captured):
    redemption_acknowledge(redemption=captured, actor=cast.member, now=IN_YEAR + timedelta(hours=1))
    colleague = UserFactory(enterprise=cast.enterprise)

    again = redemption_acknowledge(redemption=captured, actor=colleague, now=IN_YEAR + timedelta(days=30))

    assert again.acknowledgement == A.CONFIRMED
    assert again.acknowledged_by == cast.member and again.acknowledged_at == IN_YEAR + timedelta(hours=1)


def test_after_the_window_the_bill_is_deemed_confirmed_and_no_longer_answered(cast, captured, db_snapshot):
    before = db_snapshot()

    for act in (
        lambda: redemption_acknowledge(redemption=captured, actor=cast.member, now=IN_YEAR + WINDOW),
        lambda: redemption_dispute(redemption=captured, actor=cast.member, reason="no", now=IN_YEAR + WINDOW),
    ):
        with pytest.raises(InvalidState) as refused:
            act()
        assert refused.value.extra["reason"] == "window_closed"

    assert db_snapshot() == before


@pytest.mark.parametrize("who", ["clerk", "reviewer", "finance", "other_enterprise", "admin_of_nothing"])
def test_only_a_member_of_the_grants_enterprise_answers_for_the_bill(cast, captured, who, db_snapshot):
    actor = {
        "clerk": cast.clerk,
        "reviewer": cast.reviewer,
        "finance": cast.finance,
        "other_enterprise": UserFactory(enterprise=EnterpriseFactory()),
        "admin_of_nothing": UserFactory(provider=ProviderFactory()),
    }[who]
    before = db_snapshot()

    with pytest.raises(PermissionDenied):
        redemption_acknowledge(redemption=captured, actor=actor, now=IN_YEAR)
    with pytest.raises(PermissionDenied):
        redemption_dispute(redemption=captured, actor=actor, reason="not ours", now=IN_YEAR)

    assert db_snapshot() == before


def test_an_inactive_member_may_not_answer(cast, captured):
    cast.member.is_active = False
    cast.member.save()

    with pytest.raises(PermissionDenied):
        redemption_acknowledge(redemption=captured, actor=cast.member, now=IN_YEAR)


def test_a_hold_is_not_yet_a_bill_to_answer_for(cast, grant):
    held = bill(cast, grant, number="B-1", capture=False)

    with pytest.raises(InvalidState):
        redemption_acknowledge(redemption=held, actor=cast.member, now=IN_YEAR)
    with pytest.raises(InvalidState):
        redemption_dispute(redemption=held, actor=cast.member, reason="no", now=IN_YEAR)


def test_a_reversed_bill_is_not_answered(cast, captured):
    redemption_reverse(redemption=captured, actor=cast.approver, reason="cancelled", now=IN_YEAR)

    with pytest.raises(InvalidState):
        redemption_acknowledge(redemption=captured, actor=cast.member, now=IN_YEAR)


# --- Dispute --------------------------------------------------------------------------------------


def test_the_enterprise_disputes_with_a_reason(cast, captured):
    at = IN_YEAR + timedelta(days=1)

    redemption_dispute(redemption=captured, actor=cast.member, reason="  We never ran this job.  ", now=at)

    row = reloaded(captured)
    assert row.acknowledgement == A.DISPUTED
    assert row.acknowledged_by == cast.member and row.acknowledged_at == at
    assert row.dispute_reason == "We never ran this job."
    assert row.status == Redemption.Status.CAPTURED  # Nothing moves until a reviewer decides.


@pytest.mark.parametrize("reason", ["", "   ", "x" * 2001])
def test_a_dispute_needs_a_reason(cast, captured, reason):
    with pytest.raises(ValidationFailed):
        redemption_dispute(redemption=captured, actor=cast.member, reason=reason, now=IN_YEAR)
    assert reloaded(captured).acknowledgement == A.AWAITING


def test_a_bill_is_answered_once(cast, grant):
    confirmed = bill(cast, grant, number="B-1")
    disputed = bill(cast, grant, number="B-2")
    redemption_acknowledge(redemption=confirmed, actor=cast.member, now=IN_YEAR)
    redemption_dispute(redemption=disputed, actor=cast.member, reason="wrong", now=IN_YEAR)

    with pytest.raises(InvalidState):
        redemption_dispute(redemption=confirmed, actor=cast.member, reason="changed my mind", now=IN_YEAR)
    with pytest.raises(InvalidState):
        redemption_acknowledge(redemption=disputed, actor=cast.member, now=IN_YEAR)
    with pytest.raises(InvalidState):
        redemption_dispute(redemption=disputed, actor=cast.member, reason="again", now=IN_YEAR)


# --- Resolve --------------------------------------------------------------------------------------


@pytest.fixture
def disputed(cast, captured) -> Redemption:
    return redemption_dispute(redemption=captured, actor=cast.member, reason="Never ran.", now=IN_YEAR)


def test_a_dismissed_dispute_leaves_the_bill_to_be_settled(cast, disputed):
    at = IN_YEAR + timedelta(days=2)

    redemption_dispute_resolve(
        redemption=disputed, actor=cast.reviewer, decision="dismiss", note="Usage logs match.", now=at
    )

    row = reloaded(disputed)
    assert row.acknowledgement == A.DISMISSED and row.status == Redemption.Status.CAPTURED
    assert row.dispute_resolved_by == cast.reviewer and row.dispute_resolved_at == at
    assert row.dispute_note == "Usage logs match."
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    assert reloaded(disputed).settlement == settlement and settlement.total_fen == disputed.coupon_fen


def test_an_upheld_dispute_reverses_the_bill_at_once_to_the_fen(cast, grant, disputed):
    available_before, provider_before = grant_available(grant), provider_balance(cast)
    requests_before = ApprovalRequest.objects.count()
    at = IN_YEAR + timedelta(days=2)

    redemption_dispute_resolve(
        redemption=disputed, actor=cast.reviewer, decision="uphold", note="No usage logs.", now=at
    )

    row = reloaded(disputed)
    assert row.acknowledgement == A.UPHELD and row.status == Redemption.Status.REVERSED
    assert row.reversed_to == "grant" and row.reversed_at == at
    # The enterprise asked, the reviewer decided: the reversal's two people, with no approval request.
    assert row.reversal_requested_by == cast.member and row.reversed_by == cast.reviewer
    assert "Never ran." in row.reversal_reason and "No usage logs." in row.reversal_reason
    assert ApprovalRequest.objects.count() == requests_before
    assert grant_available(grant) == available_before + disputed.coupon_fen
    assert provider_balance(cast) == provider_before - disputed.coupon_fen
    with pytest.raises(InvalidState):
        settlement_create(provider=cast.provider, actor=cast.finance)


def test_an_approver_may_resolve_a_dispute_too(cast, disputed):
    redemption_dispute_resolve(redemption=disputed, actor=cast.approver, decision="uphold", note="Agreed.", now=IN_YEAR)

    assert reloaded(disputed).reversed_by == cast.approver


@pytest.mark.parametrize("who", ["member", "clerk", "finance"])
def test_only_a_reviewer_or_approver_resolves(cast, disputed, who, db_snapshot):
    before = db_snapshot()

    with pytest.raises(PermissionDenied):
        redemption_dispute_resolve(
            redemption=disputed, actor=getattr(cast, who), decision="dismiss", note="fine", now=IN_YEAR
        )

    assert db_snapshot() == before


def test_the_disputer_may_not_resolve_their_own_dispute(cast, captured):
    # A member disputes, then leaves the enterprise and joins the fund's staff as a reviewer.
    both = UserFactory(enterprise=cast.enterprise)
    redemption_dispute(redemption=captured, actor=both, reason="Never ran.", now=IN_YEAR)
    both.enterprise = None
    both.save()
    both = User.objects.get(pk=both.pk)  # Its roles are read once per object.
    both.groups.add(Group.objects.get_or_create(name=Role.REVIEWER)[0])

    with pytest.raises(FourEyes):
        redemption_dispute_resolve(redemption=captured, actor=both, decision="dismiss", note="fine", now=IN_YEAR)
    assert reloaded(captured).acknowledgement == A.DISPUTED


def test_the_database_refuses_a_dispute_resolved_by_the_disputer(cast, disputed):
    refused = pytest.raises(IntegrityError, match="coupons_redemption_dispute_four_eyes")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE coupons_redemption SET dispute_resolved_by_id = acknowledged_by_id WHERE id = %s", [disputed.pk]
        )


def test_the_database_refuses_to_settle_an_unacknowledged_bill(cast, captured):
    settlement = settlement_create(provider=cast.provider, actor=cast.finance, now=IN_YEAR + WINDOW)
    refused = pytest.raises(IntegrityError, match="coupons_redemption_settled_only_if_acknowledged")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE coupons_redemption SET acknowledgement = 'disputed' WHERE settlement_id = %s", [settlement.pk]
        )


@pytest.mark.parametrize(
    ("decision", "note", "field"), [("accept", "fine", "decision"), ("uphold", "", "note"), ("dismiss", " ", "note")]
)
def test_a_resolution_needs_a_decision_and_a_note(cast, disputed, decision, note, field):
    with pytest.raises(ValidationFailed) as refused:
        redemption_dispute_resolve(redemption=disputed, actor=cast.reviewer, decision=decision, note=note)
    assert list(refused.value.errors) == [field]
    assert reloaded(disputed).acknowledgement == A.DISPUTED


def test_only_a_disputed_bill_is_resolved_and_only_once(cast, captured):
    with pytest.raises(InvalidState):
        redemption_dispute_resolve(redemption=captured, actor=cast.reviewer, decision="dismiss", note="n", now=IN_YEAR)
    redemption_dispute(redemption=captured, actor=cast.member, reason="Never ran.", now=IN_YEAR)
    redemption_dispute_resolve(redemption=captured, actor=cast.reviewer, decision="dismiss", note="n", now=IN_YEAR)

    with pytest.raises(InvalidState):
        redemption_dispute_resolve(redemption=captured, actor=cast.reviewer, decision="uphold", note="n", now=IN_YEAR)
    assert reloaded(captured).status == Redemption.Status.CAPTURED


def test_a_disputed_bill_reversed_by_an_approved_request_has_nothing_left_to_decide(cast, disputed):
    redemption_reverse(redemption=disputed, actor=cast.approver, reason="cancelled", now=IN_YEAR)

    with pytest.raises(InvalidState):
        redemption_dispute_resolve(redemption=disputed, actor=cast.reviewer, decision="uphold", note="n", now=IN_YEAR)


# --- Settlement takes only acknowledged bills --------------------------------------------------------


def test_a_settlement_takes_only_the_bills_the_enterprise_stands_behind(cast, grant):
    awaiting = bill(cast, grant, number="B-AWAIT")
    confirmed = bill(cast, grant, number="B-OK")
    disputed = bill(cast, grant, number="B-DISPUTE")
    dismissed = bill(cast, grant, number="B-DISMISS")
    upheld = bill(cast, grant, number="B-UPHOLD")
    redemption_acknowledge(redemption=confirmed, actor=cast.member, now=IN_YEAR)
    for each in (disputed, dismissed, upheld):
        redemption_dispute(redemption=each, actor=cast.member, reason="Never ran.", now=IN_YEAR)
    redemption_dispute_resolve(redemption=dismissed, actor=cast.reviewer, decision="dismiss", note="n", now=IN_YEAR)
    redemption_dispute_resolve(redemption=upheld, actor=cast.reviewer, decision="uphold", note="n", now=IN_YEAR)

    settlement = settlement_create(provider=cast.provider, actor=cast.finance, now=IN_YEAR + timedelta(days=1))

    taken = set(Redemption.objects.filter(settlement=settlement).values_list("bill_number", flat=True))
    assert taken == {"B-OK", "B-DISMISS"}
    assert settlement.redemptions_count == 2 and settlement.total_fen == 2 * awaiting.coupon_fen
    assert reloaded(awaiting).acknowledgement == A.AWAITING


def test_a_settlement_after_the_window_deems_the_silent_bills_confirmed_and_takes_them(cast, grant):
    silent = bill(cast, grant, number="B-1")
    disputed = bill(cast, grant, number="B-2")
    redemption_dispute(redemption=disputed, actor=cast.member, reason="Never ran.", now=IN_YEAR)

    settlement = settlement_create(provider=cast.provider, actor=cast.finance, now=IN_YEAR + WINDOW)

    assert reloaded(silent).settlement == settlement
    assert reloaded(silent).acknowledgement == A.DEEMED_CONFIRMED
    assert reloaded(silent).acknowledged_by is None  # Nobody said it: silence did.
    assert reloaded(disputed).settlement is None and reloaded(disputed).acknowledgement == A.DISPUTED


def test_with_only_unanswered_bills_in_their_window_there_is_nothing_to_settle(cast, captured, db_snapshot):
    before = db_snapshot()

    with pytest.raises(InvalidState):
        settlement_create(provider=cast.provider, actor=cast.finance, now=IN_YEAR + WINDOW - timedelta(seconds=1))

    assert db_snapshot() == before


# --- The job ------------------------------------------------------------------------------------------


def test_the_job_deems_confirmed_only_the_silent_bills_past_their_window_and_is_idempotent(cast, grant):
    early = bill(cast, grant, number="B-EARLY", now=IN_YEAR)
    late = bill(cast, grant, number="B-LATE", now=IN_YEAR + timedelta(days=3))
    confirmed = bill(cast, grant, number="B-OK", now=IN_YEAR)
    disputed = bill(cast, grant, number="B-NO", now=IN_YEAR)
    held = bill(cast, grant, number="B-HELD", capture=False, now=IN_YEAR)
    redemption_acknowledge(redemption=confirmed, actor=cast.member, now=IN_YEAR)
    redemption_dispute(redemption=disputed, actor=cast.member, reason="Never ran.", now=IN_YEAR)
    at = IN_YEAR + WINDOW

    assert acknowledgements_deem_confirmed(now=at - timedelta(seconds=1)) == 0
    assert acknowledgements_deem_confirmed(now=at) == 1
    assert acknowledgements_deem_confirmed(now=at) == 0

    states = {r.bill_number: r.acknowledgement for r in Redemption.objects.all()}
    assert states == {
        early.bill_number: A.DEEMED_CONFIRMED,
        late.bill_number: A.AWAITING,
        confirmed.bill_number: A.CONFIRMED,
        disputed.bill_number: A.DISPUTED,
        held.bill_number: A.AWAITING,
    }


def test_the_job_works_in_batches(cast, grant):
    for n in range(5):
        bill(cast, grant, number=f"B-{n}")
    at = IN_YEAR + WINDOW

    assert [acknowledgements_deem_confirmed(now=at, limit=2) for _ in range(4)] == [2, 2, 1, 0]
    assert set(Redemption.objects.values_list("acknowledgement", flat=True)) == {A.DEEMED_CONFIRMED}


def test_the_task_and_the_command_deem_every_bill_due_now(cast, grant):
    # IN_YEAR is months before the clock: every bill captured then is past its window now.
    for n in range(3):
        bill(cast, grant, number=f"B-{n}")

    assert deem_acknowledgements() == 3
    assert deem_acknowledgements() == 0
    bill(cast, grant, number="B-3")
    out = StringIO()
    call_command("deem_acknowledgements", stdout=out)
    assert "Deemed 1 bills confirmed." in out.getvalue()
    assert set(Redemption.objects.values_list("acknowledgement", flat=True)) == {A.DEEMED_CONFIRMED}


def test_a_deemed_bill_is_no_longer_answered_even_inside_its_old_window(cast, captured):
    acknowledgements_deem_confirmed(now=IN_YEAR + WINDOW)

    with pytest.raises(InvalidState):
        redemption_dispute(redemption=captured, actor=cast.member, reason="late", now=IN_YEAR)


def test_the_audit_counts_an_upheld_dispute_as_a_reversal_by_two_people(cast, disputed):
    redemption_dispute_resolve(redemption=disputed, actor=cast.reviewer, decision="uphold", note="n", now=IN_YEAR)

    def two_people_decided():
        run = audit_execute(run_id=audit_run_create().pk)
        return next(check for check in run.checks if check["name"] == "two_people_decided")

    assert two_people_decided()["ok"]
    # The same reversal with someone else named as having asked for it matches neither a request nor the dispute.
    Redemption.objects.filter(pk=disputed.pk).update(reversal_requested_by=cast.approver2)
    assert not two_people_decided()["ok"]
