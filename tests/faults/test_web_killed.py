"""The web process killed (SIGKILL) in the middle of a redemption: the client's retry with the same
Idempotency-Key gets the first answer or a fresh success, and the grant is debited once.

To be sure the kill lands inside the request, the test holds the grant's ledger account (FOR UPDATE):
the request has recorded its key and locked its grant, and waits there, inside its transaction.

- The gunicorn worker is killed there. Nothing was committed (PostgreSQL rolls the dead session's
  transaction back); the client saw its connection cut, retries, and gets a fresh 201.
- The client gives up waiting, and the gunicorn master is killed. Its orphaned worker finishes the
  request once the lock is released and commits: an answer nobody received. A new gunicorn is started
  (what the supervisor does); the client's retry gets that first answer, replayed, not a second debit.
"""

import signal
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.db import transaction

from coupons.models import Redemption
from ledger.models import Account
from tests.faults.servers import stop, wait_for_a_session_waiting_on_a_lock
from tests.project.test_connections import Service, start_service
from tests.project.test_two_web_processes import (
    Answer,
    assert_audit_passes,
    assert_grants_exact,
    call,
    make_world,
    redeem_body,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WAIT_S = 30
COUPON_FEN = 8_333  # Of a bill of 27,778 fen at 30%.


def in_background(work: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(work())
        except Exception as error:  # Judged by the test.
            result.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_a_web_process_killed_mid_redemption_debits_once(tmp_path: Path) -> None:
    world = make_world(grants=1)
    grant = world.grants[0]
    killed_worker = redeem_body(world, grant, "K-1")
    killed_master = redeem_body(world, grant, "K-2")
    service = start_service(extra_env={}, log=tmp_path / "web-1.log", workers=1)
    replacement: Service | None = None
    try:
        # when: the gunicorn worker is killed while its request waits inside its transaction
        with transaction.atomic():
            Account.objects.select_for_update().get(pk=grant.account_id)
            thread, cut = in_background(
                lambda: call(service.port, api_key=world.api_key, idempotency_key="kill-1", body=killed_worker)
            )
            wait_for_a_session_waiting_on_a_lock()
            (worker,) = psutil.Process(service.process.pid).children()
            worker.send_signal(signal.SIGKILL)
            thread.join(WAIT_S)
        # then: the client saw no answer; its retry (to the worker gunicorn started instead) is a fresh success
        assert isinstance(cut[0], OSError), cut
        retried = call(service.port, api_key=world.api_key, idempotency_key="kill-1", body=killed_worker)
        assert (retried.status, retried.replayed, retried.body["coupon_fen"]) == (201, False, COUPON_FEN), retried
        again = call(service.port, api_key=world.api_key, idempotency_key="kill-1", body=killed_worker)
        assert again.replayed and again.first == retried.first

        # when: the client gives up waiting, and the gunicorn master is killed mid-request
        with transaction.atomic():
            Account.objects.select_for_update().get(pk=grant.account_id)
            thread, gave_up = in_background(
                lambda: call(
                    service.port, api_key=world.api_key, idempotency_key="kill-2", body=killed_master, timeout=2
                )
            )
            wait_for_a_session_waiting_on_a_lock()
            (orphan,) = psutil.Process(service.process.pid).children()
            service.process.send_signal(signal.SIGKILL)
            service.process.wait(timeout=WAIT_S)
            thread.join(WAIT_S)
        assert isinstance(gave_up[0], OSError), gave_up  # The client's timeout: no answer.
        # The orphaned worker finishes the request it had (and commits it), then exits: its parent is gone.
        psutil.wait_procs([orphan], timeout=WAIT_S)
        assert not orphan.is_running()
        replacement = start_service(extra_env={}, log=tmp_path / "web-2.log", workers=1)
        # then: the retry gets the answer that was committed and never delivered: replayed, not redone
        first: Answer = call(replacement.port, api_key=world.api_key, idempotency_key="kill-2", body=killed_master)
        assert (first.status, first.replayed, first.body["coupon_fen"]) == (201, True, COUPON_FEN), first
    finally:
        stop(service.process)  # type: ignore[arg-type]
        if replacement is not None:
            stop(replacement.process)  # type: ignore[arg-type]

    # and the grant was debited once per bill: two coupons, in rows and in the ledger
    assert sorted(Redemption.objects.filter(grant=grant).values_list("bill_number", "coupon_fen")) == [
        ("K-1", COUPON_FEN),
        ("K-2", COUPON_FEN),
    ]
    assert assert_grants_exact(world) == {grant.pk: 2 * COUPON_FEN}
    assert_audit_passes()
