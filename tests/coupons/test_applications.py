"""The application state machine and every check on submission; refusals write nothing."""

import pytest

from accounts.models import Enterprise, Provider
from accounts.services import related_party_add
from config.errors import InvalidState, PermissionDenied, ValidationFailed
from coupons.errors import (
    AffiliatedProvider,
    DuplicateContract,
    EnterpriseNotVerified,
    FourEyes,
    ProgramYearClosed,
    ProviderNotListed,
)
from coupons.models import Application, ApplicationEvent, Grant
from coupons.services.applications import (
    application_approve,
    application_confirm,
    application_reject,
    application_review,
    application_submit,
    application_withdraw,
)
from tests.coupons.conftest import IN_YEAR, YEAR, submit, to_reviewed
from tests.evidence import checked, contract
from tests.factories import ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_submit_computes_rate_and_eligible_amount(cast, year):
    application = submit(cast, fee_fen=333_333, compute_source="domestic", purpose="training")
    assert (application.status, application.rate_bp, application.eligible_fen) == ("submitted", 3000, 99_999)
    assert application.requested_fen == 99_999  # Defaults to the eligible amount.
    assert application.year.year == 2026
    assert application.rate_rule == "Domestic compute"
    assert list(application.events.values_list("action", flat=True)) == ["submitted"]


def test_submit_with_a_smaller_request(cast, year):
    application = submit(cast, fee_fen=1_000_000, requested_fen=150_000)
    assert (application.eligible_fen, application.requested_fen) == (300_000, 150_000)


def test_the_whole_way_to_approval(cast, year):
    application = submit(cast, fee_fen=1_000_000)
    application_confirm(application=application, actor=cast.clerk)
    application_review(
        application=application,
        actor=cast.reviewer,
        recommended_fen=250_000,
        note="fits the plan",
        **checked(application),
    )
    approved = application_approve(application=application, actor=cast.approver, approved_fen=200_000)
    assert approved.status == "approved"
    assert approved.approved_by == cast.approver
    grant = Grant.objects.get(application=application)
    assert (grant.amount_fen, grant.rate_bp, grant.status) == (200_000, 3000, "active")
    assert list(application.events.values_list("action", flat=True)) == [
        "submitted",
        "confirmed",
        "reviewed",
        "approved",
    ]


def test_approval_defaults_to_the_recommended_amount(cast, year):
    application = to_reviewed(cast, submit(cast, fee_fen=1_000_000), 123_456)
    application_approve(application=application, actor=cast.approver)
    assert Grant.objects.get(application=application).amount_fen == 123_456


def refused(db_snapshot, error, call, **kwargs):
    before = db_snapshot()
    with pytest.raises(error) as caught:
        call(**kwargs)
    assert db_snapshot() == before, "a refusal wrote something"
    return caught.value


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"contract_fee_fen": 0}, "contract_fee_fen"),
        ({"contract_fee_fen": -1}, "contract_fee_fen"),
        ({"contract_fee_fen": 1.5}, "contract_fee_fen"),
        ({"contract_fee_fen": "100"}, "contract_fee_fen"),
        ({"contract_fee_fen": 10**13 + 1}, "contract_fee_fen"),
        ({"contract_fee_fen": 3}, "contract_fee_fen"),  # 30% of 3 fen rounds down to nothing.
        ({"requested_fen": 300_001}, "requested_fen"),
        ({"requested_fen": 0}, "requested_fen"),
        ({"compute_source": "cloud"}, "compute_source"),
        ({"purpose": "mining"}, "purpose"),
        ({"contract_number": ""}, "contract_number"),
        ({"contract_number": "x" * 65}, "contract_number"),
    ],
)
def test_submit_refuses_bad_input(changes, field, cast, year, db_snapshot):
    kwargs = {
        "actor": cast.member,
        "provider": cast.provider,
        "contract_number": "C-1",
        "contract_fee_fen": 1_000_000,
        "compute_source": "domestic",
        "purpose": "training",
        "now": IN_YEAR,
        **contract(cast.member, YEAR),
        **changes,
    }
    error = refused(db_snapshot, ValidationFailed, application_submit, **kwargs)
    assert field in error.errors and error.code == "validation_error"


@pytest.mark.parametrize("status", [Enterprise.Status.PENDING, Enterprise.Status.SUSPENDED])
def test_submit_needs_a_verified_enterprise(status, cast, year, db_snapshot):
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(status=status)
    error = refused(db_snapshot, EnterpriseNotVerified, submit, cast=cast)
    assert error.code == "enterprise_not_verified"


def test_submit_needs_an_active_listed_provider(cast, year, db_snapshot):
    Provider.objects.filter(pk=cast.provider.pk).update(status=Provider.Status.SUSPENDED)
    assert refused(db_snapshot, ProviderNotListed, submit, cast=cast).code == "provider_not_listed"


def test_submit_needs_an_open_year(cast, db_snapshot):
    assert refused(db_snapshot, ProgramYearClosed, submit, cast=cast).code == "program_year_closed"


def test_one_contract_is_subsidised_once_across_years(cast, year, db_snapshot):
    submit(cast, number="SAME-1")
    assert refused(db_snapshot, DuplicateContract, submit, cast=cast, number="SAME-1").code == "duplicate_contract"


def test_same_contract_number_with_another_provider_is_another_contract(cast, year):
    submit(cast, number="SAME-1")
    submit(cast, number="SAME-1", provider=ProviderFactory())
    assert Application.objects.filter(contract_number="SAME-1").count() == 2


