"""The transactional outbox: enqueue a task with the change that needs it; dispatch after commit."""

import logging
from typing import Any, Final

from celery import current_app
from django.db import transaction
from django.utils import timezone

from coupons.models import OutboxMessage

DISPATCH_BATCH_SIZE: Final = 100
outbox_log = logging.getLogger("coupons.outbox")


def _registry() -> Any:  # Any: Celery's TaskRegistry is untyped.
    """The task registry, with every app's tasks module imported (outside a worker they load lazily)."""
    current_app.loader.import_default_modules()
    return current_app.tasks


def outbox_enqueue(*, task: str, args: list[Any]) -> OutboxMessage:
    """Record the task in the caller's transaction and try to send it as soon as that commits."""
    assert task in _registry(), f"unknown task {task}"
    message = OutboxMessage.objects.create(task=task, args=args)
    transaction.on_commit(lambda: outbox_dispatch(message_ids=[message.pk]))
    return message


def outbox_dispatch(*, message_ids: list[int] | None = None, limit: int = DISPATCH_BATCH_SIZE) -> int:
    """Send messages not yet sent (these ones, or the oldest `limit`); return how many were sent.

    Each message is locked with SKIP LOCKED, so two dispatchers never send one message at once;
    a broker that does not answer leaves the message for the next run.
    """
    sent = 0
    with transaction.atomic():
        pending = OutboxMessage.objects.select_for_update(skip_locked=True).filter(dispatched_at__isnull=True)
        if message_ids is not None:
            pending = pending.filter(pk__in=message_ids)
        for message in pending.order_by("created_at", "pk")[:limit]:
            message.attempts += 1
            try:
                _registry()[message.task].apply_async(args=message.args)
            except Exception:  # The broker is down or refused: try again on the next run.
                outbox_log.exception("could not send %s", message)
                message.save(update_fields=["attempts"])
                continue
            message.dispatched_at = timezone.now()
            message.save(update_fields=["attempts", "dispatched_at"])
            sent += 1
    return sent
