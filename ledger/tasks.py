"""Background work of the ledger. Thin: each task calls one service whose own guards make a
rerun a no-op, so the tasks are acknowledged late and may be delivered twice."""

from celery import shared_task

from ledger.chain import SEAL_BATCH_SIZE, ledger_seal

SEAL_ROUNDS_MAX = 20  # At most 20 batches a run; the next run, seconds later, takes the rest.


@shared_task(acks_late=True)
def seal_ledger() -> int:
    """Extend the hash chain over newly committed transfers (every few seconds, by beat)."""
    sealed = 0
    for _ in range(SEAL_ROUNDS_MAX):
        batch = ledger_seal(limit=SEAL_BATCH_SIZE)
        sealed += batch
        if batch < SEAL_BATCH_SIZE:
            break
    return sealed
