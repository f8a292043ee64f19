"""Two web processes on one database: the ledger rules hold across processes as they do across threads.

Two gunicorn masters (production settings, each on its own port, each with its own workers) serve
this test's committed database, as two replicas behind a proxy would. Threads release at one moment
a burst of redemptions over HTTP on grants that cannot pay them all, and each bill is sent to BOTH
processes with one Idempotency-Key. Nothing in a process's memory can keep these apart: only the
database's locks (the grant's ledger accounts, the key's advisory lock and unique record) can.

The helpers here (`World`, `redeem_body`, `call`) serve the fault tests in tests/faults/ too.
"""

import http.client as http_client
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from accounts.credentials import api_key_create
from coupons.models import Grant, Redemption
from coupons.services.audit import audit_execute, audit_run_create
from ledger.selectors import account_balance
from tests.coupons.conftest import Cast, grant_for, make_cast, open_year
from tests.evidence import document, invoice_number
from tests.project.test_connections import Service, start_service

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

GRANT_FEN = 50_000
BILL_FEN = 27_778  # A coupon of 8,333 fen at 30%: six fill a grant but 2 fen, a seventh takes those.
BILLS_PER_GRANT = 10  # 83,330 fen asked of each 50,000-fen grant.
GRANTS = 3
REQUEST_TIMEOUT_S = 60


@dataclass(frozen=True)
class Answer:
    """What a client saw: the status, the JSON body, and whether the server said it was a replay."""

    status: int
    body: Any
    replayed: bool

    @property
    def first(self) -> tuple[int, Any]:
        """The part a replay must repeat exactly."""
        return self.status, self.body


@dataclass
class World:
    cast: Cast
    grants: list[Grant]
    api_key: str


def make_world(*, grants: int = GRANTS, grant_fen: int = GRANT_FEN, pool_fen: int = 100_000_000) -> World:
    """An open year whose pool (unless named) and cap never bind, `grants` grants of `grant_fen`, and
    an API key."""
    cast = make_cast()
    open_year(cast.admin, pool_fen=pool_fen, cap_fen=100_000_000)
    made = [grant_for(cast, fee_fen=10_000_000, amount_fen=grant_fen) for _ in range(grants)]
    _, key = api_key_create(provider=cast.provider, name="billing", actor=cast.clerk)
    return World(cast=cast, grants=made, api_key=key)


def redeem_body(world: World, grant: Grant, bill: str, *, bill_fen: int = BILL_FEN) -> dict[str, Any]:
    """A captured redemption of one bill, with its own invoice (uploaded now, before any race)."""
    return {
        "grant": grant.pk,
        "bill_number": bill,
        "bill_amount_fen": bill_fen,
        "invoice_number": invoice_number(),
        "invoice_document": document(world.cast.clerk, "invoice").pk,
        "capture": True,
    }


