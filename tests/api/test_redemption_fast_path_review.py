"""Adversarial races on the lean money path (the fast redemption path and the one-transaction batch).

Each test arranges the interleaving it needs with a blocker transaction (an advisory or row lock
taken on its own connection), so that the race it shows happens every run, not by luck."""

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from api.idempotency import idempotent_call
from api.models import IdempotencyRecord
from coupons import books
from coupons.errors import DuplicateInvoice
from coupons.models import Redemption
from coupons.services.acknowledgements import redemption_acknowledge
from coupons.services.audit import CHECKS
from coupons.services.redemptions import (
    redemption_capture,
    redemption_create,
    redemption_void,
    redemptions_expire_holds,
)
from coupons.services.settlements import settlement_create
from evidence.models import Document
from ledger.models import Account
from ledger.selectors import account_balance
from ledger.services import pending_transfers_expire
from tests.api.conftest import signed_in
from tests.api.test_redemptions import BATCH_URL, URL, redeem_body
from tests.concurrency import race
from tests.coupons.conftest import grant_for
from tests.evidence import document, invoice, invoice_number

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_S = 30
SETTLE_S = 0.5  # Long enough for a request to reach the lock it is meant to wait on.


def _in_thread(call, results, name):
    def run():
        try:
            results[name] = call()
        except Exception as error:  # Judged by the test.
            results[name] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _waiting_on(statement_start, done=lambda: False):
    """Whether some other connection waits for a lock while running a statement that starts so (or
    `done()`: the request it is about has finished without waiting)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if done():
            return True
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND query LIKE %s",
                [statement_start + "%"],
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.05)
    return False


def _holding_file_lock(sha256, locked, release):
    """A transaction that holds the invoice file's advisory lock until `release` is set."""

    def hold():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"invoice-file:{sha256}"])
            locked.set()
            assert release.wait(WAIT_S)

    return hold


def test_a_single_post_and_a_batch_item_with_one_key_do_not_deadlock(cast, year):
    # given: one bill, sent alone and as a batch item with the same key (a client's retry), and a
    # third transaction holding the bill's invoice file so that the batch has locked the grant
    # before the single POST claims the key
    grant = grant_for(cast, fee_fen=1_000_000)
    body = redeem_body(grant)
    sha256 = Document.objects.get(pk=body["invoice_document"]).file_id
    single, batch = signed_in(cast.clerk), signed_in(cast.clerk)
    locked, release, results = threading.Event(), threading.Event(), {}
    blocker = _in_thread(_holding_file_lock(sha256, locked, release), results, "blocker")
    assert locked.wait(WAIT_S)

    # when: the batch locks the grant and waits for the file; the single POST claims the key and
    # waits for the grant; then the file is let go
    threads = [
        _in_thread(
            lambda: batch.post(BATCH_URL, {"items": [{"idempotency_key": "retry", **body}]}, format="json"),
            results,
            "batch",
        )
    ]
    time.sleep(SETTLE_S)
    threads.append(
        _in_thread(lambda: single.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="retry"), results, "single")
    )
    time.sleep(SETTLE_S)
    release.set()
    for thread in [blocker, *threads]:
        thread.join(WAIT_S)

    # then: both answered (one made the redemption, the other replayed it), nothing deadlocked
    assert not isinstance(results["batch"], Exception), results["batch"]
    assert not isinstance(results["single"], Exception), results["single"]
    assert results["batch"].status_code == 200
    assert results["batch"].json()["results"][0]["status"] == 201, results["batch"].json()
    assert results["single"].status_code == 201, results["single"].content
    assert Redemption.objects.count() == 1
    assert account_balance(account_id=grant.account_id).debits_pending == 30_000


