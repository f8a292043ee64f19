"""Crash safety of the annual reset: a real Celery worker is killed (SIGKILL) at random points of a
reset over hundreds of grants, then restarted and the task sent again, for ten seeds. Every grant
must lapse exactly once, and the lapsed total must equal the balances left, to the fen.

Each seed resets its own program year (2030 to 2039), so one set-up serves all ten. The set-up
commits once (the workers read it from the database); each worker is started one round ahead, on a
queue of its own, so that no round waits for a worker to boot while the one before it works.
"""

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Enterprise
from config.celery import app
from coupons import books
from coupons.models import Application, Grant, ProgramYear
from coupons.services.grants import grant_issue
from coupons.services.reset import program_year_close
from coupons.services.years import program_year_create, program_year_open
from ledger.models import Transfer
from ledger.selectors import account_balance, account_get
from tests.coupons.conftest import make_cast
from tests.coupons.test_worker import REDIS_URL, ROOT, database_url

SEEDS = range(10)
GRANTS_PER_YEAR = int(os.environ.get("CRASH_TEST_GRANTS", "250"))
KILLS_PER_SEED = 2
WAIT_S = 120
# Grants a transaction in the killed resets: small, so that a reset of GRANTS_PER_YEAR grants is ten
# batches and a kill lands between or inside any of them (at the default of 200 there were two, and a
# kill after the last left nothing for the next kill to cut short).
BATCH = 25


def make_year(cast: Any, year: int) -> None:
    """An open year with GRANTS_PER_YEAR grants of 100 fen, issued through the ledger."""
    program_year_create(year=year, actor=cast.admin, pool_fen=10**9, default_cap_fen=10**9)
    program_year = program_year_open(year=year, actor=cast.admin)
    applications = Application.objects.bulk_create(
        Application(
            enterprise=cast.enterprise,
            provider=cast.provider,
            program_id=program_year.program_id,
            year=program_year,
            contract_number=f"K{year}-{n}",
            contract_fee_fen=1_000,
            compute_source="domestic",
            purpose="training",
            rate_bp=3000,
            rate_rule="test",
            eligible_fen=300,
            requested_fen=300,
            recommended_fen=100,
            status="approved",
            submitted_by=cast.member,
            reviewed_by=cast.reviewer,
            approved_by=cast.approver,
        )
        for n in range(GRANTS_PER_YEAR)
    )
    for application in applications:
        application.year = program_year
        grant_issue(application=application, approver=cast.approver, amount_fen=100)
    # Closed early (no grace), so its grants are due now although the year lies in the future.
    program_year_close(year=year, now=timezone.now())


