"""Maker-checker: one person asks for a sensitive action, a different person decides it.

An `ApprovalRequest` is the whole control as data: the action (a word such as `cap_override`),
its target (`grant:12`), what exactly would be done (`payload`), why (`reason`) and on what
(`evidence`), who asked and when, and who decided, when, and why. The action is carried out only
when a different person with the right role approves it, inside the decision's transaction. The
database refuses a decision by the requester (a CHECK constraint), a second pending request for
the same action and target (a partial unique index), and any change to a decided request or any
deletion (triggers): the table is the history.

This app knows nothing of coupons: the apps that own an action register it in
`approvals.registry` (who may ask, who may decide, what to do). A request that belongs to one
of the owning app's programs says so in `payload["program"]` (a slug): staff whose roles are limited
to programs (`accounts.models.User.programs`) see and decide only the requests naming one of theirs.
"""

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import F, Q

ACTION_LENGTH_MAX = 40
TARGET_LENGTH_MAX = 100


class ApprovalRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"

    action = models.CharField(max_length=ACTION_LENGTH_MAX)
    target = models.CharField(max_length=TARGET_LENGTH_MAX, help_text="What the action is on: `grant:12`.")
    payload = models.JSONField(default=dict, help_text="Exactly what is done on approval.")
    reason = models.TextField(help_text="Why the requester asks for it.")
    evidence = models.JSONField(default=list, blank=True, help_text="What the request rests on.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    class Meta:
        constraints = [
            # Four eyes, where no code path can slip past it.
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="approvals_request_four_eyes",
            ),
            models.CheckConstraint(
                condition=Q(status="pending", decided_by__isnull=True, decided_at__isnull=True)
                | Q(status__in=["approved", "rejected"], decided_by__isnull=False, decided_at__isnull=False),
                name="approvals_request_decided_consistently",
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="approvals_request_has_reason"),
            models.CheckConstraint(
                condition=Q(status="approved") | Q(status="pending") | ~Q(decision_reason=""),
                name="approvals_request_rejection_has_reason",
            ),
            models.UniqueConstraint(
                fields=["action", "target"], condition=Q(status="pending"), name="approvals_request_one_pending"
            ),
        ]
        indexes = [models.Index(fields=["status", "requested_at"], name="approvals_request_status")]
        triggers = [
            pgtrigger.Protect(name="approval_request_never_deleted", operation=pgtrigger.Delete),
            # A decided request is history: it never changes again.
            pgtrigger.Protect(
                name="approval_request_decided_is_final",
                operation=pgtrigger.Update,
                condition=pgtrigger.Q(old__status__in=["approved", "rejected"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.target} ({self.status})"
