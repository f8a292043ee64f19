"""The Celery worker killed (SIGKILL) in the middle of each periodic job of the beat schedule, then a
fresh worker and the job sent again (as beat's next tick does): the job's effect is there exactly once.

To be sure the kill lands inside the job, the test holds a lock the job needs part-way (a row or a
table it writes or reads after doing some of its work): the job stops there, inside its transaction,
and the worker is killed while it waits. The message of a killed job stays unacknowledged (acks late)
until Redis's visibility timeout; the job's next run is what finishes the work.

The jobs (settings CELERY_BEAT_SCHEDULE) and where each is stopped:
- expire-holds: two holds past their timeout, the second one's grant account held: the first is
  expired and committed, the second waits;
- deem-acknowledgements: a captured bill past its window held, so the deeming UPDATE waits;
- expire-grants: three grants past their expiry; the sweep sends one `expire_grant` each; the
  second grant's account held, so the first lapses and the second waits;
- seal-ledger: the default chain's head held, with unsealed transfers waiting to be sealed;
- check-alerts: the pool 97% used, so two alerts are due (80% and 95%); the second one's key held (an
  uncommitted row with it), so the first is recorded and the second waits;
- nightly-audit: the claims table held (ACCESS EXCLUSIVE), so the audit stops between its checks and
  its run is left `running`; the next nightly run finishes it once it is older than 30 minutes.
- annual-reset: killed at random points over hundreds of grants in tests/coupons/test_reset_crash.py.
- dispatch-outbox is not killed here: it is at-least-once by design (a kill after sending, before
  recording it, sends the message again), its tasks idempotent; tests/faults/test_redis_outage.py
  shows a message kept through a broker outage.

The worker and its broker are the test's own (tests/faults/servers.py); the database is the test's.
"""

import signal
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from coupons.models import Alert, AuditRun, Grant, OutboxMessage, ProgramYear, Redemption
from coupons.services.redemptions import redemption_create
from ledger.chain import ledger_seal
from ledger.models import Account, ChainHead, Transfer, TransferSeal
from tests.coupons.conftest import IN_YEAR, YEAR
from tests.evidence import invoice
from tests.faults.servers import private_redis, send_task, start_worker, wait_for_a_session_waiting_on_a_lock
from tests.project.test_connections import database_url
from tests.project.test_two_web_processes import assert_audit_passes, make_world

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WAIT_S = 60
GRANT_FEN = 50_000


def lock_row(rows: QuerySet[Any]) -> None:
    """FOR UPDATE on the one row, until the caller's transaction ends."""
    rows.select_for_update().get()


