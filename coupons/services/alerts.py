"""Alerts (DESIGN.md §5): the pool at 80% and 95% used, an enterprise at 90% of its cap, a failed
audit. Each is recorded once, by a unique key, however often the checks run, and mailed once to
the staff who subscribe (User.receives_alerts)."""

import logging
from typing import Final

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from coupons.models import Alert, AuditRun, ProgramYear
from coupons.selectors import enterprises_near_cap, program_year_figures

POOL_THRESHOLDS_BP: Final = ((8000, Alert.Kind.POOL_80), (9500, Alert.Kind.POOL_95))
CAP_THRESHOLD_BP: Final = 9000
alert_log = logging.getLogger("coupons.alerts")


def _record(*, kind: str, key: str, message: str, details: dict[str, object]) -> Alert | None:
    """Record the alert unless it was recorded before; return it when it is new."""
    try:
        with transaction.atomic():
            return Alert.objects.create(kind=kind, key=key, message=message, details=details)
    except IntegrityError:
        return None


def _mail(alerts: list[Alert]) -> None:
    if not alerts:
        return
    for alert in alerts:
        alert_log.warning("alert %s: %s", alert.key, alert.message)
    recipients = list(
        User.objects.filter(is_active=True, receives_alerts=True).exclude(email="").values_list("email", flat=True)
    )
    if recipients:
        send_mail(
            subject=f"[coupons] {len(alerts)} alert(s): {alerts[0].message}",
            message="\n".join(f"- {alert.message}" for alert in alerts),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
        )
    Alert.objects.filter(pk__in=[a.pk for a in alerts]).update(mailed_at=timezone.now())


def alerts_check() -> list[Alert]:
    """Record (and mail) the threshold alerts that hold now and were not raised before."""
    new: list[Alert] = []
    for program_year in ProgramYear.objects.filter(status=ProgramYear.Status.OPEN):
        year = program_year.year
        figures = program_year_figures(year=year)
        used_fen = figures.issued_fen - figures.revoked_fen
        for threshold_bp, kind in POOL_THRESHOLDS_BP:
            if figures.pool_fen and used_fen * 10_000 >= figures.pool_fen * threshold_bp:
                alert = _record(
                    kind=kind,
                    key=f"pool:{year}:{threshold_bp // 100}",
                    message=f"The {year} pool is {used_fen * 100 // figures.pool_fen}% used "
                    f"({used_fen} of {figures.pool_fen} fen).",
                    details={"year": year, "used_fen": used_fen, "pool_fen": figures.pool_fen},
                )
                if alert:
                    new.append(alert)
        for use in enterprises_near_cap(program_year=program_year, threshold_bp=CAP_THRESHOLD_BP):
            alert = _record(
                kind=Alert.Kind.CAP_90,
                key=f"cap:{use.enterprise}:{year}:90",
                message=f"{use.name} has used {use.used_share_bp // 100}% of its {year} cap "
                f"({use.used_fen} of {use.cap_fen} fen).",
                details={"year": year, "enterprise": use.enterprise, "used_fen": use.used_fen, "cap_fen": use.cap_fen},
            )
            if alert:
                new.append(alert)
    _mail(new)
    return new


def alert_audit_failed(run: AuditRun) -> Alert | None:
    failed = [check["name"] for check in run.checks if not check["ok"]]
    alert = _record(
        kind=Alert.Kind.AUDIT_FAILED,
        key=f"audit:{run.pk}",
        message=f"Audit {run.pk} failed: {', '.join(failed)}.",
        details={"run": run.pk, "failed": failed},
    )
    if alert:
        _mail([alert])
    return alert
