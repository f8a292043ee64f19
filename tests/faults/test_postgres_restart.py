"""PostgreSQL restarted (`pg_ctl restart -m fast`) while gunicorn takes concurrent redemptions.

The server is the test's own (tests/faults/servers.py: initdb in a temporary directory, a copy of the
test database), so cutting every session harms nobody else. Clients do what the API asks of them
(docs/api.md, "Idempotency"): on a 5xx or a dropped connection they send the same request again with
the same Idempotency-Key until they get an answer. Afterwards every key has one answer, which a
replay repeats; each grant paid exactly what it had; the audit passes.
"""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.faults.servers import private_postgres
from tests.project.test_connections import start_service
from tests.project.test_two_web_processes import (
    GRANT_FEN,
    Answer,
    assert_audit_passes,
    assert_grants_exact,
    call,
    make_world,
    redeem_body,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

GRANTS = 4
BILLS_PER_GRANT = 12  # 12 coupons of 8,333 fen asked of each 50,000-fen grant: seven are paid.
CLIENTS = 4
RESTART_AFTER = 12  # Keys answered before the restart: it lands in the middle of the traffic.
RETRY_PAUSE_S = 0.2
GIVE_UP_S = 60


@dataclass
class Key:
    key: str
    body: dict[str, Any]
    attempts: list[tuple[float, Answer | str]] = field(default_factory=list)  # (when sent, answer or error)

    @property
    def final(self) -> Answer:
        last = self.attempts[-1][1]
        assert isinstance(last, Answer) and last.status < 500, f"{self.key} never got an answer: {self.attempts}"
        return last


def test_a_postgres_restart_during_concurrent_redemptions_loses_and_doubles_nothing(tmp_path: Path) -> None:
    with private_postgres() as postgres:
        postgres.copy_of_test_database()
        with postgres.using():
            world = make_world(grants=GRANTS)
            keys = [
                Key(f"pg-restart-{grant.pk}-{n}", redeem_body(world, grant, f"R-{grant.pk}-{n}"))
                for n in range(BILLS_PER_GRANT)
                for grant in world.grants
            ]
        service = start_service(extra_env={"DATABASE_URL": postgres.url}, log=tmp_path / "gunicorn.log")
        answered = threading.Semaphore(0)
        restart: dict[str, float] = {}

        def client(mine: list[Key]) -> None:
            for item in mine:
                deadline = time.monotonic() + GIVE_UP_S
                while time.monotonic() < deadline:
                    sent = time.monotonic()
                    try:
                        answer: Answer | str = call(
                            service.port, api_key=world.api_key, idempotency_key=item.key, body=item.body, timeout=20
                        )
                    except OSError as error:  # Reset, refused, cut: no answer, so send it again.
                        answer = f"{type(error).__name__}: {error}"
                    item.attempts.append((sent, answer))
                    if isinstance(answer, Answer) and answer.status < 500:
                        break
                    time.sleep(RETRY_PAUSE_S)
                answered.release()

        def restarter() -> None:
            for _ in range(RESTART_AFTER):
                answered.acquire()
            restart["start"] = time.monotonic()
            postgres.restart()
            restart["end"] = time.monotonic()

        threads = [threading.Thread(target=client, args=(keys[n::CLIENTS],)) for n in range(CLIENTS)]
        threads.append(threading.Thread(target=restarter))
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(GIVE_UP_S * 2)
            assert not any(thread.is_alive() for thread in threads), "a client hung"
            assert "end" in restart, "the restart did not happen"

            # then: every key got an answer; the failed attempts all fell inside the restart
            finals = {item.key: item.final for item in keys}
            failures = [
                (when, what)
                for item in keys
                for when, what in item.attempts
                if not isinstance(what, Answer) or what.status >= 500
            ]
            # The restart met the traffic: requests were on their way while the server was away.
            sent = [when for item in keys for when, _ in item.attempts]
            assert any(restart["start"] <= when <= restart["end"] for when in sent) or failures, "no request met it"
            # A request sent once the server is back is answered: each worker's kept connection, cut by the
            # restart, is checked before use and replaced (CONN_HEALTH_CHECKS), never a 500.
            late = [(round(when - restart["end"], 2), what) for when, what in failures if when > restart["end"]]
            assert late == [], f"errors on requests sent after the server was back: {late}"
            # and each key's answer is what a replay to the service gives now: one answer per key
            for item in keys:
                again = call(service.port, api_key=world.api_key, idempotency_key=item.key, body=item.body)
                assert again.replayed and again.first == finals[item.key].first, item.key
        finally:
            service.process.terminate()
            service.process.wait(timeout=20)

        with postgres.using():
            from coupons.models import Redemption

            paid = [key for key, answer in finals.items() if answer.status == 201]
            refused = {answer.body["code"] for answer in finals.values() if answer.status != 201}
            assert refused <= {"grant_exhausted"}, refused
            assert len(paid) == 7 * GRANTS
            assert Redemption.objects.count() == len(paid)  # One row per paid key: no retry made a second.
            assert assert_grants_exact(world) == {grant.pk: GRANT_FEN for grant in world.grants}
            assert_audit_passes()
    retried = sum(1 for item in keys if len(item.attempts) > 1)
    print(
        f"restart took {restart['end'] - restart['start']:.2f} s; {len(failures)} failed attempts "
        f"({sum(1 for _, w in failures if isinstance(w, Answer))} 5xx, "
        f"{sum(1 for _, w in failures if isinstance(w, str))} connection errors) on "
        f"{retried} of {len(keys)} keys, all retried to one answer"
    )
