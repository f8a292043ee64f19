"""Alerts: thresholds and failed audits are recorded once each and mailed once to subscribers."""

import pytest
from django.core import mail

from coupons.models import Alert
from coupons.services.alerts import alerts_check
from coupons.services.audit import audit_execute, audit_run_create
from tests.coupons.conftest import grant_for, make_cast, open_year
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def program(db):
    cast = make_cast()
    open_year(cast.admin, pool_fen=1_000_000, cap_fen=500_000)
    subscriber = UserFactory(roles=["reviewer"], email="watch@fund.example", receives_alerts=True)
    UserFactory(roles=["reviewer"], email="quiet@fund.example")
    return cast, subscriber


def test_pool_thresholds_are_raised_once_each(program):
    cast, subscriber = program
    second = make_cast()
    grant_for(cast, fee_fen=1_000_000, amount_fen=300_000)
    assert alerts_check() == []
    grant_for(second, fee_fen=2_000_000, amount_fen=500_000)  # 800,000 of 1,000,000: 80%
    assert [a.kind for a in alerts_check()] == ["pool_80", "cap_90"]
    assert alerts_check() == []  # Once, not once per run.
    grant_for(cast, fee_fen=1_000_000, amount_fen=150_000)  # 950,000: 95%
    assert [a.kind for a in alerts_check()] == ["pool_95", "cap_90"]
    assert Alert.objects.count() == 4
    assert [m.to for m in mail.outbox] == [[subscriber.email], [subscriber.email]]
    assert all(a.mailed_at for a in Alert.objects.all())


def test_an_enterprise_at_90_percent_of_its_cap(program):
    cast, _ = program
    grant_for(cast, fee_fen=2_000_000, amount_fen=449_999)
    assert alerts_check() == []
    grant_for(cast, fee_fen=1_000_000, amount_fen=1)
    alerts = alerts_check()
    assert [(a.kind, a.key) for a in alerts] == [("cap_90", f"cap:{cast.enterprise.pk}:2026:90")]
    assert "90%" in alerts[0].message


def test_a_failed_audit_is_an_alert(program):
    from django.db import connection

    cast, subscriber = program
    grant_for(cast)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_account SET credits_posted = credits_posted + 1 WHERE code LIKE 'pool:%%'", [])
    run = audit_execute(run_id=audit_run_create().pk)
    alert = Alert.objects.get(kind="audit_failed")
    assert alert.key == f"audit:{run.pk}" and "account_totals_equal_transfers" in alert.message
    assert any(subscriber.email in m.to for m in mail.outbox)
