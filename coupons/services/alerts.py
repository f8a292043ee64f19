"""Alerts (DESIGN.md §5): the pool at 80% and 95% used, an enterprise at 90% of its cap, a failed
audit. Each is recorded once, by a unique key, however often the checks run, and mailed once to
the staff who subscribe (User.receives_alerts)."""

import logging
from typing import Final

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import User
from coupons.models import Alert, AuditRun, ProgramYear
from coupons.selectors import program_year_figures

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
        with connection.cursor() as cursor:
            cursor.execute(
                """
                WITH caps AS (
                    SELECT DISTINCT ON (enterprise_id) enterprise_id, cap_fen FROM coupons_capoverride
                     WHERE year_id = %(year)s ORDER BY enterprise_id, id DESC
                )
                SELECT g.enterprise_id, e.name, sum(g.amount_fen - g.revoked_fen) AS used_fen,
                       coalesce(c.cap_fen, %(default_cap)s) AS cap_fen
                  FROM coupons_grant g JOIN accounts_enterprise e ON e.id = g.enterprise_id
                  LEFT JOIN caps c ON c.enterprise_id = g.enterprise_id
                 WHERE g.year_id = %(year)s
                 GROUP BY g.enterprise_id, e.name, c.cap_fen
                HAVING sum(g.amount_fen - g.revoked_fen) * 10000 >= coalesce(c.cap_fen, %(default_cap)s) * %(bp)s
                """,
                {"year": year, "default_cap": program_year.default_cap_fen, "bp": CAP_THRESHOLD_BP},
            )
            for enterprise_id, name, used, cap in cursor.fetchall():
                alert = _record(
                    kind=Alert.Kind.CAP_90,
                    key=f"cap:{enterprise_id}:{year}:90",
                    message=f"{name} has used {int(used) * 100 // cap}% of its {year} cap ({int(used)} of {cap} fen).",
                    details={"year": year, "enterprise": enterprise_id, "used_fen": int(used), "cap_fen": cap},
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
