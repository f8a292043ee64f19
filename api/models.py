"""What the REST API keeps between requests: the first answer to each idempotency key.

A client that sends `Idempotency-Key` on a money-moving POST may send it again after a timeout or
a crash; the same key and the same body get the first answer again, and nothing happens twice.
A record belongs to one caller (a user, or a provider's API key acting as its machine user), so
two callers' keys never meet. It is written in the same transaction as the effect it records.
"""

from django.conf import settings
from django.db import models


class IdempotencyRecord(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="api_idempotency_key_once_per_caller")]

    def __str__(self) -> str:
        return f"{self.key} ({self.method} {self.path})"
