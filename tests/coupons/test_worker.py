"""The background tasks through a real Celery worker process and Redis (not eagerly).

The worker is started here, on a queue of its own, pointed at the test database; the test sends
tasks through Redis and watches the database for their effects.
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection

from config.celery import app
from coupons.models import AuditRun, Redemption
from coupons.services.audit import audit_run_create
from coupons.services.redemptions import redemption_create
from ledger.models import TransferSeal
from tests.coupons.conftest import grant_for, make_cast, open_year
from tests.evidence import invoice

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
WAIT_S = 60


def database_url() -> str:
    """The test database, as a URL the worker's settings read."""
    db = connection.settings_dict
    host = db["HOST"] or db["OPTIONS"].get("host", "")
    if host.startswith("/"):
        return f"postgres://{db['USER']}@/{db['NAME']}?host={host}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker() -> Iterator[str]:
    assert redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping(), f"Redis must answer at {REDIS_URL}"
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": database_url(),
        "REDIS_URL": REDIS_URL,
        "PYTHONPATH": str(ROOT),
        # The worker reads the documents this test process stored (the audit's storage check).
        "DOCUMENTS_ROOT": str(settings.DOCUMENTS_ROOT),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--queues",
            queue,
            "--without-mingle",
            "--without-gossip",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    previous = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = REDIS_URL, False
    try:
        yield queue
    finally:
        app.conf.broker_url, app.conf.task_always_eager = previous
        process.terminate()
        output, _ = process.communicate(timeout=30)
        print(output[-4000:])


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"the worker did not {what} within {WAIT_S} s")


@pytest.mark.django_db(transaction=True)
def test_tasks_run_on_a_real_worker_through_redis(worker, settings):
    # given: a program with a hold whose timeout has already run out, and unsealed transfers
    cast = make_cast()
    open_year(cast.admin)
    grant = grant_for(cast)
    settings.COUPONS_HOLD_TIMEOUT_S = 1
    hold = redemption_create(
        grant=grant, bill_number="W1", bill_amount_fen=10_000, actor=cast.clerk, **invoice(cast.clerk)
    )
    time.sleep(1.1)
    run = audit_run_create()

    # when: the three kinds of task go through Redis to the worker
    with app.connection_for_write() as broker:
        app.send_task("ledger.tasks.seal_ledger", queue=worker, connection=broker)
        app.send_task("coupons.tasks.expire_holds", queue=worker, connection=broker)
        app.send_task("coupons.tasks.run_audit", args=[run.pk], queue=worker, connection=broker)

    # then: their effects show in the database
    wait_for(lambda: TransferSeal.objects.exists(), "seal the ledger")
    wait_for(lambda: Redemption.objects.get(pk=hold.pk).status == "expired", "expire the hold")
    wait_for(lambda: AuditRun.objects.get(pk=run.pk).status != "running", "finish the audit")
    assert AuditRun.objects.get(pk=run.pk).status == "passed", AuditRun.objects.get(pk=run.pk).checks
