"""Alerts: the pool at 80% and 95% used, an enterprise at 90% of its cap, a failed
audit. Each is recorded once, by a unique key, however often the checks run, and mailed once to
the staff who subscribe (User.receives_alerts), and for a failed audit to the auditors too.

Recording and mailing are apart, because a mail server can be down when an alert is raised. The
alert row and an outbox message that asks for its delivery are written in the transaction of the
work that found it (an audit run's result, a threshold check), so neither is lost if mail fails.
`alert_deliver` then mails it under a row lock and stamps `mailed_at` in the same transaction:
the task retries with backoff, the outbox sends again what never went out, and the periodic
sweep (`alerts_deliver_pending`) mails what a worker gave up on; the stamp makes every one of
them after the first a no-op.
"""

import logging
from typing import Final

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Role, User
from coupons.models import Alert, AuditRun, ProgramYear
from coupons.selectors import enterprises_near_cap, program_year_figures
from coupons.services.outbox import outbox_enqueue

POOL_THRESHOLDS_BP: Final = ((8000, Alert.Kind.POOL_80), (9500, Alert.Kind.POOL_95))
CAP_THRESHOLD_BP: Final = 9000
ALERT_DELIVERY_TASK: Final = "coupons.tasks.deliver_alert"
ALERT_SWEEP_BATCH_SIZE: Final = 100  # Alerts mailed by one periodic sweep at most.
ALERT_SUBJECT_LENGTH_MAX: Final = 200
alert_log = logging.getLogger("coupons.alerts")


def _record(*, kind: str, key: str, message: str, details: dict[str, object]) -> Alert | None:
    """Record the alert and its delivery unless it was recorded before; return it when it is new."""
    try:
        with transaction.atomic():
            alert = Alert.objects.create(kind=kind, key=key, message=message, details=details)
            outbox_enqueue(task=ALERT_DELIVERY_TASK, args=[alert.pk])
    except IntegrityError:
        return None
    alert_log.warning("alert %s: %s", alert.key, alert.message)
    return alert


def _recipients(alert: Alert) -> list[str]:
    """The subscribers' addresses, and for a failed audit the auditors' too, each once. Staff limited to
    programs (`User.programs`) get only the alerts of their programs; an alert of no program (a failed
    audit) goes to staff whose roles reach every program."""
    program = alert.details.get("program") if isinstance(alert.details, dict) else None
    reach = Q(programs=[]) | Q(programs__contains=[program]) if isinstance(program, str) else Q(programs=[])
    people = User.objects.filter(reach, is_active=True).exclude(email="")
    addresses = set(people.filter(receives_alerts=True).values_list("email", flat=True))
    if alert.kind == Alert.Kind.AUDIT_FAILED:
        addresses |= {user.email for user in people.prefetch_related("groups") if user.has_role(Role.AUDITOR)}
    return sorted(addresses)


def alert_deliver(*, alert_id: int) -> bool:
    """Mail the alert unless it was mailed; True when this call mailed it.

    The row stays locked while the mail server is spoken to, so two deliveries of one alert never
    both mail it; an error from the mail server rolls back and leaves `mailed_at` empty for the
    next attempt. (A crash between the server's acceptance and the commit can mail it twice: a
    mail server takes part in no transaction.)
    """
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert_id)
        if alert.mailed_at is not None:
            return False
        recipients = _recipients(alert)
        if recipients:
            send_mail(
                subject=f"[coupons] {alert.message}"[:ALERT_SUBJECT_LENGTH_MAX],
                message=alert.message,
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=recipients,
            )
        alert.mailed_at = timezone.now()
        alert.save(update_fields=["mailed_at"])
    return True


def alerts_deliver_pending(*, limit: int = ALERT_SWEEP_BATCH_SIZE) -> int:
    """Mail alerts not yet mailed, oldest first; stop at the first mail error. Return how many."""
    mailed = 0
    pending = Alert.objects.filter(mailed_at__isnull=True).order_by("created_at", "pk")
    for alert_id in pending.values_list("pk", flat=True)[:limit]:
        try:
            mailed += alert_deliver(alert_id=alert_id)
        except OSError:  # smtplib's errors are OSErrors: the server is down, try on the next sweep.
            alert_log.exception("could not mail alert %s", alert_id)
            break
    return mailed


def alerts_check() -> list[Alert]:
    """Record the threshold alerts that hold now and were not raised before (mailed from the outbox)."""
    new: list[Alert] = []
    for program_year in ProgramYear.objects.select_related("program").filter(status=ProgramYear.Status.OPEN):
        # Named as people know it; keyed by the program year's id (for years from before programs, the year).
        program = program_year.program
        year, name = program_year.pk, f"{program.name_en} ({program.name}) {program_year.year}"
        figures = program_year_figures(year=program_year.year, program=program_year.program_id)
        used_fen = figures.issued_fen - figures.revoked_fen
        for threshold_bp, kind in POOL_THRESHOLDS_BP:
            if figures.pool_fen and used_fen * 10_000 >= figures.pool_fen * threshold_bp:
                alert = _record(
                    kind=kind,
                    key=f"pool:{year}:{threshold_bp // 100}",
                    message=f"The {name} pool is {used_fen * 100 // figures.pool_fen}% used "
                    f"({used_fen} of {figures.pool_fen} fen).",
                    details={
                        "program": program_year.program_id,
                        "program_name": program.name,
                        "year": program_year.year,
                        "used_fen": used_fen,
                        "pool_fen": figures.pool_fen,
                    },
                )
                if alert:
                    new.append(alert)
        for use in enterprises_near_cap(program_year=program_year, threshold_bp=CAP_THRESHOLD_BP):
            alert = _record(
                kind=Alert.Kind.CAP_90,
                key=f"cap:{use.enterprise}:{year}:90",
                message=f"{use.name} has used {use.used_share_bp // 100}% of its {name} cap "
                f"({use.used_fen} of {use.cap_fen} fen).",
                details={
                    "program": program_year.program_id,
                    "program_name": program.name,
                    "year": program_year.year,
                    "enterprise": use.enterprise,
                    "used_fen": use.used_fen,
                    "cap_fen": use.cap_fen,
                },
            )
            if alert:
                new.append(alert)
    return new


def alert_audit_failed(run: AuditRun) -> Alert | None:
    """Record the failed run's alert; call it in the transaction that stores the run's result."""
    failed = [check["name"] for check in run.checks if not check["ok"]]
    return _record(
        kind=Alert.Kind.AUDIT_FAILED,
        key=f"audit:{run.pk}",
        message=f"Audit {run.pk} failed: {', '.join(failed)}.",
        details={"run": run.pk, "failed": failed},
    )