def test_a_write_refused_inside_the_pipeline_leaves_the_connection_usable(cast, year):
    # given: two grants; a redemption of invoice N on the first, made and not yet committed

    first, second = grant_for(cast, fee_fen=300_000), grant_for(cast, fee_fen=300_000)
    number = invoice_number()
    own_file = document(cast.clerk, "invoice", data=b"%PDF-1.4\n% the first bill's own file\n%%EOF\n")
    other_file = document(cast.clerk, "invoice", data=b"%PDF-1.4\n% the second bill's own file\n%%EOF\n")
    made, release, results = threading.Event(), threading.Event(), {}

    def uncommitted():
        with transaction.atomic():
            redemption_create(
                grant=first,
                bill_number="A",
                bill_amount_fen=100_000,
                actor=cast.clerk,
                invoice_number=number,
                invoice_document=own_file,
            )
            made.set()
            assert release.wait(WAIT_S)

    def on_one_connection():
        # The second redemption of N reads no use of N (uncommitted), so the fast path writes; refused
        # inside its write pipeline, on a fresh connection whose statements it was preparing.
        outcomes = []
        for attempt in range(3):
            try:
                fields = (
                    {"invoice_number": number, "invoice_document": other_file} if attempt == 0 else invoice(cast.clerk)
                )
                outcomes.append(
                    redemption_create(
                        grant=second, bill_number=f"B-{attempt}", bill_amount_fen=100_000, actor=cast.clerk, **fields
                    )
                )
            except Exception as error:  # Judged by the test.
                outcomes.append(error)
        return outcomes

    holder = _in_thread(uncommitted, results, "first")
    assert made.wait(WAIT_S)

    # when
    racer = _in_thread(on_one_connection, results, "second")
    try:
        # Its write pipeline waits (for the provider's ledger account, which the first holds); once
        # the first commits, the pipeline's invoice INSERT is refused by the register's unique index.
        assert _waiting_on("SELECT id, code, closed, debits_must_not_exceed_credits"), "no write pipeline waited"
    finally:
        release.set()
    holder.join(WAIT_S)
    racer.join(WAIT_S)

    # then: N refused as a duplicate invoice, and the next bills on the same connection made
    assert results["first"] is None, results["first"]
    refused, *later = results["second"]
    assert isinstance(refused, DuplicateInvoice), refused
    assert all(isinstance(r, Redemption) for r in later), later
    assert Redemption.objects.filter(grant=second).count() == 2
    assert account_balance(account_id=second.account_id).debits_pending == 2 * 30_000


def _audit_findings():

    return {name: findings for name, check in CHECKS if (findings := check()[0])}


def test_a_batch_and_a_void_on_its_grant_do_not_deadlock_on_the_ledger(cast, year):
    # given: a provider whose ledger account was made after its grants' accounts (so on main, where it
    # was made on the provider's first redemption, for grants issued before it), and a hold on the
    # second grant

    first, second = grant_for(cast, fee_fen=300_000), grant_for(cast, fee_fen=300_000)
    Account.objects.filter(code=books.provider_code(cast.provider.pk)).delete()  # Not yet used.
    hold = redemption_create(
        grant=second, bill_number="HELD", bill_amount_fen=100_000, actor=cast.clerk, **invoice(cast.clerk)
    )
    provider_account = Account.objects.get(code=books.provider_code(cast.provider.pk))
    assert first.account_id < second.account_id < provider_account.pk
    items = [
        {"idempotency_key": "one", **redeem_body(first, bill_number="B-1")},
        {"idempotency_key": "two", **redeem_body(second, bill_number="B-2")},
    ]
    claimed, release, results = threading.Event(), threading.Event(), {}

    def key_claimed_then_rolled_back():
        # The second item's key recorded and not committed (bypassing the key's turn, only to hold the
        # batch between its items, as a slow item would), then rolled back.
        with pytest.raises(RuntimeError), transaction.atomic():
            IdempotencyRecord.objects.create(
                user=cast.clerk,
                key="two",
                method="POST",
                path=URL,
                request_hash="x",
                response_status=0,
                response_body={},
            )
            claimed.set()
            assert release.wait(WAIT_S)
            raise RuntimeError("the other request fails")

    threads = [_in_thread(key_claimed_then_rolled_back, results, "other")]
    assert claimed.wait(WAIT_S)
    client = signed_in(cast.clerk)

    # when: the batch makes its first item (its ledger locks held until it commits) and waits for the
    # second item's key; the provider voids the hold on the second grant; then the key is free
    try:
        threads.append(_in_thread(lambda: client.post(BATCH_URL, {"items": items}, format="json"), results, "batch"))
        assert _waiting_on("WITH turn AS"), "the batch did not reach its second item's key"
        threads.append(_in_thread(lambda: redemption_void(redemption=hold, actor=cast.clerk), results, "void"))
        assert _waiting_on("SELECT id, code, closed, debits_must_not_exceed_credits"), "the void did not wait"
    finally:
        release.set()
    for thread in threads:
        thread.join(WAIT_S)

    # then: the batch made both items, the hold was voided, and the money is exact
    assert not isinstance(results["void"], Exception), results["void"]
    assert not isinstance(results["batch"], Exception), results["batch"]
    assert [r["status"] for r in results["batch"].json()["results"]] == [201, 201], results["batch"].json()
    hold.refresh_from_db()
    assert hold.status == Redemption.Status.VOIDED
    assert account_balance(account_id=first.account_id).debits_pending == 30_000
    assert account_balance(account_id=second.account_id).debits_pending == 30_000
    assert _audit_findings() == {}


