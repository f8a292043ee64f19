"""Grants: issued against the pool and the cap in one ledger batch, relaxed caps, revocation."""

import pytest
from django.db import IntegrityError, transaction

from config.errors import InvalidState, PermissionDenied, ValidationFailed
from coupons import books
from coupons.errors import CapExceeded, FourEyes, NotEligible, PoolExhausted
from coupons.grant_codes import grant_code_valid
from coupons.models import Redemption
from coupons.services.applications import application_approve
from coupons.services.redemptions import redemption_capture, redemption_create
from coupons.services.years import year_end
from ledger.selectors import account_balance, account_get
from tests.controls import cap_override_grant, grant_revoke
from tests.coupons.conftest import CAP_FEN, IN_YEAR, POOL_FEN, YEAR, open_year, submit, to_reviewed
from tests.evidence import invoice
from tests.factories import EnterpriseFactory, UserFactory

pytestmark = pytest.mark.django_db


def balance(code: str):
    return account_balance(account_id=account_get(code=code).pk)


def test_issue_moves_pool_and_cap_in_one_batch(cast, year, grant_of):
    grant = grant_of(fee_fen=1_000_000)
    assert grant.amount_fen == 300_000
    assert balance(books.pool_code(YEAR)).available_fen == POOL_FEN - 300_000
    assert balance(books.cap_code(cast.enterprise.pk, YEAR)).available_fen == CAP_FEN - 300_000
    assert balance(books.cap_used_code(YEAR)).credits_posted == 300_000
    grant_balance = account_balance(account_id=grant.account_id)
    assert (grant_balance.credits_posted, grant_balance.available_fen) == (300_000, 300_000)
    assert grant_code_valid(grant.code) and grant.code.startswith("HZ26-")
    assert grant.expires_at == year_end(YEAR)
    assert (grant.enterprise_id, grant.provider_id) == (cast.enterprise.pk, cast.provider.pk)


def test_grace_days_extend_expiry(db):
    from tests.coupons.conftest import grant_for, make_cast

    cast = make_cast()
    open_year(cast.admin, grace_days=15)
    grant = grant_for(cast)
    assert (grant.expires_at - year_end(YEAR)).days == 15


def test_pool_exhausted_says_what_is_left_and_writes_nothing(db, db_snapshot):
    from tests.coupons.conftest import grant_for, make_cast

    cast = make_cast()
    open_year(cast.admin, pool_fen=500_000, cap_fen=10_000_000)
    grant_for(cast, fee_fen=1_000_000)  # 300,000 of the 500,000 pool
    application = to_reviewed(cast, submit(cast, fee_fen=1_000_000))  # wants 300,000
    before = db_snapshot()
    with pytest.raises(PoolExhausted) as caught:
        application_approve(application=application, actor=cast.approver)
    assert caught.value.extra["available_fen"] == 200_000
    assert (caught.value.code, caught.value.http_status) == ("pool_exhausted", 409)
    assert db_snapshot() == before
    # The approver may then approve a smaller amount, exactly what is left.
    application_approve(application=application, actor=cast.approver, approved_fen=200_000)
    assert balance(books.pool_code(YEAR)).available_fen == 0


def test_cap_exceeded_says_what_is_left_and_writes_nothing(cast, year, grant_of, db_snapshot):
    grant_of(fee_fen=1_000_000)  # 300,000 of the 400,000 cap
    application = to_reviewed(cast, submit(cast, fee_fen=1_000_000))
    before = db_snapshot()
    with pytest.raises(CapExceeded) as caught:
        application_approve(application=application, actor=cast.approver)
    assert caught.value.extra["available_fen"] == 100_000
    assert db_snapshot() == before
    application_approve(application=application, actor=cast.approver, approved_fen=100_000)
    assert balance(books.cap_code(cast.enterprise.pk, YEAR)).available_fen == 0


def test_caps_are_per_enterprise(cast, year, grant_of):
    grant_of(fee_fen=1_000_000)
    other = EnterpriseFactory()
    cast.member = UserFactory(enterprise=other)
    cast.enterprise = other
    grant_of(fee_fen=1_000_000)
    assert balance(books.cap_code(other.pk, YEAR)).available_fen == CAP_FEN - 300_000


# --- relaxed caps --------------------------------------------------------------------------------


def relax(cast, cap_fen, **changes):
    kwargs = {
        "year": YEAR,
        "enterprise": cast.enterprise,
        "cap_fen": cap_fen,
        "reason": "Owns a registered foundation model",
        "requested_by": cast.approver2,
        "actor": cast.approver,
        **changes,
    }
    return cap_override_grant(**kwargs)


def test_relaxed_cap_is_a_ledger_credit_and_lets_bigger_grants_through(cast, year, grant_of):
    cast.enterprise.foundation_model_developer = cast.enterprise.foundation_model_developer_verified = True
    cast.enterprise.save()
    grant_of(fee_fen=1_000_000)
    override = relax(cast, 1_000_000)
    assert (override.previous_cap_fen, override.cap_fen) == (CAP_FEN, 1_000_000)
    cap = balance(books.cap_code(cast.enterprise.pk, YEAR))
    assert (cap.credits_posted, cap.available_fen) == (1_000_000, 700_000)
    grant_of(fee_fen=2_000_000)  # 600,000 more: fits only under the relaxed cap
    assert balance(books.cap_code(cast.enterprise.pk, YEAR)).available_fen == 100_000


