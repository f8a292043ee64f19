"""`make run` runs the jobs: `python -m config.run` starts gunicorn, a Celery worker and beat on an
embedded Redis (REDIS_URL unset), and a hold left past its timeout is released by them, with nobody
redeeming again; the schedule and the logs are shown; Ctrl-C stops every process it started."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from coupons.models import Redemption
from coupons.services.redemptions import redemption_create
from tests.coupons.conftest import IN_YEAR, grant_for, make_cast, open_year
from tests.evidence import invoice
from tests.project.test_connections import database_url, free_port

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60
EXPIRY_TIMEOUT_S = 60


def test_make_run_serves_and_runs_the_jobs_and_stops_them_all(tmp_path: Path) -> None:
    cast = make_cast()
    open_year(cast.admin)
    grant = grant_for(cast, fee_fen=100_000)
    # Held months ago (its timeout long past) and left: only the jobs can release it now.
    hold = redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )
    assert hold.status == Redemption.Status.PENDING
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "PORT": str(port),
        "RUN_LOG_DIR": str(tmp_path),
        "RUN_STATE_DIR": str(tmp_path / "state"),  # Missing, as var/ in a fresh clone: the runner makes it.
        "COUPONS_EXPIRE_HOLDS_EVERY_S": "1",
        "WEB_WORKERS": "1",
        "WORKER_CONCURRENCY": "1",
    }
    env.pop("REDIS_URL", None)
    runner = subprocess.Popen(
        [sys.executable, "-m", "config.run"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = b""
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert runner.stdout is not None
        while b"Stop with Ctrl-C" not in output:
            assert runner.poll() is None and time.monotonic() < deadline, output.decode()
            output += runner.stdout.readline()
        text = output.decode()
        # The schedule and where each process logs are shown.
        assert re.search(r"nightly-audit\s+coupons.tasks.nightly_audit\s+daily at 02:30 Asia/Shanghai", text), text
        pids = {name: int(pid) for name, pid in re.findall(r"^  (\w+)\s+\S+\.log\s+\(pid (\d+)\)", text, re.M)}
        assert set(pids) == {"redis", "web", "worker", "beat"}, text
        assert all((tmp_path / f"{name}.log").exists() for name in pids)

        # The web answers, under gunicorn.
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "web.log").read_text()
                time.sleep(0.3)

        # The hold is released by beat and the worker, with no request.
        deadline = time.monotonic() + EXPIRY_TIMEOUT_S
        while Redemption.objects.get(pk=hold.pk).status == Redemption.Status.PENDING:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.5)
        assert Redemption.objects.get(pk=hold.pk).status == Redemption.Status.EXPIRED
        children = [psutil.Process(pid) for pid in pids.values()]
        descendants = [child for process in children for child in process.children(recursive=True)]
    finally:
        runner.send_signal(signal.SIGINT)  # Ctrl-C
        runner.wait(timeout=60)
    assert runner.returncode == 0
    _, alive = psutil.wait_procs([*children, *descendants], timeout=10)
    assert not alive, f"still running after Ctrl-C: {alive}"
