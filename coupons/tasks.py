"""Background work of the coupon program ("Background jobs" in docs/architecture.md). Each task
takes ids, not objects, calls one service, and is safe to run twice or to kill: the services'
state guards and ledger transfer keys make a rerun a no-op. Exactly-once effects come from the
database, never from the broker.

Durable work lives in domain rows, which act as the outbox: an AuditRun still `running` and a
closed year with grants past their expiry are found and finished by the periodic tasks below,
even if the broker lost the message that was sent when they were created.
"""

import logging
from datetime import timedelta
from functools import partial
from smtplib import SMTPException
from typing import Final

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from coupons.models import DEFAULT_PROGRAM, Application, AuditRun, Grant, Program, ProgramYear
from coupons.services.acknowledgements import acknowledgements_deem_confirmed
from coupons.services.audit import audit_execute
from coupons.services.grants import GRANTS_EXPIRE_BATCH_SIZE, grant_expire, grants_due
from coupons.services.redemptions import redemptions_expire_holds
from coupons.services.reset import annual_reset as annual_reset_service
from coupons.services.year_end import OPEN_STATUSES as APPLICATION_OPEN_STATUSES
from coupons.services.years import program_year_of, year_end
from ledger.services import pending_transfers_expire

log = logging.getLogger("coupons.tasks")
STALE_AUDIT_AFTER = timedelta(minutes=30)
# Mail retries: 30 s, 1, 2, 4 ... minutes (jittered, at most an hour apart), about a day in all;
# after that the sweep in check_alerts (every 5 minutes) keeps trying.
ALERT_MAIL_RETRIES_MAX: Final = 30
ALERT_MAIL_BACKOFF_S: Final = 30
ALERT_MAIL_BACKOFF_MAX_S: Final = 3600


@shared_task(acks_late=True)
def expire_holds() -> int:
    """Void redemption holds past their timeout, then any other ledger hold past its own."""
    expired = redemptions_expire_holds()
    expired += pending_transfers_expire()
    return expired


@shared_task(acks_late=True)
def deem_acknowledgements() -> int:
    """Deem confirmed the captured bills whose acknowledgement window passed in silence, a batch at a
    time until none is left."""
    deemed = 0
    while changed := acknowledgements_deem_confirmed():
        deemed += changed
    return deemed


@shared_task(acks_late=True)
def expire_grant(grant_id: int) -> int | None:
    """Lapse one grant past its expiry (None: it was expired or revoked already)."""
    return grant_expire(grant_id=grant_id, now=timezone.now())


@shared_task(acks_late=True)
def expire_grants_due() -> list[int]:
    """Send an `expire_grant` for each active grant past its expiry, once the sweep's transaction
    commits (grants valid for months from issue expire at any time of the year, and after it). A
    lost message is harmless: the grant is still due, and the next sweep sends it again."""
    with transaction.atomic():
        due = grants_due(now=timezone.now())
        for grant_id in due:
            transaction.on_commit(partial(expire_grant.delay, grant_id))
    return due


@shared_task(acks_late=True)
def run_audit(run_id: int) -> str:
    return audit_execute(run_id=run_id).status


@shared_task(acks_late=True)
def nightly_audit() -> int:
    """Start tonight's audit, and finish any run that a lost message or a dead worker left running."""
    from coupons.services.audit import audit_run_create

    stale = AuditRun.objects.filter(status=AuditRun.Status.RUNNING, started_at__lt=timezone.now() - STALE_AUDIT_AFTER)
    for run_id in stale.values_list("pk", flat=True):
        audit_execute(run_id=run_id)
    run = audit_run_create()
    audit_execute(run_id=run.pk)
    return run.pk


@shared_task(acks_late=True)
def annual_reset(year: int, program: str = DEFAULT_PROGRAM, batch_size: int | None = None) -> dict[str, object]:
    """Reset one program year (`coupons.services.reset.annual_reset`); `batch_size` grants expire to a
    transaction (default `GRANTS_EXPIRE_BATCH_SIZE`; the crash test sends a small one so that its
    kills land between and inside many batches)."""
    if batch_size is not None and batch_size < 1:
        raise ValueError("batch_size is at least 1")
    report = annual_reset_service(year=year, program=program, batch_size=batch_size or GRANTS_EXPIRE_BATCH_SIZE)
    log.info("annual reset %s %s: %s", program, year, report)
    return report.__dict__


@shared_task(acks_late=True)
def annual_reset_due() -> list[str]:
    """Reset every program year that is over (or closed early) and not yet finished: on 1 January
    right after midnight, and daily after that, so grace periods and lost messages are taken care
    of. Returns the program years reset, as `program:year`."""
    now = timezone.now()
    current = program_year_of(now)
    due = []
    for program_year in (
        ProgramYear.objects.select_related("program")
        .exclude(status=ProgramYear.Status.DRAFT)
        .order_by("program_id", "year")
    ):
        ended = program_year.status == ProgramYear.Status.OPEN and now >= year_end(program_year.year)
        unfinished = program_year.status == ProgramYear.Status.CLOSED and (
            Grant.objects.filter(year=program_year, status=Grant.Status.ACTIVE, expires_at__lte=now).exists()
            or (
                # A closed program gets no next year, so its reset is finished without one.
                program_year.program.status == Program.Status.ACTIVE
                and not ProgramYear.objects.filter(program_id=program_year.program_id, year=program_year.year + 1)
                .exclude(status="draft")
                .exists()
            )
            or (
                # Closed after its open applications were carried into the draft next year: the reset
                # withdraws them.
                program_year.program.status == Program.Status.CLOSED
                and Application.objects.filter(
                    program_id=program_year.program_id,
                    year__year=program_year.year + 1,
                    year__status=ProgramYear.Status.DRAFT,
                    status__in=APPLICATION_OPEN_STATUSES,
                ).exists()
            )
        )
        if (ended or unfinished) and program_year.year < current + 1:
            annual_reset_service(year=program_year.year, now=now, program=program_year.program_id)
            due.append(f"{program_year.program_id}:{program_year.year}")
    return due


@shared_task(acks_late=True)
def check_alerts() -> int:
    """Record pool and cap threshold alerts (each once), and mail any alert not yet mailed."""
    from coupons.services.alerts import alerts_check, alerts_deliver_pending

    raised = len(alerts_check())
    alerts_deliver_pending()
    return raised


@shared_task(
    acks_late=True,
    # smtplib's errors and refused connections are OSErrors; a down mail server is the one
    # transient failure here, retried with exponential backoff.
    autoretry_for=(SMTPException, OSError),
    retry_backoff=ALERT_MAIL_BACKOFF_S,
    retry_backoff_max=ALERT_MAIL_BACKOFF_MAX_S,
    retry_jitter=True,
    max_retries=ALERT_MAIL_RETRIES_MAX,
)
def deliver_alert(alert_id: int) -> bool:
    """Mail one alert, once: a rerun after it was mailed does nothing."""
    from coupons.services.alerts import alert_deliver

    return alert_deliver(alert_id=alert_id)


@shared_task(acks_late=True)
def dispatch_outbox() -> int:
    """Send what the outbox holds that was never sent (a broker restart, a crash after commit)."""
    from coupons.services.outbox import outbox_dispatch

    return outbox_dispatch()