def test_a_batch_releasing_a_stale_hold_and_a_single_post_naming_its_file_do_not_deadlock(cast, year):
    # given: a hold on the first grant that timed out (not yet expired by the job), a batch redeeming
    # on that grant with invoice file F, and a single POST on the provider's second grant naming the
    # same file under another number; a third transaction holds the provider's ledger account a moment

    first, second = grant_for(cast, fee_fen=300_000), grant_for(cast, fee_fen=300_000)
    stale = redemption_create(
        grant=first,
        bill_number="OLD",
        bill_amount_fen=100_000,
        actor=cast.clerk,
        now=timezone.now() - timezone.timedelta(days=30),
        **invoice(cast.clerk),
    )
    batch_item = {"idempotency_key": "batched", **redeem_body(first, bill_number="NEW")}
    single_body = {
        **redeem_body(second, bill_number="S-1"),
        "invoice_number": invoice_number(),
        "invoice_document": batch_item["invoice_document"],
    }
    provider_account = Account.objects.get(code=books.provider_code(cast.provider.pk)).pk
    locked, release, results = threading.Event(), threading.Event(), {}

    def holding_provider_account():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT id FROM ledger_account WHERE id = %s FOR NO KEY UPDATE", [provider_account])
            locked.set()
            assert release.wait(WAIT_S)

    threads = [_in_thread(holding_provider_account, results, "blocker")]
    assert locked.wait(WAIT_S)
    batch, single = signed_in(cast.clerk), signed_in(cast.clerk)

    # when: the batch, releasing the stale hold, waits for the provider's account; the single POST
    # locks its grant and the file and waits for the same account; then the account is let go (to the
    # batch first, which then wants the file)
    try:
        threads.append(
            _in_thread(lambda: batch.post(BATCH_URL, {"items": [batch_item]}, format="json"), results, "batch")
        )
        assert _waiting_on("SELECT id, code, closed, debits_must_not_exceed_credits"), "the batch did not wait"
        threads.append(
            _in_thread(
                lambda: single.post(URL, single_body, format="json", HTTP_IDEMPOTENCY_KEY="single"), results, "single"
            )
        )
        time.sleep(SETTLE_S)
    finally:
        release.set()
    for thread in threads:
        thread.join(WAIT_S)

    # then: both answered; the file stands behind one invoice; the money is exact
    assert not isinstance(results["batch"], Exception), results["batch"]
    assert not isinstance(results["single"], Exception), results["single"]
    assert results["batch"].status_code == 200
    outcomes = sorted([results["batch"].json()["results"][0]["status"], results["single"].status_code])
    assert outcomes == [201, 409], outcomes
    stale.refresh_from_db()
    assert stale.status == Redemption.Status.EXPIRED
    assert Redemption.objects.filter(invoice_document_id=batch_item["invoice_document"]).count() == 1
    assert _audit_findings() == {}


