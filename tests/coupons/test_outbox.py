"""The outbox: a task is recorded with the change that needs it and sent after commit, or later."""

import pytest
from celery import current_app
from django.db import transaction

from coupons.models import AuditRun, OutboxMessage
from coupons.services.audit import audit_run_create
from coupons.services.outbox import outbox_dispatch, outbox_enqueue
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_task_is_sent_after_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = audit_run_create()
        message = outbox_enqueue(task="coupons.tasks.run_audit", args=[run.pk])
    message.refresh_from_db()
    assert message.dispatched_at is not None and message.attempts == 1
    assert AuditRun.objects.get(pk=run.pk).status == "passed"  # Eager here: it ran.


def test_a_rolled_back_change_sends_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox_enqueue(task="coupons.tasks.run_audit", args=[1])
        raise RuntimeError("the change failed")
    assert not OutboxMessage.objects.exists()


def test_a_message_the_broker_refused_is_sent_by_the_next_dispatch(django_capture_on_commit_callbacks, monkeypatch):
    task = current_app.tasks["coupons.tasks.run_audit"]

    def broker_down(*args, **kwargs):
        raise ConnectionError("Redis is restarting")

    run = audit_run_create()
    monkeypatch.setattr(task, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        message = outbox_enqueue(task="coupons.tasks.run_audit", args=[run.pk])
    message.refresh_from_db()
    assert (message.dispatched_at, message.attempts) == (None, 1)
    monkeypatch.undo()

    assert outbox_dispatch() == 1
    assert outbox_dispatch() == 0  # Sent once.
    message.refresh_from_db()
    assert message.dispatched_at is not None and message.attempts == 2
    assert AuditRun.objects.get(pk=run.pk).status == "passed"


def test_unknown_tasks_are_refused():
    with pytest.raises(AssertionError):
        outbox_enqueue(task="coupons.tasks.nothing", args=[])


def test_starting_an_audit_records_its_run_and_its_message_together(cast):
    """The service does what a view did: the run and the message that runs it commit as one."""
    from coupons.services.audit import audit_run_start

    auditor = UserFactory(roles=["auditor"])
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_run_start(started_by=auditor)
        raise RuntimeError("the request failed after")
    assert not AuditRun.objects.exists() and not OutboxMessage.objects.exists()
    run = audit_run_start(started_by=auditor)
    (message,) = OutboxMessage.objects.all()
    assert (message.task, message.args, run.started_by) == ("coupons.tasks.run_audit", [run.pk], auditor)


def test_closing_a_year_now_queues_its_annual_reset_with_the_close(cast, year):
    from coupons.services.reset import program_year_close_now

    closed = program_year_close_now(year=year.year, actor=cast.admin)
    (message,) = OutboxMessage.objects.all()
    assert closed.status == "closed"
    assert (message.task, message.args) == ("coupons.tasks.annual_reset", [year.year, "hangzhou-compute"])