def test_relaxed_cap_before_any_grant(cast, year, grant_of):
    cast.enterprise.foundation_model_developer = cast.enterprise.foundation_model_developer_verified = True
    cast.enterprise.save()
    relax(cast, 900_000)
    assert balance(books.cap_code(cast.enterprise.pk, YEAR)).credits_posted == 900_000
    relax(cast, 950_000)
    assert balance(books.cap_code(cast.enterprise.pk, YEAR)).credits_posted == 950_000


@pytest.mark.parametrize(
    ("changes", "error", "code"),
    [
        ({"requested_by": "approver"}, FourEyes, "four_eyes"),
        ({"actor": "reviewer"}, PermissionDenied, "permission_denied"),
        ({"reason": "  "}, ValidationFailed, "validation_error"),
        ({"cap_fen": CAP_FEN}, ValidationFailed, "validation_error"),
        ({"cap_fen": -5}, ValidationFailed, "validation_error"),
    ],
)
def test_relaxed_cap_refusals(changes, error, code, cast, year, db_snapshot):
    cast.enterprise.foundation_model_developer = cast.enterprise.foundation_model_developer_verified = True
    cast.enterprise.save()
    changes = {k: getattr(cast, v) if k in ("requested_by", "actor") else v for k, v in changes.items()}
    before = db_snapshot()
    with pytest.raises(error) as caught:
        relax(cast, changes.pop("cap_fen", 1_000_000), **changes)
    assert caught.value.code == code
    assert db_snapshot() == before


def test_relaxed_cap_only_for_foundation_model_enterprises(cast, year, db_snapshot):
    before = db_snapshot()
    with pytest.raises(NotEligible):
        relax(cast, 1_000_000)
    assert db_snapshot() == before


def test_relaxed_cap_only_for_a_verified_enterprise(cast, year, db_snapshot):
    cast.enterprise.foundation_model_developer = cast.enterprise.foundation_model_developer_verified = True
    cast.enterprise.status = "suspended"
    cast.enterprise.save()
    before = db_snapshot()
    with pytest.raises(NotEligible):
        relax(cast, 1_000_000)
    assert db_snapshot() == before


def test_relaxed_cap_is_limited_by_the_years_ceiling(cast, year, db_snapshot):
    cast.enterprise.foundation_model_developer = cast.enterprise.foundation_model_developer_verified = True
    cast.enterprise.save()
    before = db_snapshot()
    with pytest.raises(ValidationFailed) as caught:
        relax(cast, year.relaxed_cap_ceiling_fen + 1)
    assert "ceiling" in caught.value.detail
    assert db_snapshot() == before
    assert relax(cast, year.relaxed_cap_ceiling_fen).cap_fen == year.relaxed_cap_ceiling_fen


def test_four_eyes_on_cap_overrides_is_also_a_database_rule(cast, year):
    from coupons.models import CapOverride

    with pytest.raises(IntegrityError), transaction.atomic():
        CapOverride.objects.create(
            year=year,
            enterprise=cast.enterprise,
            cap_fen=2,
            previous_cap_fen=1,
            reason="x",
            requested_by=cast.approver,
            granted_by=cast.approver,
        )


# --- revocation ----------------------------------------------------------------------------------


def test_revoke_returns_the_unused_balance_to_pool_and_cap(cast, year, grant_of):
    grant = grant_of(fee_fen=1_000_000)  # 300,000
    spent = redemption_create(
        grant=grant, bill_number="B1", bill_amount_fen=200_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )
    redemption_capture(redemption=spent, actor=cast.clerk, now=IN_YEAR)  # 60,000
    held = redemption_create(
        grant=grant, bill_number="B2", bill_amount_fen=100_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )

    revoked = grant_revoke(grant=grant, actor=cast.approver, reason="contract cancelled")

    assert (revoked.status, revoked.revoked_fen) == ("revoked", 240_000)
    held.refresh_from_db()
    assert held.status == Redemption.Status.VOIDED
    assert balance(books.pool_code(YEAR)).available_fen == POOL_FEN - 60_000
    assert balance(books.cap_code(cast.enterprise.pk, YEAR)).available_fen == CAP_FEN - 60_000
    grant_account = account_balance(account_id=grant.account_id)
    assert (grant_account.available_fen, grant_account.debits_pending) == (0, 0)


def test_revoke_refusals(cast, year, grant_of, db_snapshot):
    from coupons.services.grants import grant_revoke as revoke

    grant = grant_of()
    before = db_snapshot()
    with pytest.raises(PermissionDenied):
        revoke(grant=grant, actor=cast.reviewer, requested_by=cast.approver, reason="x")
    with pytest.raises(FourEyes):
        revoke(grant=grant, actor=cast.approver, requested_by=cast.approver, reason="x")
    with pytest.raises(ValidationFailed):
        revoke(grant=grant, actor=cast.approver, requested_by=cast.reviewer, reason="")
    assert db_snapshot() == before
    revoke(grant=grant, actor=cast.approver, requested_by=cast.reviewer, reason="x")
    with pytest.raises(InvalidState):
        revoke(grant=grant, actor=cast.approver, requested_by=cast.reviewer, reason="again")


def test_relaxed_cap_not_for_a_flag_staff_never_confirmed(cast, year, db_snapshot):
    cast.enterprise.foundation_model_developer = True  # Declared by the enterprise only.
    cast.enterprise.save()
    before = db_snapshot()
    with pytest.raises(NotEligible):
        relax(cast, 1_000_000)
    assert db_snapshot() == before