def wait_until(done: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        assert time.monotonic() < deadline, f"{what} did not finish:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def test_a_worker_killed_in_each_periodic_job_leaves_each_effect_once(tmp_path: Path) -> None:
    # 7 grants of 50,000 fen use 97% of a pool of 360,000: the 80% and 95% alerts are due.
    world = make_world(grants=7, grant_fen=GRANT_FEN, pool_fen=360_000)
    cast = world.cast
    held, deemed, expiring, spare = world.grants[0:2], world.grants[2], world.grants[3:6], world.grants[6]
    holds = [
        redemption_create(
            grant=grant,
            bill_number=f"H-{n}",
            bill_amount_fen=10_000,
            actor=cast.clerk,
            now=IN_YEAR,
            **invoice(cast.clerk),
        )
        for n, grant in enumerate(held)
    ]
    captured = [
        redemption_create(
            grant=deemed,
            bill_number=f"D-{n}",
            bill_amount_fen=10_000,
            actor=cast.clerk,
            capture=True,
            now=IN_YEAR,
            **invoice(cast.clerk),
        )
        for n in range(2)
    ]
    Grant.objects.filter(pk__in=[grant.pk for grant in expiring]).update(expires_at=IN_YEAR)
    assert Grant.objects.filter(status="active", expires_at__lte=timezone.now()).count() == 3
    log = tmp_path / "worker.log"
    kills = []

    with private_redis(tmp_path) as redis_server:
        worker = start_worker(redis_url=redis_server.url, database_url=database_url(), log=log)

        def killed_in(
            task: str, hold: Callable[[], None], midway: Callable[[], None] | None = None
        ) -> subprocess.Popen[bytes]:
            """Send `task`, kill the worker once it waits on what `hold` locks, check what the killed job
            left (`midway`), then start another worker and send the task again."""
            started = time.monotonic()
            with transaction.atomic():
                hold()
                send_task(task, redis_url=redis_server.url)
                wait_for_a_session_waiting_on_a_lock(WAIT_S)
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=WAIT_S)
                transaction.set_rollback(True)  # What `hold` wrote to take its lock is undone.
            kills.append((task, round(time.monotonic() - started, 1)))
            if midway is not None:
                midway()
            replacement = start_worker(redis_url=redis_server.url, database_url=database_url(), log=log)
            send_task(task, redis_url=redis_server.url)  # Beat's next tick.
            return replacement

        def lock_account(grant: Grant) -> Callable[[], None]:
            return lambda: lock_row(Account.objects.filter(pk=grant.account_id))

        try:
            # expire-holds: killed with the first hold expired and the second waiting
            def first_hold_expired_second_not() -> None:
                statuses = [Redemption.objects.get(pk=hold.pk).status for hold in holds]
                assert statuses == ["expired", "pending"], statuses

            worker = killed_in("coupons.tasks.expire_holds", lock_account(held[1]), first_hold_expired_second_not)
            wait_until(lambda: not Redemption.objects.filter(status="pending").exists(), "expire_holds", log)
            for hold in holds:
                hold.refresh_from_db()
                assert hold.status == "expired"
                assert Transfer.objects.filter(pending_id=hold.hold_transfer_id).count() == 1, "voided once"
                account = Account.objects.get(pk=hold.grant.account_id)
                assert (account.debits_pending, account.debits_posted) == (0, 0), "the hold's coupon is back"

            # deem-acknowledgements: killed while its UPDATE waits on a held bill
            worker = killed_in(
                "coupons.tasks.deem_acknowledgements",
                lambda: lock_row(Redemption.objects.filter(pk=captured[1].pk)),
            )
            wait_until(
                lambda: not Redemption.objects.filter(acknowledgement="awaiting", status="captured").exists(),
                "deem_acknowledgements",
                log,
            )
            assert set(Redemption.objects.filter(grant=deemed).values_list("acknowledgement", flat=True)) == {
                "deemed_confirmed"
            }

            # expire-grants: the sweep's expire_grant tasks, killed with the second grant waiting
            def first_grant_lapsed_second_not() -> None:
                statuses = [Grant.objects.get(pk=grant.pk).status for grant in expiring[:2]]
                assert statuses == ["expired", "active"], statuses

            worker = killed_in(
                "coupons.tasks.expire_grants_due", lock_account(expiring[1]), first_grant_lapsed_second_not
            )
            wait_until(
                lambda: not Grant.objects.filter(status="active", expires_at__lte=IN_YEAR).exists(), "expiry", log
            )
            for grant in expiring:
                grant.refresh_from_db()
                assert grant.status == "expired" and grant.lapsed_fen == GRANT_FEN
                lapses = Transfer.objects.filter(reason="grant_lapse", debit_account_id=grant.account_id)
                assert lapses.count() == 1, f"grant {grant.pk} lapsed {lapses.count()} times"
            assert Grant.objects.get(pk=spare.pk).status == "active"

            # seal-ledger: killed while it waits for the chain's head, with transfers to seal
            ChainHead.objects.get_or_create(chain="ledger")
            unsealed = Transfer.objects.exclude(pk__in=TransferSeal.objects.values("transfer_id")).count()
            assert unsealed > 0
            worker = killed_in("ledger.tasks.seal_ledger", lambda: lock_row(ChainHead.objects.filter(chain="ledger")))
            wait_until(
                lambda: not Transfer.objects.exclude(pk__in=TransferSeal.objects.values("transfer_id")).exists(),
                "seal_ledger",
                log,
            )
            assert TransferSeal.objects.count() == Transfer.objects.count(), "each transfer sealed once"
            assert ledger_seal() == 0

            # check-alerts: killed with the 80% alert recorded and the 95% one waiting on its key
            year = ProgramYear.objects.get(year=YEAR)
            keys = [f"pool:{year.pk}:80", f"pool:{year.pk}:95"]

            def hold_second_key() -> None:
                Alert.objects.create(kind=Alert.Kind.POOL_95, key=keys[1], message="held by the test")

            def first_alert_recorded_second_not() -> None:
                assert list(Alert.objects.values_list("key", flat=True)) == keys[:1]

            worker = killed_in("coupons.tasks.check_alerts", hold_second_key, first_alert_recorded_second_not)
            wait_until(
                lambda: Alert.objects.filter(key__in=keys, mailed_at__isnull=False).count() == 2, "check_alerts", log
            )
            for alert in Alert.objects.all():
                assert OutboxMessage.objects.filter(task="coupons.tasks.deliver_alert", args=[alert.pk]).count() == 1
            assert sorted(Alert.objects.values_list("key", flat=True)) == keys, "each alert recorded once"

            # nightly-audit: killed between its checks, its run left running
            def lock_claims() -> None:
                with connection.cursor() as cursor:
                    cursor.execute("LOCK TABLE coupons_claim IN ACCESS EXCLUSIVE MODE")

            def left_running() -> None:
                assert list(AuditRun.objects.values_list("status", flat=True)) == ["running"]

            worker = killed_in("coupons.tasks.nightly_audit", lock_claims, left_running)
            wait_until(lambda: AuditRun.objects.filter(status="passed").exists(), "nightly_audit", log)
            stale = AuditRun.objects.get(status="running")
            # The next night, the run left behind (over 30 minutes old) is finished, once.
            AuditRun.objects.filter(pk=stale.pk).update(started_at=timezone.now() - timedelta(minutes=31))
            send_task("coupons.tasks.nightly_audit", redis_url=redis_server.url)
            wait_until(lambda: AuditRun.objects.filter(status="passed").count() == 3, "the next nightly_audit", log)
            assert not AuditRun.objects.filter(status="running").exists()
        finally:
            worker.terminate()
            worker.wait(timeout=WAIT_S)

    # and the books: every effect once, the audit passes
    assert_audit_passes()
    print("seconds from each job's start to its kill:", kills)