def http(
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    timeout: float = REQUEST_TIMEOUT_S,
) -> Answer:
    """One request to 127.0.0.1:`port`; raises OSError when no answer comes back."""
    client = http_client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        client.request(method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
        response = client.getresponse()
        data = response.read()
        parsed = json.loads(data) if data.startswith((b"{", b"[")) else data.decode(errors="replace")
        return Answer(response.status, parsed, response.getheader("Idempotent-Replayed") == "true")
    finally:
        client.close()


def call(
    port: int, *, api_key: str, idempotency_key: str, body: dict[str, Any], timeout: float = REQUEST_TIMEOUT_S
) -> Answer:
    """POST /api/v1/redemptions/ with the provider's API key and an Idempotency-Key."""
    headers = {"Authorization": f"Api-Key {api_key}", "Idempotency-Key": idempotency_key}
    return http(port, "POST", "/api/v1/redemptions/", headers=headers, body=body, timeout=timeout)


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Each call in its own thread, all released at once; each result, or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, work: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = work()
        except Exception as error:  # Judged by the test.
            results[index] = error

    threads = [threading.Thread(target=run, args=(i, work)) for i, work in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT_S * 2)
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    return results


def assert_audit_passes() -> None:
    """Every check of the nightly audit (ledger against rows, caps, rates, invoices used once ...)."""
    run = audit_execute(run_id=audit_run_create().pk)
    assert run.status == "passed", [check for check in run.checks if not check["ok"]]


def assert_grants_exact(world: World, *, grant_fen: int = GRANT_FEN) -> dict[int, int]:
    """Each grant's captured coupons, in rows and in its ledger account, agree and stay within it."""
    spent = {}
    for grant in world.grants:
        rows = Redemption.objects.filter(grant=grant, status="captured")
        total = sum(rows.values_list("coupon_fen", flat=True))
        account = account_balance(account_id=grant.account_id)
        assert account.debits_posted == total, f"grant {grant.pk}: ledger {account.debits_posted}, rows {total}"
        assert account.debits_pending == 0
        assert total <= grant_fen, f"grant {grant.pk} paid {total} fen of {grant_fen}"
        spent[grant.pk] = total
    return spent


@pytest.fixture
def two_processes(tmp_path: Path) -> Iterator[tuple[Service, Service]]:
    services = [start_service(extra_env={}, log=tmp_path / f"web-{n}.log") for n in (1, 2)]
    yield services[0], services[1]
    for service in services:
        service.process.terminate()
    for service in services:
        service.process.wait(timeout=20)


def test_two_gunicorn_processes_racing_keep_grants_and_idempotency_keys(
    two_processes: tuple[Service, Service],
) -> None:
    # given: three grants of 50,000 fen, and ten bills on each that would take 83,330 fen of it
    world = make_world()
    first, second = two_processes
    bills = [
        (f"two-web-{grant.pk}-{n}", redeem_body(world, grant, f"B-{grant.pk}-{n}"))
        for grant in world.grants
        for n in range(BILLS_PER_GRANT)
    ]

    # when: every bill is sent to both processes at once, with the same key
    calls = [
        (
            lambda port=service.port, key=key, body=body: call(
                port, api_key=world.api_key, idempotency_key=key, body=body
            )
        )
        for key, body in bills
        for service in (first, second)
    ]
    results = race(calls)

    # then: every request was answered, none with a 5xx
    assert [r for r in results if isinstance(r, Exception)] == []
    answers: list[Answer] = results
    assert [a for a in answers if a.status >= 500] == []
    # and the two answers of each key are one answer: the first, and its replay from the other process
    by_key = {key: (answers[2 * i], answers[2 * i + 1]) for i, (key, _) in enumerate(bills)}
    for key, (a, b) in by_key.items():
        assert a.first == b.first, f"{key}: the processes answered differently: {a} / {b}"
        assert sorted([a.replayed, b.replayed]) == [False, True], f"{key}: exactly one ran"
    # and a later replay to either process returns the first answer again
    for key, body in bills[::7]:
        for service in (first, second):
            again = call(service.port, api_key=world.api_key, idempotency_key=key, body=body)
            assert again.replayed and again.first == by_key[key][0].first
    # and each grant paid exactly what it had: six coupons of 8,333 and one of the last 2 fen
    outcomes = Counter(a.status if a.status == 201 else a.body["code"] for a, _ in by_key.values())
    assert outcomes == {201: 7 * GRANTS, "grant_exhausted": (BILLS_PER_GRANT - 7) * GRANTS}, outcomes
    assert assert_grants_exact(world) == {grant.pk: GRANT_FEN for grant in world.grants}
    coupons = sorted(a.body["coupon_fen"] for a, _ in by_key.values() if a.status == 201)
    assert coupons == sorted([8_333] * 6 * GRANTS + [2] * GRANTS)
    assert Redemption.objects.count() == 7 * GRANTS  # One row per winning key, none per replay.
    assert_audit_passes()