def test_batches_singles_captures_voids_and_the_expiry_jobs_on_two_grants_keep_the_money_exact(cast, year):
    # given: two grants with holds on each, two of them past their timeout
    grants = [grant_for(cast, fee_fen=300_000) for _ in range(2)]
    past = timezone.now() - timezone.timedelta(days=30)

    def hold(grant, bill, now=None):
        return redemption_create(
            grant=grant, bill_number=bill, bill_amount_fen=20_000, actor=cast.clerk, now=now, **invoice(cast.clerk)
        )

    stale = [hold(grants[0], "STALE-0", past), hold(grants[1], "STALE-1", past)]
    fresh = [hold(grants[0], "H-0"), hold(grants[1], "H-1"), hold(grants[0], "H-2"), hold(grants[1], "H-3")]
    batches = [
        [
            {"idempotency_key": f"b{n}-{m}", **redeem_body(grant, bill_number=f"B{n}-{m}", bill_amount_fen=20_000)}
            for m, grant in enumerate(grants if n % 2 else grants[::-1])
        ]
        for n in range(4)
    ]
    # The last batch also repeats a bill a hold already took (a refusal inside the one transaction).
    batches[-1].append({"idempotency_key": "dup", **redeem_body(grants[0], bill_number="H-0")})
    singles = [redeem_body(grant, bill_number=f"S-{n}", bill_amount_fen=20_000) for n, grant in enumerate(grants)]
    clients = [signed_in(cast.clerk) for _ in range(len(batches) + len(singles))]
    calls = [lambda c=c, b=b: c.post(BATCH_URL, {"items": b}, format="json") for c, b in zip(clients, batches)]
    calls += [
        lambda c=c, b=b, n=n: c.post(URL, b, format="json", HTTP_IDEMPOTENCY_KEY=f"single-{n}")
        for n, (c, b) in enumerate(zip(clients[len(batches) :], singles))
    ]
    calls += [
        lambda: redemption_capture(redemption=fresh[0], actor=cast.clerk),
        lambda: redemption_capture(redemption=fresh[1], actor=cast.clerk),
        lambda: redemption_void(redemption=fresh[2], actor=cast.clerk),
        lambda: redemption_void(redemption=fresh[3], actor=cast.clerk),
        lambda: redemptions_expire_holds(),
        lambda: pending_transfers_expire(),
    ]

    # when
    outcomes = race(calls)

    # then: nothing failed (refusals are answers), every batch and single made its bills
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    for response in outcomes[: len(batches)]:
        assert response.status_code == 200, response.content
        statuses = [r["status"] for r in response.json()["results"]]
        assert statuses[:2] == [201, 201], response.json()
    assert outcomes[len(batches) - 1].json()["results"][2]["error"]["code"] == "duplicate_bill"
    assert [r.status_code for r in outcomes[len(batches) : len(batches) + len(singles)]] == [201, 201]
    for redemption in stale:
        redemption.refresh_from_db()
        assert redemption.status == Redemption.Status.EXPIRED
    # and the money is exact: each grant's ledger is the sum of its redemptions, the audit finds nothing
    for grant in grants:
        rows = Redemption.objects.filter(grant=grant)
        held = sum(rows.filter(status=Redemption.Status.PENDING).values_list("coupon_fen", flat=True))
        captured = sum(rows.filter(status=Redemption.Status.CAPTURED).values_list("coupon_fen", flat=True))
        balance = account_balance(account_id=grant.account_id)
        assert (balance.debits_pending, balance.debits_posted) == (held, captured)
    assert _audit_findings() == {}