def test_a_rejected_contract_may_be_applied_for_again(cast, year):
    first = submit(cast, number="AGAIN")
    application_reject(application=first, actor=cast.reviewer, reason="missing invoice")
    second = submit(cast, number="AGAIN")
    assert second.status == "submitted"


def test_provider_may_not_be_the_enterprise_itself(cast, year, db_snapshot):
    Provider.objects.filter(pk=cast.provider.pk).update(uscc=cast.enterprise.uscc)
    assert refused(db_snapshot, AffiliatedProvider, submit, cast=cast).code == "affiliated_provider"


def test_provider_may_not_be_a_related_party(cast, year, db_snapshot):
    related_party_add(uscc_a=cast.provider.uscc, uscc_b=cast.enterprise.uscc, actor=cast.reviewer)
    refused(db_snapshot, AffiliatedProvider, submit, cast=cast)


def test_only_enterprise_members_apply(cast, year, db_snapshot):
    refused(db_snapshot, PermissionDenied, submit, cast=cast, actor=cast.clerk)
    refused(db_snapshot, PermissionDenied, submit, cast=cast, actor=cast.reviewer)


# --- transitions ---------------------------------------------------------------------------------


def test_only_the_contracts_provider_confirms(cast, year, db_snapshot):
    application = submit(cast)
    other_clerk = UserFactory(provider=ProviderFactory())
    for actor in (other_clerk, cast.member, cast.reviewer):
        refused(db_snapshot, PermissionDenied, application_confirm, application=application, actor=actor)


def test_review_needs_the_reviewer_role_and_a_confirmed_application(cast, year, db_snapshot):
    application = submit(cast)
    refused(
        db_snapshot,
        InvalidState,
        application_review,
        application=application,
        actor=cast.reviewer,
        recommended_fen=1,
        **checked(application),
    )
    application_confirm(application=application, actor=cast.clerk)
    refused(
        db_snapshot,
        PermissionDenied,
        application_review,
        application=application,
        actor=cast.approver,
        recommended_fen=1,
        **checked(application),
    )
    error = refused(
        db_snapshot,
        ValidationFailed,
        application_review,
        application=application,
        actor=cast.reviewer,
        recommended_fen=application.requested_fen + 1,
        **checked(application),
    )
    assert "recommended_fen" in error.errors


def test_four_eyes_the_reviewer_may_not_approve(cast, year, db_snapshot):
    both = UserFactory(roles=["reviewer", "approver"])
    application = submit(cast)
    application_confirm(application=application, actor=cast.clerk)
    application_review(application=application, actor=both, recommended_fen=1_000, **checked(application))
    error = refused(db_snapshot, FourEyes, application_approve, application=application, actor=both)
    assert (error.code, error.http_status) == ("four_eyes", 403)


def test_approval_may_not_exceed_the_recommendation(cast, year, db_snapshot):
    application = to_reviewed(cast, submit(cast), 1_000)
    error = refused(
        db_snapshot,
        ValidationFailed,
        application_approve,
        application=application,
        actor=cast.approver,
        approved_fen=1_001,
    )
    assert "approved_fen" in error.errors


def test_approve_needs_a_reviewed_application_and_the_role(cast, year, db_snapshot):
    application = submit(cast)
    refused(db_snapshot, InvalidState, application_approve, application=application, actor=cast.approver)
    to_reviewed(cast, application)
    refused(db_snapshot, PermissionDenied, application_approve, application=application, actor=cast.finance)


@pytest.mark.parametrize("steps", [0, 1, 2])
def test_reject_before_approval_with_a_reason(steps, cast, year, db_snapshot):
    application = submit(cast)
    if steps >= 1:
        application_confirm(application=application, actor=cast.clerk)
    if steps >= 2:
        application_review(application=application, actor=cast.reviewer, recommended_fen=1_000, **checked(application))
    refused(db_snapshot, ValidationFailed, application_reject, application=application, actor=cast.approver, reason=" ")
    rejected = application_reject(application=application, actor=cast.approver, reason="not compute")
    assert (rejected.status, rejected.reject_reason, rejected.rejected_by) == ("rejected", "not compute", cast.approver)


def test_withdraw_by_the_enterprise_before_approval(cast, year, db_snapshot):
    application = submit(cast)
    refused(db_snapshot, PermissionDenied, application_withdraw, application=application, actor=cast.clerk)
    assert application_withdraw(application=application, actor=cast.member).status == "withdrawn"
    refused(db_snapshot, InvalidState, application_withdraw, application=application, actor=cast.member)


@pytest.mark.parametrize("action", ["confirm", "reject", "withdraw", "approve"])
def test_an_approved_application_is_final(action, cast, year, db_snapshot):
    application = to_reviewed(cast, submit(cast))
    application_approve(application=application, actor=cast.approver)
    calls = {
        "confirm": lambda: application_confirm(application=application, actor=cast.clerk),
        "reject": lambda: application_reject(application=application, actor=cast.reviewer, reason="late"),
        "withdraw": lambda: application_withdraw(application=application, actor=cast.member),
        "approve": lambda: application_approve(application=application, actor=cast.approver2),
    }
    error = refused(db_snapshot, InvalidState, calls[action])
    assert (error.code, error.http_status) == ("invalid_state", 409)


def test_history_is_insert_only(cast, year):
    from django.db import ProgrammingError, connection, transaction

    submit(cast)
    with pytest.raises(ProgrammingError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE coupons_applicationevent SET note = 'edited'")
    assert ApplicationEvent.objects.filter(note="edited").count() == 0
