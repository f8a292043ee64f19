"""Redis (the broker and the throttles' cache) dies and comes back while requests and tasks flow.

The Redis is the test's own (tests/faults/servers.py), killed outright (SIGKILL: what it held is
lost, as after a crash with nothing on disk) and started again empty on the same port. gunicorn runs
with the production settings, a Celery worker consumes the default queue, both on that Redis.

- Money writes go on: POST /api/v1/redemptions/ answers 201 while Redis is away (their rules and
  their idempotency live in PostgreSQL).
- The throttles fail OPEN (api/throttles.py): with no counters to read, a request is let through
  rather than refused. With Redis up the limit holds (the 21st request in the minute is 429), while it
  is away the same caller gets past it, and once it is back the limit holds again.
- A task asked for while Redis is away is not lost: the audit an auditor starts is kept in the outbox
  (coupons/services/outbox.py), and runs on the worker once Redis is back and the dispatcher (beat's
  `dispatch-outbox`, sent here by the test as beat would) sends it.
"""

import time
from pathlib import Path

import pytest

from accounts.credentials import api_key_create, token_issue
from accounts.models import Role
from coupons.models import AuditRun, OutboxMessage
from tests.factories import UserFactory
from tests.faults.servers import private_redis, send_task, start_worker, stop
from tests.project.test_connections import database_url, start_service
from tests.project.test_two_web_processes import (
    Answer,
    assert_audit_passes,
    assert_grants_exact,
    call,
    http,
    make_world,
    redeem_body,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LIMIT = 20  # THROTTLE_USER for this service: 20 requests a minute per API key or user.
WAIT_S = 60


def pings(port: int, key: str, count: int) -> list[int]:
    return [
        http(port, "GET", "/api/v1/ping/", headers={"Authorization": f"Api-Key {key}"}).status for _ in range(count)
    ]


def test_a_redis_outage_keeps_money_writes_throttles_open_and_tasks_queued(tmp_path: Path) -> None:
    world = make_world(grants=1)
    _, pinger = api_key_create(provider=world.cast.provider, name="monitoring", actor=world.cast.clerk)
    _, token = token_issue(user=UserFactory(roles=[Role.AUDITOR]))  # As POST /auth/token/ issues it.
    grant = world.grants[0]
    bodies = {f"redis-{n}": redeem_body(world, grant, f"RD-{n}", bill_fen=1_000) for n in range(5)}

    with private_redis(tmp_path) as redis_server:
        service = start_service(
            extra_env={
                "REDIS_URL": redis_server.url,
                "THROTTLE_USER": f"{LIMIT}/minute",
                "STAFF_2FA_REQUIRED": "false",
            },
            log=tmp_path / "gunicorn.log",
        )
        worker = start_worker(redis_url=redis_server.url, database_url=database_url(), log=tmp_path / "worker.log")
        try:
            as_auditor = {"Authorization": f"Bearer {token}"}

            # given: with Redis up, the throttle holds: the 21st request of the minute is refused
            assert pings(service.port, pinger, LIMIT + 1) == [200] * LIMIT + [429]
            first = call(service.port, api_key=world.api_key, idempotency_key="redis-0", body=bodies["redis-0"])
            assert first.status == 201, first

            # when: Redis dies
            redis_server.stop()

            # then: money writes are taken, and a replay gives the first answer
            started = time.monotonic()
            during = {
                key: call(service.port, api_key=world.api_key, idempotency_key=key, body=body)
                for key, body in list(bodies.items())[1:4]
            }
            slowest_s = (time.monotonic() - started) / len(during)
            assert {key: answer.status for key, answer in during.items()} == dict.fromkeys(during, 201), during
            replay = call(service.port, api_key=world.api_key, idempotency_key="redis-1", body=bodies["redis-1"])
            assert replay.replayed and replay.first == during["redis-1"].first
            # and the throttle fails open: the caller already past its limit is let through
            assert pings(service.port, pinger, 5) == [200] * 5
            # and readiness says Redis is away (a load balancer may take note), while the process serves on
            assert http(service.port, "GET", "/readyz").status == 503
            # and an audit started now is kept in the outbox, not lost with the broker
            started_audit = http(service.port, "POST", "/api/v1/audits/", headers=as_auditor, body={})
            assert started_audit.status == 201, started_audit
            run_id = started_audit.body["id"]
            message = OutboxMessage.objects.get(task="coupons.tasks.run_audit", args=[run_id])
            assert message.dispatched_at is None and message.attempts == 1
            assert AuditRun.objects.get(pk=run_id).status == "running"

            # when: Redis comes back, empty
            redis_server.start()

            # then: the limit holds again (counters start afresh)
            assert pings(service.port, pinger, LIMIT + 1) == [200] * LIMIT + [429]
            # and money writes go on
            last = call(service.port, api_key=world.api_key, idempotency_key="redis-4", body=bodies["redis-4"])
            assert last.status == 201, last
            # and the dispatcher's next run sends the kept task, which the worker (still up) runs
            send_task("coupons.tasks.dispatch_outbox", redis_url=redis_server.url)
            deadline = time.monotonic() + WAIT_S
            while AuditRun.objects.get(pk=run_id).status == "running":
                assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
                time.sleep(0.2)
            run = AuditRun.objects.get(pk=run_id)
            assert run.status == "passed", [check for check in run.checks if not check["ok"]]
            assert OutboxMessage.objects.get(pk=message.pk).dispatched_at is not None
            assert worker.poll() is None, "the worker died with the broker"
        finally:
            stop(service.process)  # type: ignore[arg-type]
            stop(worker)

    # and not a fen lost or counted twice: five bills, five coupons of 300 fen, in rows and in the ledger
    answers: list[Answer] = [first, *during.values(), last]
    assert sorted(answer.body["coupon_fen"] for answer in answers) == [300] * 5
    assert assert_grants_exact(world) == {grant.pk: 5 * 300}
    assert_audit_passes()
    print(f"redemptions while Redis was away: {len(during)} answered 201, {slowest_s * 1000:.0f} ms each on average")
