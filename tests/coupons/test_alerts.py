"""Alerts: thresholds and failed audits are recorded once each, with the work that found them, and
mailed once each to subscribers from the outbox, however long the mail server is down."""

from smtplib import SMTPServerDisconnected

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection

from coupons.models import Alert, AuditRun, OutboxMessage, ProgramYear
from coupons.services.alerts import ALERT_DELIVERY_TASK, alert_deliver, alerts_check, alerts_deliver_pending
from coupons.services.audit import audit_execute, audit_run_create
from coupons.services.outbox import outbox_dispatch
from tests.concurrency import THREADS, race
from tests.coupons.conftest import grant_for, make_cast, open_year
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
LOCAL_MAIL = "django.core.mail.backends.locmem.EmailBackend"


class MailDown(BaseEmailBackend):
    """A mail backend whose server does not answer."""

    def send_messages(self, email_messages):
        raise SMTPServerDisconnected("Connection unexpectedly closed")


@pytest.fixture
def program(db):
    cast = make_cast()
    open_year(cast.admin, pool_fen=1_000_000, cap_fen=500_000)
    subscriber = UserFactory(roles=["reviewer"], email="watch@fund.example", receives_alerts=True)
    UserFactory(roles=["reviewer"], email="quiet@fund.example")
    return cast, subscriber


def tamper() -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_account SET credits_posted = credits_posted + 1 WHERE code LIKE 'pool:%%'", [])


def test_pool_thresholds_are_raised_once_each(program, django_capture_on_commit_callbacks):
    cast, subscriber = program
    second = make_cast()
    grant_for(cast, fee_fen=1_000_000, amount_fen=300_000)
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_check() == []
    grant_for(second, fee_fen=2_000_000, amount_fen=500_000)  # 800,000 of 1,000,000: 80%
    with django_capture_on_commit_callbacks(execute=True):
        assert [a.kind for a in alerts_check()] == ["pool_80", "cap_90"]
        assert alerts_check() == []  # Once, not once per run.
    grant_for(cast, fee_fen=1_000_000, amount_fen=150_000)  # 950,000: 95%
    with django_capture_on_commit_callbacks(execute=True):
        assert [a.kind for a in alerts_check()] == ["pool_95", "cap_90"]
    assert Alert.objects.count() == 4
    assert [m.to for m in mail.outbox] == [[subscriber.email]] * 4  # One mail per alert.
    assert all(a.mailed_at for a in Alert.objects.all())
    assert not OutboxMessage.objects.filter(dispatched_at__isnull=True).exists()


def test_an_enterprise_at_90_percent_of_its_cap(program):
    cast, _ = program
    grant_for(cast, fee_fen=2_000_000, amount_fen=449_999)
    assert alerts_check() == []
    grant_for(cast, fee_fen=1_000_000, amount_fen=1)
    alerts = alerts_check()
    # Keyed by the program year's id (for the years from before programs, the year itself).
    year = ProgramYear.objects.get(program_id="hangzhou-compute", year=2026)
    assert [(a.kind, a.key) for a in alerts] == [("cap_90", f"cap:{cast.enterprise.pk}:{year.pk}:90")]
    assert "90%" in alerts[0].message


def test_a_failed_audit_is_an_alert_mailed_to_subscribers_and_auditors(program, django_capture_on_commit_callbacks):
    cast, subscriber = program
    auditor = UserFactory(roles=["auditor"], email="audit@fund.example")
    grant_for(cast)
    tamper()
    with django_capture_on_commit_callbacks(execute=True):
        run = audit_execute(run_id=audit_run_create().pk)
    alert = Alert.objects.get(kind="audit_failed")
    assert alert.key == f"audit:{run.pk}" and "account_totals_equal_transfers" in alert.message
    assert [sorted(m.to) for m in mail.outbox] == [sorted([subscriber.email, auditor.email])]
    assert "account_totals_equal_transfers" in mail.outbox[0].body


def test_a_failed_audit_alert_is_kept_while_mail_is_down_and_mailed_once_when_it_is_back(
    program, settings, django_capture_on_commit_callbacks
):
    cast, subscriber = program
    grant_for(cast)
    tamper()
    settings.EMAIL_BACKEND = f"{__name__}.MailDown"

    # when: the audit fails while the mail server is down
    with django_capture_on_commit_callbacks(execute=True):
        run = audit_execute(run_id=audit_run_create().pk)

    # then: the run is stored failed, the alert is recorded, its delivery waits in the outbox
    assert AuditRun.objects.get(pk=run.pk).status == AuditRun.Status.FAILED
    alert = Alert.objects.get(kind="audit_failed", key=f"audit:{run.pk}")
    assert alert.mailed_at is None
    message = OutboxMessage.objects.get(task=ALERT_DELIVERY_TASK, args=[alert.pk])
    assert message.dispatched_at is None and message.attempts == 1
    assert mail.outbox == []
    # A rerun of the audit (a retry of its task) finds it finished and adds nothing.
    with django_capture_on_commit_callbacks(execute=True):
        audit_execute(run_id=run.pk)
    assert (Alert.objects.count(), OutboxMessage.objects.count()) == (1, 1)
    assert outbox_dispatch() == 0  # Still down: still waiting.
    assert alerts_deliver_pending() == 0

    # when: mail is back
    settings.EMAIL_BACKEND = LOCAL_MAIL
    assert outbox_dispatch() == 1
    assert outbox_dispatch() == 0

    # then: mailed exactly once
    assert [m.to for m in mail.outbox] == [[subscriber.email]]
    alert.refresh_from_db()
    message.refresh_from_db()
    assert alert.mailed_at is not None and message.dispatched_at is not None
    assert alert_deliver(alert_id=alert.pk) is False
    assert alerts_deliver_pending() == 0
    assert len(mail.outbox) == 1


