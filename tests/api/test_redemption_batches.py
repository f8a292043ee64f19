"""POST /redemptions/batch/ as one transaction: one commit, grants locked in id order, holds past
their timeout released before any item, crossing batches racing without a deadlock."""

import pytest
from django.utils import timezone

from coupons.models import Redemption
from coupons.services.redemptions import redemption_create
from ledger.selectors import account_balance
from tests.api.conftest import signed_in
from tests.api.test_redemptions import BATCH_URL, item, redeem_body
from tests.concurrency import race
from tests.coupons.conftest import grant_for
from tests.evidence import document, invoice
from tests.roundtrips import round_trips

pytestmark = pytest.mark.django_db(transaction=True)


def commits(trips) -> int:
    return sum(any(statement.strip('"') == "COMMIT" for statement in trip) for trip in trips.trips)


def test_a_batch_commits_once_whatever_its_size(cast, year):
    # given
    grants = [grant_for(cast, fee_fen=200_000) for _ in range(3)]
    client = signed_in(cast.clerk)
    items = [item(f"k-{n}", grants[n % 3], bill_number=f"B-{n}", bill_amount_fen=10_000) for n in range(12)]

    # when
    with round_trips() as trips:
        response = client.post(BATCH_URL, {"items": items}, format="json")

    # then: every item made, in one transaction
    assert response.status_code == 200, response.content
    assert [r["status"] for r in response.json()["results"]] == [201] * 12
    assert commits(trips) == 1, str(trips)
    assert Redemption.objects.count() == 12


def test_a_refused_item_refuses_only_itself_inside_the_one_transaction(cast, year):
    # given: the second item repeats the first's bill, the third is fine
    grant = grant_for(cast, fee_fen=1_000_000)
    client = signed_in(cast.clerk)
    items = [
        item("a", grant, bill_number="B-1"),
        item("b", grant, bill_number="B-1", bill_amount_fen=20_000),
        item("c", grant, bill_number="B-3"),
    ]

    # when
    results = client.post(BATCH_URL, {"items": items}, format="json").json()["results"]

    # then
    assert [r["status"] for r in results] == [201, 409, 201]
    assert results[1]["error"]["code"] == "duplicate_bill"
    assert sorted(Redemption.objects.values_list("bill_number", flat=True)) == ["B-1", "B-3"]
    assert account_balance(account_id=grant.account_id).debits_pending == 2 * 30_000


def test_holds_past_their_timeout_are_released_before_the_items(cast, year):
    # given: a hold on the grant that timed out an hour ago, not yet expired by the job
    grant = grant_for(cast, fee_fen=1_000_000)
    stale = redemption_create(
        grant=grant,
        bill_number="OLD",
        bill_amount_fen=100_000,
        actor=cast.clerk,
        now=timezone.now() - timezone.timedelta(days=30),
        **invoice(cast.clerk),
    )
    assert stale.status == Redemption.Status.PENDING
    client = signed_in(cast.clerk)

    # when: a batch redeems the same bill again
    body = redeem_body(grant, bill_number="OLD")
    results = client.post(BATCH_URL, {"items": [{"idempotency_key": "again", **body}]}, format="json").json()

    # then: the old hold expired, its invoice freed, and the bill redeemed anew
    assert [r["status"] for r in results["results"]] == [201], results
    stale.refresh_from_db()
    assert stale.status == Redemption.Status.EXPIRED
    assert account_balance(account_id=grant.account_id).debits_pending == 30_000


def test_crossing_batches_race_without_a_deadlock(cast, year):
    # given: two grants, and batches that name them in opposite orders
    first, second = grant_for(cast, fee_fen=500_000), grant_for(cast, fee_fen=500_000)
    batches = []
    for n in range(6):
        order = (first, second) if n % 2 else (second, first)
        batches.append(
            [item(f"r{n}-{m}", grant, bill_number=f"R{n}-{m}", bill_amount_fen=10_000) for m, grant in enumerate(order)]
        )
    clients = [signed_in(cast.clerk) for _ in batches]

    # when
    responses = race(
        [lambda c=c, b=b: c.post(BATCH_URL, {"items": b}, format="json") for c, b in zip(clients, batches, strict=True)]
    )

    # then: every batch answered, every item made once, the money exact
    assert all(not isinstance(r, Exception) for r in responses), responses
    assert [r.status_code for r in responses] == [200] * len(batches)
    assert all(result["status"] == 201 for r in responses for result in r.json()["results"])
    assert Redemption.objects.count() == 12
    for grant in (first, second):
        assert account_balance(account_id=grant.account_id).debits_pending == 6 * 3_000


def test_one_invoice_file_raced_by_batches_and_single_redemptions_is_used_once(cast, year):
    # given: three grants, one invoice file that every racer names under its own number, and batches
    # whose other item takes a ledger lock first
    grants = [grant_for(cast, fee_fen=300_000) for _ in range(3)]
    shared = document(cast.clerk, "invoice", data=b"%PDF-1.4\n% the one shared invoice file\n%%EOF\n").pk
    batches, singles = [], []
    for n in range(3):
        first = item(f"first-{n}", grants[n % 3], bill_number=f"F-{n}", bill_amount_fen=10_000)
        contested = {
            **item(f"shared-{n}", grants[(n + 1) % 3], bill_number=f"S-{n}", bill_amount_fen=10_000),
            "invoice_document": shared,
        }
        batches.append([first, contested])
        singles.append(
            {
                **redeem_body(grants[(n + 2) % 3], bill_number=f"T-{n}", bill_amount_fen=10_000),
                "invoice_document": shared,
            }
        )
    clients = [signed_in(cast.clerk) for _ in range(len(batches) + len(singles))]

    # when
    calls = [lambda c=c, b=b: c.post(BATCH_URL, {"items": b}, format="json") for c, b in zip(clients, batches)]
    calls += [
        lambda c=c, b=b: c.post("/api/v1/redemptions/", b, format="json", HTTP_IDEMPOTENCY_KEY=f"single-{n}")
        for n, (c, b) in enumerate(zip(clients[len(batches) :], singles))
    ]
    responses = race(calls)

    # then: nobody deadlocked or failed; every batch's first item made; the shared file used once
    assert all(not isinstance(r, Exception) for r in responses), responses
    statuses = [r.status_code for r in responses]
    assert statuses[: len(batches)] == [200] * len(batches) and all(s in (201, 409) for s in statuses[len(batches) :])
    for r in responses[: len(batches)]:
        assert r.json()["results"][0]["status"] == 201, r.json()
    assert Redemption.objects.filter(invoice_document_id=shared).count() == 1
    total_coupons = sum(Redemption.objects.values_list("coupon_fen", flat=True))
    assert total_coupons == sum(account_balance(account_id=g.account_id).debits_pending for g in grants)
