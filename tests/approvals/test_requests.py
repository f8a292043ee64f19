"""Maker-checker: one person asks, a different person with the right role decides, and the database
backs every part of it (four eyes, one pending request per target, decided requests final)."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Role
from approvals.errors import FourEyes
from approvals.models import ApprovalRequest
from approvals.registry import approval_action_names
from approvals.services import approval_request_approve, approval_request_create, approval_request_reject
from config.errors import InvalidState, NotFound, PermissionDenied, ValidationFailed
from coupons import books
from coupons.models import Redemption, Settlement
from coupons.services.redemptions import redemption_create, redemption_reverse_request
from coupons.services.settlements import settlement_create, settlement_pay_request
from ledger.models import Transfer
from ledger.selectors import account_balance, account_get
from tests.concurrency import THREADS, race
from tests.coupons.conftest import IN_YEAR, grant_for, make_cast, open_year
from tests.evidence import invoice
from tests.factories import UserFactory


def captured(cast, grant, bill: str = "B1") -> Redemption:
    return redemption_create(
        grant=grant,
        bill_number=bill,
        bill_amount_fen=100_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )


def test_the_coupon_programs_sensitive_actions_are_registered():
    assert set(approval_action_names()) >= {"cap_override", "redemption_reverse", "grant_revoke", "settlement_pay"}


def test_asking_writes_a_pending_request_and_changes_nothing_else(cast, year, db_snapshot):
    redemption = captured(cast, grant_for(cast))
    before = db_snapshot()
    request = redemption_reverse_request(redemption=redemption, requester=cast.reviewer, reason=" Bill cancelled ")
    after = db_snapshot()
    assert {table for table in before if before[table] != after[table]} == {"approvals_approvalrequest"}
    assert (request.action, request.target, request.status, request.reason) == (
        "redemption_reverse",
        f"redemption:{redemption.pk}",
        "pending",
        "Bill cancelled",
    )
    assert (request.requested_by, request.decided_by, request.decided_at) == (cast.reviewer, None, None)


def test_one_pending_request_per_action_and_target(cast, year, db_snapshot):
    redemption = captured(cast, grant_for(cast))
    redemption_reverse_request(redemption=redemption, requester=cast.reviewer, reason="first")
    before = db_snapshot()
    with pytest.raises(InvalidState, match="already pending"):
        redemption_reverse_request(redemption=redemption, requester=cast.approver, reason="second")
    assert db_snapshot() == before


def test_the_requester_may_not_decide_and_nothing_changes(cast, year, db_snapshot):
    redemption = captured(cast, grant_for(cast))
    request = redemption_reverse_request(redemption=redemption, requester=cast.approver, reason="mine")
    before = db_snapshot()
    with pytest.raises(FourEyes):
        approval_request_approve(request_id=request.pk, decider=cast.approver)
    with pytest.raises(FourEyes):
        approval_request_reject(request_id=request.pk, decider=cast.approver, reason="no")
    assert db_snapshot() == before


@pytest.mark.parametrize("role", ["reviewer", "finance"])
def test_a_decider_without_the_role_is_refused(role, cast, year, db_snapshot):
    redemption = captured(cast, grant_for(cast))
    request = redemption_reverse_request(redemption=redemption, requester=cast.approver, reason="why")
    before = db_snapshot()
    with pytest.raises(PermissionDenied):
        approval_request_approve(request_id=request.pk, decider=getattr(cast, role))
    assert db_snapshot() == before


def test_approval_carries_the_action_out_once_and_records_both_people(cast, year):
    grant = grant_for(cast)
    redemption = captured(cast, grant)
    available_before = account_balance(account_id=grant.account_id).available_fen
    request = redemption_reverse_request(redemption=redemption, requester=cast.reviewer, reason="Bill cancelled")
    decided = approval_request_approve(request_id=request.pk, decider=cast.approver, reason="Checked the bill")
    assert (decided.status, decided.decided_by, decided.decision_reason) == (
        "approved",
        cast.approver,
        "Checked the bill",
    )
    redemption.refresh_from_db()
    assert redemption.status == "reversed"
    assert (redemption.reversal_requested_by, redemption.reversed_by) == (cast.reviewer, cast.approver)
    assert account_balance(account_id=grant.account_id).available_fen == available_before + redemption.coupon_fen
    with pytest.raises(InvalidState, match="already approved"):
        approval_request_approve(request_id=request.pk, decider=cast.approver2)


def test_rejection_needs_a_reason_and_does_nothing(cast, year, db_snapshot):
    redemption = captured(cast, grant_for(cast))
    request = redemption_reverse_request(redemption=redemption, requester=cast.reviewer, reason="why")
    before = db_snapshot()
    with pytest.raises(ValidationFailed):
        approval_request_reject(request_id=request.pk, decider=cast.approver, reason="  ")
    assert db_snapshot() == before
    rejected = approval_request_reject(request_id=request.pk, decider=cast.approver, reason="No proof")
    assert (rejected.status, rejected.decision_reason) == ("rejected", "No proof")
    redemption.refresh_from_db()
    assert redemption.status == "captured"
    # A new request may be made once the first is decided.
    assert redemption_reverse_request(redemption=redemption, requester=cast.reviewer, reason="again").pk != request.pk


def test_an_action_refused_at_decision_time_leaves_the_request_pending(cast, year, db_snapshot):
    # given: a reversal asked for, then the redemption put into an unpaid settlement
    redemption = captured(cast, grant_for(cast))
    request = redemption_reverse_request(redemption=redemption, requester=cast.reviewer, reason="why")
    settlement_create(provider=cast.provider, actor=cast.finance)
    before = db_snapshot()
    with pytest.raises(InvalidState, match="awaiting payment"):
        approval_request_approve(request_id=request.pk, decider=cast.approver)
    assert db_snapshot() == before
    assert ApprovalRequest.objects.get(pk=request.pk).status == "pending"


def test_a_settlement_is_paid_by_a_finance_user_who_neither_created_it_nor_asked(cast, year, db_snapshot):
    captured(cast, grant_for(cast))
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    finance2, finance3 = UserFactory(roles=[Role.FINANCE]), UserFactory(roles=[Role.FINANCE])
    request = settlement_pay_request(settlement=settlement, requester=finance2, bank_reference="ICBC-1")
    before = db_snapshot()
    with pytest.raises(FourEyes, match="created"):
        approval_request_approve(request_id=request.pk, decider=cast.finance)
    with pytest.raises(FourEyes):
        approval_request_approve(request_id=request.pk, decider=finance2)
    assert db_snapshot() == before
    approval_request_approve(request_id=request.pk, decider=finance3)
    settlement.refresh_from_db()
    assert (settlement.status, settlement.created_by, settlement.payment_requested_by, settlement.paid_by) == (
        "paid",
        cast.finance,
        finance2,
        finance3,
    )


def test_the_settlement_creator_may_reject_its_payment_but_never_confirm_it(cast, year):
    captured(cast, grant_for(cast))
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    finance2 = UserFactory(roles=[Role.FINANCE])
    request = settlement_pay_request(settlement=settlement, requester=finance2, bank_reference="ICBC-1")
    rejected = approval_request_reject(request_id=request.pk, decider=cast.finance, reason="Wrong bank reference")
    assert (rejected.status, rejected.decided_by) == ("rejected", cast.finance)
    settlement.refresh_from_db()
    assert settlement.status == "open"


def test_an_unknown_request_is_not_found(cast, year):
    with pytest.raises(NotFound):
        approval_request_approve(request_id=10**9, decider=cast.approver)


def test_only_the_right_roles_may_ask(cast, year, db_snapshot):
    redemption = captured(cast, grant_for(cast))
    before = db_snapshot()
    for user in (cast.finance, cast.clerk, cast.member):
        with pytest.raises(PermissionDenied):
            redemption_reverse_request(redemption=redemption, requester=user, reason="why")
    with pytest.raises(PermissionDenied):
        approval_request_create(
            action="redemption_reverse", target="redemption:1", payload={}, reason="why", requester=cast.finance
        )
    assert db_snapshot() == before


# --- What the database itself refuses ------------------------------------------------------------


def _request(cast) -> ApprovalRequest:
    return ApprovalRequest.objects.create(
        action="redemption_reverse", target="redemption:999", payload={}, reason="why", requested_by=cast.reviewer
    )


def test_the_database_refuses_a_decision_by_the_requester(cast, year):
    request = _request(cast)
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.filter(pk=request.pk).update(
            status="approved", decided_by=cast.reviewer, decided_at=timezone.now()
        )


def test_the_database_refuses_a_second_pending_request_for_one_target(cast, year):
    _request(cast)
    with pytest.raises(IntegrityError), transaction.atomic():
        _request(cast)


def test_the_database_keeps_decided_requests_final_and_never_deletes_one(cast, year):
    request = _request(cast)
    with (
        pytest.raises(Exception, match="approval_request_never_deleted"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM approvals_approvalrequest WHERE id = %s", [request.pk])
    ApprovalRequest.objects.filter(pk=request.pk).update(
        status="rejected", decided_by=cast.approver, decided_at=timezone.now(), decision_reason="no"
    )
    with (
        pytest.raises(Exception, match="approval_request_decided_is_final"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE approvals_approvalrequest SET status = 'approved' WHERE id = %s", [request.pk])


@pytest.mark.parametrize(
    ("table", "decider_column", "requester_column"),
    [
        ("coupons_redemption", "reversed_by_id", "reversal_requested_by_id"),
        ("coupons_grant", "revoked_by_id", "revocation_requested_by_id"),
        ("coupons_settlement", "paid_by_id", "payment_requested_by_id"),
    ],
)
def test_the_database_refuses_one_person_on_both_sides(table, decider_column, requester_column, cast, year):
    grant = grant_for(cast)
    captured(cast, grant)
    settlement_create(provider=cast.provider, actor=cast.finance)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {decider_column} = %s, {requester_column} = %s",
            [cast.approver.pk, cast.approver.pk],
        )


def test_the_database_refuses_a_settlement_paid_by_its_creator(cast, year):
    captured(cast, grant_for(cast))
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    with pytest.raises(IntegrityError), transaction.atomic():
        Settlement.objects.filter(pk=settlement.pk).update(paid_by=cast.finance)


# --- Races -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_deciders_racing_on_one_request_carry_the_action_out_once():
    # given: a reversal asked for, and 32 approvers (and rejecters) deciding it at once
    cast = make_cast()
    open_year(cast.admin)
    grant = grant_for(cast)
    redemption = captured(cast, grant)
    request = redemption_reverse_request(redemption=redemption, requester=cast.reviewer, reason="race")
    deciders = [UserFactory(roles=[Role.APPROVER]) for _ in range(THREADS)]

    # when
    results = race(
        [
            (lambda d=d: approval_request_approve(request_id=request.pk, decider=d))
            if index % 2 == 0
            else (lambda d=d: approval_request_reject(request_id=request.pk, decider=d, reason="no"))
            for index, d in enumerate(deciders)
        ]
    )

    # then: exactly one decision; the others were told it is decided; the money moved at most once
    winners = [r for r in results if isinstance(r, ApprovalRequest)]
    losers = [r for r in results if not isinstance(r, ApprovalRequest)]
    assert len(winners) == 1, results
    assert all(isinstance(r, InvalidState) for r in losers), losers
    decided = ApprovalRequest.objects.get(pk=request.pk)
    assert decided.decided_by_id == winners[0].decided_by_id
    redemption.refresh_from_db()
    reversals = Transfer.objects.filter(key=f"redemption:{redemption.pk}:reverse").count()
    if decided.status == "approved":
        assert (redemption.status, reversals) == ("reversed", 1)
    else:
        assert (redemption.status, reversals) == ("captured", 0)
    provider = account_balance(account_id=account_get(code=books.provider_code(cast.provider.pk)).pk)
    assert provider.credits_posted - provider.debits_posted == (0 if decided.status == "approved" else 30_000)


@pytest.mark.django_db(transaction=True)
def test_requesters_racing_for_one_target_make_one_pending_request():
    cast = make_cast()
    open_year(cast.admin)
    redemption = captured(cast, grant_for(cast))
    askers = [UserFactory(roles=[Role.REVIEWER]) for _ in range(THREADS)]
    results = race(
        [lambda a=a: redemption_reverse_request(redemption=redemption, requester=a, reason="race") for a in askers]
    )
    assert len([r for r in results if isinstance(r, ApprovalRequest)]) == 1, results
    # The losers are told a request is pending (409), whether they saw it or ran into the unique index.
    assert all(isinstance(r, (ApprovalRequest, InvalidState)) for r in results), results
    assert ApprovalRequest.objects.filter(status="pending").count() == 1