def test_threshold_alerts_are_kept_while_mail_is_down_and_mailed_once_when_it_is_back(
    program, settings, django_capture_on_commit_callbacks
):
    cast, subscriber = program
    grant_for(make_cast(), fee_fen=2_000_000, amount_fen=500_000)
    grant_for(cast, fee_fen=1_000_000, amount_fen=300_000)
    settings.EMAIL_BACKEND = f"{__name__}.MailDown"
    with django_capture_on_commit_callbacks(execute=True):
        alerts = alerts_check()
    assert [a.kind for a in alerts] == ["pool_80", "cap_90"]
    assert not Alert.objects.filter(mailed_at__isnull=False).exists()
    assert OutboxMessage.objects.filter(task=ALERT_DELIVERY_TASK, dispatched_at__isnull=True).count() == 2
    assert mail.outbox == []

    settings.EMAIL_BACKEND = LOCAL_MAIL
    # The periodic sweep mails what a worker gave up on; the outbox then finds nothing left to mail.
    assert alerts_deliver_pending() == 2
    assert outbox_dispatch() == 2
    assert alerts_deliver_pending() == 0
    assert [m.to for m in mail.outbox] == [[subscriber.email]] * 2
    assert not Alert.objects.filter(mailed_at__isnull=True).exists()


def test_an_alert_with_nobody_to_mail_is_marked_mailed(db, django_capture_on_commit_callbacks):
    cast = make_cast()
    open_year(cast.admin, pool_fen=1_000_000, cap_fen=500_000)
    grant_for(make_cast(), fee_fen=2_000_000, amount_fen=500_000)
    grant_for(cast, fee_fen=1_000_000, amount_fen=300_000)
    with django_capture_on_commit_callbacks(execute=True):
        assert len(alerts_check()) == 2
    assert mail.outbox == [] and not Alert.objects.filter(mailed_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_deliveries_racing_on_one_alert_mail_it_once(settings):
    # The outbox, a task's retry and the sweep may all reach one alert at the same moment.
    settings.EMAIL_BACKEND = LOCAL_MAIL
    UserFactory(roles=["reviewer"], email="watch@fund.example", receives_alerts=True)
    alert = Alert.objects.create(kind=Alert.Kind.POOL_80, key="pool:2026:80", message="The 2026 pool is 80% used.")

    results = race([lambda: alert_deliver(alert_id=alert.pk) for _ in range(THREADS)])

    assert sorted(results, key=repr) == [False] * (THREADS - 1) + [True]
    assert [m.to for m in mail.outbox] == [["watch@fund.example"]]
    alert.refresh_from_db()
    assert alert.mailed_at is not None


def test_two_programs_pools_and_caps_alert_each_on_their_own(program, django_capture_on_commit_callbacks):
    from tests.programs import DISTRICT, district_open, grant_in

    cast, subscriber = program
    assert subscriber.receives_alerts
    city = ProgramYear.objects.get(program_id="hangzhou-compute")
    district = district_open(cast.admin, pool_fen=1_000_000, cap_fen=500_000)
    second = make_cast()

    # The city's pool at 80%: the city alerts; the district, untouched, does not.
    grant_for(second, fee_fen=2_000_000, amount_fen=500_000)
    grant_for(cast, fee_fen=1_000_000, amount_fen=300_000)
    with django_capture_on_commit_callbacks(execute=True):
        city_alerts = alerts_check()
    assert [(a.kind, a.details["program"]) for a in city_alerts] == [
        ("pool_80", "hangzhou-compute"),
        ("cap_90", "hangzhou-compute"),
    ]
    pool_alert = city_alerts[0]
    assert pool_alert.key == f"pool:{city.pk}:80"
    assert pool_alert.message == (
        "The Hangzhou computing-power coupons (杭州市算力券) 2026 pool is 80% used (800000 of 1000000 fen)."
    )
    assert pool_alert.details == {
        "program": "hangzhou-compute",
        "program_name": "杭州市算力券",
        "year": 2026,
        "used_fen": 800_000,
        "pool_fen": 1_000_000,
    }

    # The same enterprise near its cap in the district is the district's alert, with the district's key.
    grant_in(second, DISTRICT, fee_fen=2_000_000, amount_fen=450_000)  # 90% of its district cap
    grant_in(cast, DISTRICT, fee_fen=2_000_000, amount_fen=400_000)  # 850,000 of the district's pool
    with django_capture_on_commit_callbacks(execute=True):
        district_alerts = alerts_check()
    assert [(a.kind, a.details["program"]) for a in district_alerts] == [("pool_80", DISTRICT), ("cap_90", DISTRICT)]
    assert district_alerts[0].key == f"pool:{district.pk}:80" != pool_alert.key
    assert district_alerts[1].key == f"cap:{second.enterprise.pk}:{district.pk}:90"
    assert "Test District computing-power coupons (测试区算力券) 2026 pool is 85% used" in district_alerts[0].message
    assert district_alerts[1].message.endswith(
        "has used 90% of its Test District computing-power coupons (测试区算力券) 2026 cap (450000 of 500000 fen)."
    )
    assert alerts_check() == []  # Each once.
    assert Alert.objects.count() == 4 and len(mail.outbox) == 4
    assert {m.subject for m in mail.outbox} >= {f"[coupons] {pool_alert.message}"}