def start_worker(queue: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": database_url(),
        "REDIS_URL": REDIS_URL,
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
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
            "--loglevel=WARNING",
            f"--hostname={queue}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


class Workers:
    """Celery workers, each on a queue of its own, each started one round before it is needed: the
    next worker boots while the current one works (it listens only to its own queue, so it can take
    no message before its round). `take()` gives the ready worker and starts the one after it."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.rounds = itertools.count()
        self.spare = self._start()

    def _start(self) -> tuple[subprocess.Popen[str], str]:
        queue = f"{self.prefix}-{next(self.rounds)}-{os.getpid()}"
        return start_worker(queue), queue

    def take(self) -> tuple[subprocess.Popen[str], str]:
        taken, self.spare = self.spare, self._start()
        return taken

    def close(self) -> None:
        self.spare[0].terminate()
        self.spare[0].wait(timeout=30)


def send_reset(year: int, queue: str, batch_size: int | None = None) -> None:
    with app.connection_for_write() as broker:
        kwargs = {} if batch_size is None else {"batch_size": batch_size}
        app.send_task("coupons.tasks.annual_reset", args=[year], kwargs=kwargs, queue=queue, connection=broker)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_reset_killed_at_random_points_finishes_with_every_grant_lapsed_once():
    with transaction.atomic():
        cast = make_cast()
        Enterprise.objects.filter(pk=cast.enterprise.pk).update(status="verified")
        for seed in SEEDS:
            make_year(cast, 2030 + seed)
    previous = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = REDIS_URL, False
    interrupted = []  # Grants still active right after each kill.
    workers = Workers("crash")
    try:
        for seed in SEEDS:
            year = 2030 + seed
            rng = random.Random(seed)
            assert ProgramYear.objects.get(year=year).status == "closed"
            kills = 0
            for _ in range(KILLS_PER_SEED):
                active = Grant.objects.filter(year__year=year, status="active")
                remaining = active.count()
                if remaining == 0:
                    break  # The last kill came after the last batch: nothing is left to cut short.
                worker, queue = workers.take()
                send_reset(year, queue, batch_size=BATCH)
                # Kill at a random point: once a random number of the remaining grants has lapsed.
                kill_at = remaining - rng.randint(1, max(1, remaining - 1))
                deadline = time.monotonic() + WAIT_S
                while active.count() > kill_at and time.monotonic() < deadline:
                    time.sleep(0.005)
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=30)
                kills += 1
                interrupted.append(Grant.objects.filter(year__year=year, status="active").count())
            # A fresh worker and a fresh message (beat sends one daily): the reset finishes.
            worker, queue = workers.take()
            try:
                send_reset(year, queue)
                deadline = time.monotonic() + WAIT_S
                while Grant.objects.filter(year__year=year, status="active").exists():
                    assert time.monotonic() < deadline, f"seed {seed}: the reset did not finish"
                    time.sleep(0.3)
            finally:
                worker.terminate()
                worker.wait(timeout=30)
            assert kills >= 1
            lapses = Transfer.objects.filter(
                reason="grant_lapse",
                key__startswith="grant:",
                debit_account__code__startswith=books.grant_code_prefix(year),
            )
            assert lapses.count() == GRANTS_PER_YEAR, f"seed {seed}: each grant lapses exactly once"
            lapsed = account_balance(account_id=account_get(code=books.lapsed_code(year)).pk)
            assert lapsed.credits_posted == 100 * GRANTS_PER_YEAR, f"seed {seed}: lapsed total"
            assert (
                sum(Grant.objects.filter(year__year=year).values_list("lapsed_fen", flat=True)) == 100 * GRANTS_PER_YEAR
            )
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM ledger_account WHERE code LIKE %s AND credits_posted - debits_posted <> 0",
                    [f"grant:{year}:%"],
                )
                assert cursor.fetchone() == (0,), f"seed {seed}: every grant account is empty"
    finally:
        workers.close()
        app.conf.broker_url, app.conf.task_always_eager = previous
    # The kills must really have cut resets short, not only hit idle or finished workers.
    assert any(0 < active < GRANTS_PER_YEAR for active in interrupted), interrupted
    print("grants still active after each kill:", interrupted)


CARRY_SEEDS = range(3)
APPLICATIONS_PER_YEAR = int(os.environ.get("CRASH_TEST_APPLICATIONS", "200"))


def make_year_with_open_applications(cast: Any, year: int) -> None:
    """A year closed early with APPLICATIONS_PER_YEAR applications still submitted."""
    program_year_create(year=year, actor=cast.admin, pool_fen=10**9, default_cap_fen=10**9)
    program_year = program_year_open(year=year, actor=cast.admin)
    Application.objects.bulk_create(
        Application(
            enterprise=cast.enterprise,
            provider=cast.provider,
            program_id=program_year.program_id,
            year=program_year,
            contract_number=f"Q{year}-{n}",
            contract_fee_fen=1_000,
            compute_source="domestic",
            purpose="training",
            rate_bp=3000,
            rate_rule="test",
            eligible_fen=300,
            requested_fen=300,
            submitted_by=cast.member,
        )
        for n in range(APPLICATIONS_PER_YEAR)
    )
    program_year_close(year=year, now=timezone.now())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_reset_killed_while_carrying_applications_carries_each_once():
    from coupons.models import ApplicationEvent

    years = [2050 + 2 * seed for seed in CARRY_SEEDS]  # Each year's next year is free.
    with transaction.atomic():
        cast = make_cast()
        Enterprise.objects.filter(pk=cast.enterprise.pk).update(status="verified")
        for year in years:
            make_year_with_open_applications(cast, year)
    previous = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = REDIS_URL, False
    interrupted = []  # Applications still open in the closed year right after each kill.
    workers = Workers("carry")
    try:
        for seed, year in zip(CARRY_SEEDS, years, strict=True):
            rng = random.Random(seed)
            still_open = Application.objects.filter(year__year=year, status="submitted")
            for _ in range(KILLS_PER_SEED):
                worker, queue = workers.take()
                send_reset(year, queue)
                remaining = still_open.count()
                kill_at = remaining - rng.randint(1, max(1, remaining - 1))
                deadline = time.monotonic() + WAIT_S
                while still_open.count() > kill_at and time.monotonic() < deadline:
                    time.sleep(0.005)
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=30)
                interrupted.append(still_open.count())
            worker, queue = workers.take()
            try:
                send_reset(year, queue)
                deadline = time.monotonic() + WAIT_S
                while still_open.exists() or ProgramYear.objects.get(year=year + 1).status != "open":
                    assert time.monotonic() < deadline, f"seed {seed}: the reset did not finish"
                    time.sleep(0.3)
            finally:
                worker.terminate()
                worker.wait(timeout=30)
            carried = Application.objects.filter(
                year__year=year + 1, status="submitted", contract_number__startswith=f"Q{year}-"
            )
            assert carried.count() == APPLICATIONS_PER_YEAR, f"seed {seed}: every application carried"
            events = ApplicationEvent.objects.filter(application__in=carried, action="carried", actor__isnull=True)
            assert events.count() == APPLICATIONS_PER_YEAR, f"seed {seed}: each carried exactly once"
            pool = account_balance(account_id=account_get(code=books.pool_code(year + 1)).pk)
            assert pool.credits_posted == 10**9, f"seed {seed}: the next year opened once"
    finally:
        workers.close()
        app.conf.broker_url, app.conf.task_always_eager = previous
    assert any(0 < count < APPLICATIONS_PER_YEAR for count in interrupted), interrupted
    print("applications still open after each kill:", interrupted)