def test_a_key_whose_first_request_failed_is_free_for_the_retry_waiting_on_it(cast, year):
    # given: a first request with the key that has recorded it and then fails (a 500: rolled back)
    grant = grant_for(cast, fee_fen=1_000_000)
    body = redeem_body(grant)
    started, release, results = threading.Event(), threading.Event(), {}

    def failing():
        started.set()
        assert release.wait(WAIT_S)
        raise RuntimeError("the first request fails")

    def first():
        return idempotent_call(
            user=cast.clerk,
            key="retried",
            method="POST",
            path=URL,
            fingerprint="the first body",
            call=failing,
            context={},
        )

    threads = [_in_thread(first, results, "first")]
    assert started.wait(WAIT_S)
    client = signed_in(cast.clerk)

    # when: the retry (another body, even) waits for the key, and the first request fails
    try:
        threads.append(
            _in_thread(lambda: client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="retried"), results, "retry")
        )
        assert _waiting_on("WITH turn AS"), "the retry did not wait for the key"
    finally:
        release.set()
    for thread in threads:
        thread.join(WAIT_S)

    # then: the retry made the redemption and its answer is the key's record
    assert isinstance(results["first"], RuntimeError), results["first"]
    assert results["retry"].status_code == 201, results["retry"].content
    record = IdempotencyRecord.objects.get(user=cast.clerk, key="retried")
    assert (record.response_status, record.response_body["id"]) == (201, results["retry"].json()["id"])
    assert Redemption.objects.count() == 1


def test_a_redemption_a_settlement_and_a_reversal_of_the_providers_do_not_deadlock(cast, year):
    # given: a captured, acknowledged (settleable) redemption R; a reversal of R has locked its grant
    # and R, and is about to lock the provider's ledger account (redemption_reverse_locked's order);
    # a settlement of the provider locks the provider's row and waits for R
    grant = grant_for(cast, fee_fen=1_000_000)
    settled = redemption_create(
        grant=grant, bill_number="R", bill_amount_fen=100_000, actor=cast.clerk, capture=True, **invoice(cast.clerk)
    )
    redemption_acknowledge(redemption=settled, actor=cast.member)
    provider_account = Account.objects.get(code=books.provider_code(cast.provider.pk)).pk
    other = grant_for(cast, fee_fen=300_000)  # Another grant of the provider's, free of the reversal's lock.
    other_body = redeem_body(other, bill_number="NEW")
    holding, go, results = threading.Event(), threading.Event(), {}

    def reversal():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT id FROM coupons_grant WHERE id = %s FOR UPDATE", [grant.pk])
            cursor.execute("SELECT id FROM coupons_redemption WHERE id = %s FOR UPDATE", [settled.pk])
            holding.set()
            assert go.wait(WAIT_S)
            cursor.execute("SELECT id FROM ledger_account WHERE id = %s FOR NO KEY UPDATE", [provider_account])

    threads = [_in_thread(reversal, results, "reversal")]
    assert holding.wait(WAIT_S)
    client = signed_in(cast.clerk)
    try:
        threads.append(
            _in_thread(lambda: settlement_create(provider=cast.provider, actor=cast.finance), results, "settlement")
        )
        assert _waiting_on("SELECT "), "the settlement did not wait for R"

        # when: a redemption on another grant of the provider locks its ledger account and inserts
        threads.append(
            _in_thread(lambda: client.post(URL, other_body, format="json", HTTP_IDEMPOTENCY_KEY="new"), results, "new")
        )
        assert _waiting_on("COMMIT", done=lambda: "new" in results), "the redemption neither waited nor ended"
    finally:
        go.set()
    for thread in threads:
        thread.join(WAIT_S)

    # then: nobody deadlocked
    assert not isinstance(results["new"], Exception), results["new"]
    assert not isinstance(results["settlement"], Exception), results["settlement"]
    assert results["reversal"] is None, results["reversal"]
    assert results["new"].status_code == 201, results["new"].content
