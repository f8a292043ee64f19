"""How many times one redemption waits on PostgreSQL, counted at the wire (`tests/roundtrips.py`).

Pinned, so a change that adds a wait to the money path shows here. Over HTTP with an API key, as a
billing system redeems, on a kept connection as in production: the connection's health check
(`CONN_HEALTH_CHECKS`, once per request); the key's lookup; BEGIN; the idempotency record; the grant
and invoice-file locks with everything the checks read; the ledger transfer with the redemption, its
invoice use and citation; the idempotency record's answer; COMMIT
(`coupons/services/redemptions_fast.py`).
"""

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.credentials import api_key_create
from coupons.models import Redemption
from tests.api.test_redemptions import fresh_key, redeem_body
from tests.coupons.conftest import grant_for
from tests.roundtrips import round_trips

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/redemptions/"
REDEMPTION_ROUND_TRIPS = 8


@pytest.fixture
def billing_system(cast, year) -> APIClient:
    _, secret = api_key_create(provider=cast.provider, name="billing", actor=cast.clerk)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


@pytest.mark.parametrize("capture", [True, False], ids=["captured", "held"])
def test_a_redemption_waits_on_the_database_eight_times(capture, cast, billing_system):
    # given: a grant, and a first redemption so that nothing is done for the first time
    grant = grant_for(cast, fee_fen=1_000_000)
    first = redeem_body(grant, bill_number="B-0", capture=capture)
    assert billing_system.post(URL, first, format="json", HTTP_IDEMPOTENCY_KEY=fresh_key()).status_code == 201
    body = redeem_body(grant, bill_number="B-1", capture=capture)

    # when: a new request on the kept connection (Django's test client skips the request-start
    # signal that would ask for the health check, so the test asks for it)
    with round_trips() as trips:
        assert connection.health_check_enabled
        connection.health_check_done = False
        response = billing_system.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=fresh_key())

    # then
    assert response.status_code == 201, response.content
    assert trips.trips[0] == ['"SELECT 1"'], str(trips)
    assert trips.count == REDEMPTION_ROUND_TRIPS, str(trips)
    redemption = Redemption.objects.get(pk=response.json()["id"])
    assert redemption.status == ("captured" if capture else "pending")
    assert (redemption.hold_transfer_id is None) == capture


def test_a_refusal_takes_the_careful_path_and_says_why(cast, billing_system):
    # given: the bill was redeemed already
    grant = grant_for(cast, fee_fen=1_000_000)
    body = redeem_body(grant, bill_number="B-0", capture=True)
    assert billing_system.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=fresh_key()).status_code == 201

    # when
    with round_trips() as trips:
        connection.health_check_done = False
        response = billing_system.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=fresh_key())

    # then: refused as before, in more waits than the common case (the careful path)
    assert response.status_code == 409 and response.json()["code"] == "duplicate_bill", response.content
    assert trips.count > REDEMPTION_ROUND_TRIPS
