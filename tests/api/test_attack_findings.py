"""Found from outside, against gunicorn with the production settings (the `attack` round): each test
is the smallest request sequence that showed the gap."""

import pytest

from api.models import IdempotencyRecord
from coupons.models import Redemption
from tests.api.conftest import signed_in
from tests.api.test_redemptions import BATCH_URL, URL, item, redeem_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def grant(cast, year):
    from tests.coupons.conftest import grant_for

    return grant_for(cast, fee_fen=1_000_000)


def test_a_batch_item_reusing_a_key_with_another_body_leaves_the_other_items_committed(cast, grant):
    # given: a key first used alone, for one bill
    client = signed_in(cast.clerk)
    first = client.post(URL, redeem_body(grant, bill_number="B-1"), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201, first.content

    # when: a batch sends a new bill, then the same key with another body
    items = [item("k-2", grant, bill_number="B-2"), item("k-1", grant, bill_number="B-1", bill_amount_fen=200_000)]
    response = client.post(BATCH_URL, {"items": items}, format="json")

    # then: the reused key refuses only its own item; the new bill the answer reports is stored
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 409]
    assert results[1]["error"]["code"] == "idempotency_key_reused"
    assert Redemption.objects.filter(pk=results[0]["redemption"]["id"]).exists()
    assert IdempotencyRecord.objects.filter(key="k-2").exists()


def test_a_batch_item_reusing_a_key_with_another_body_does_not_stop_the_items_after_it(cast, grant):
    # given
    client = signed_in(cast.clerk)
    first = client.post(URL, redeem_body(grant, bill_number="B-1"), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201, first.content

    # when: the reused key comes first
    items = [item("k-1", grant, bill_number="B-1", bill_amount_fen=200_000), item("k-2", grant, bill_number="B-2")]
    response = client.post(BATCH_URL, {"items": items}, format="json")

    # then: not a 500; the second item runs and is stored
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == [409, 201]
    assert Redemption.objects.filter(pk=results[1]["redemption"]["id"]).exists()
