"""/api/v1/redemptions/: redeem (alone and in batches), capture, void, reverse; scoping, roles,
money-field abuse, idempotency raced, API keys revoked."""

import itertools
import zlib

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.credentials import api_key_create, api_key_revoke
from accounts.models import Provider
from api.models import IdempotencyRecord
from coupons.models import Redemption
from coupons.services.redemptions import redemption_create
from ledger.selectors import account_balance
from tests.api.conftest import approved, assert_problem, signed_in
from tests.concurrency import race
from tests.controls import grant_revoke
from tests.coupons.conftest import IN_YEAR, grant_for, make_cast
from tests.evidence import document, invoice, member_of
from tests.factories import EnterpriseFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/redemptions/"
BATCH_URL = "/api/v1/redemptions/batch/"
RACERS = 16
REDEMPTION_FIELDS = {
    "id",
    "grant",
    "grant_code",
    "provider",
    "bill_number",
    "bill_amount_fen",
    "invoice_number",
    "invoice_document",
    "invoice_amount_fen",
    "requested_fen",
    "rate_bp",
    "coupon_fen",
    "payable_fen",
    "status",
    "created_at",
    "expires_at",
    "captured_at",
    "released_at",
    "reversed_at",
    "settlement",
    "acknowledgement",
    "acknowledge_by",
    "acknowledged_at",
    "dispute_reason",
    "dispute_resolved_at",
    "dispute_note",
}
_keys = itertools.count(1)


def fresh_key() -> str:
    return f"key-{next(_keys)}"


def redeem_body(grant_, **changes):
    """The same body for the same grant and changes (a retry sends what it sent): the bill's invoice
    number and its file follow from the grant and the bill number (one file stands behind one invoice;
    uploading the same bytes again answers with the same document)."""
    bill_number = changes.get("bill_number", "INV-1")
    serial = zlib.crc32(f"{grant_.pk}:{bill_number}".encode())
    pdf = f"%PDF-1.4\n% invoice {grant_.pk}:{bill_number} of provider {grant_.provider_id}\n%%EOF\n".encode()
    return {
        "grant": grant_.pk,
        "bill_number": "INV-1",
        "bill_amount_fen": 100_000,
        "invoice_number": f"27{grant_.pk % 10**8:08d}{serial:010d}",
        "invoice_document": document(member_of(grant_.provider_id), "invoice", data=pdf).pk,
        **changes,
    }


def post(client, body, key=None):
    return client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=fresh_key() if key is None else key)


def item(key, grant_, **changes):
    return {"idempotency_key": key, **redeem_body(grant_, **changes)}


def available_fen(grant) -> int:
    return account_balance(account_id=grant.account_id).available_fen


@pytest.fixture
def grant(cast, year):
    """30% of a 1,000,000 fen contract: 300,000 fen."""
    return grant_for(cast, fee_fen=1_000_000)


@pytest.fixture
def other(cast, year):
    """Another enterprise and provider, with a grant of their own."""
    other = make_cast()
    other.grant = grant_for(other, fee_fen=100_000)
    return other


# --- POST /redemptions/ ---------------------------------------------------------------------------


def test_a_provider_redeems_a_grant(cast, grant, as_user):
    # when
    response = post(as_user(cast.clerk), redeem_body(grant))

    # then: 30% of the bill is held on the grant
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == REDEMPTION_FIELDS
    assert (body["status"], body["coupon_fen"], body["payable_fen"], body["bill_amount_fen"]) == (
        "pending",
        30_000,
        70_000,
        100_000,
    )
    assert (body["grant"], body["grant_code"], body["provider"], body["requested_fen"]) == (
        grant.pk,
        grant.code,
        cast.provider.pk,
        None,
    )
    assert body["created_at"] and body["expires_at"] and body["captured_at"] is None
    redemption = Redemption.objects.get()
    assert (redemption.pk, redemption.created_by) == (body["id"], cast.clerk)
    balance = account_balance(account_id=grant.account_id)
    assert (balance.available_fen, balance.debits_pending) == (270_000, 30_000)


def test_requested_and_capture_are_honoured(cast, grant, as_user):
    response = post(as_user(cast.clerk), redeem_body(grant, requested_fen=12_345, capture=True))
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["coupon_fen"], body["payable_fen"], body["requested_fen"]) == (
        "captured",
        12_345,
        87_655,
        12_345,
    )
    assert body["captured_at"] is not None
    balance = account_balance(account_id=grant.account_id)
    assert (balance.debits_posted, balance.debits_pending) == (12_345, 0)


def test_an_api_key_redeems_for_its_provider_until_it_is_revoked(cast, grant, db_snapshot):
    # given
    key, secret = api_key_create(provider=cast.provider, name="billing system", actor=cast.clerk)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")

    # when / then: the key redeems, as its machine user
    response = post(client, redeem_body(grant))
    assert response.status_code == 201, response.content
    assert Redemption.objects.get().created_by_id == key.user_id
    assert client.get(URL).json()["count"] == 1

    # when: revoked, its very next request fails and writes nothing
    api_key_revoke(key=key, actor=cast.clerk)
    before = db_snapshot()
    assert_problem(post(client, redeem_body(grant, bill_number="INV-2")), 401, "authentication_failed")
    assert_problem(client.get(URL), 401, "authentication_failed")
    assert db_snapshot() == before


def test_another_providers_grant_is_404_and_writes_nothing(cast, grant, other, as_user, db_snapshot):
    before = db_snapshot()
    assert_problem(post(as_user(cast.clerk), redeem_body(other.grant)), 404, "not_found")
    assert_problem(post(as_user(cast.clerk), redeem_body(grant, grant=999_999)), 404, "not_found")
    assert db_snapshot() == before


@pytest.mark.parametrize("role", ["member", "reviewer", "approver", "finance", "admin"])
def test_only_a_provider_member_redeems(role, cast, grant, as_user, db_snapshot):
    before = db_snapshot()
    assert_problem(post(as_user(getattr(cast, role)), redeem_body(grant)), 403, "permission_denied")
    assert db_snapshot() == before


def test_no_credentials_is_401(cast, grant, anonymous, db_snapshot):
    before = db_snapshot()
    assert_problem(anonymous.get(URL), 401, "not_authenticated")
    assert_problem(post(anonymous, redeem_body(grant)), 401, "not_authenticated")
    assert_problem(anonymous.post(BATCH_URL, {"items": [item("a", grant)]}, format="json"), 401, "not_authenticated")
    assert_problem(anonymous.post(f"{URL}1/capture/"), 401, "not_authenticated")
    assert db_snapshot() == before


MONEY_ABUSE = [-1, 0, -(10**30), 10**13 + 1, 10**30, 10.5, 1000.0, "1000", "", True, False, None, [], {}]


@pytest.mark.parametrize("value", MONEY_ABUSE, ids=repr)
@pytest.mark.parametrize("field", ["bill_amount_fen", "requested_fen"])
def test_money_field_abuse_is_400_and_writes_nothing(field, value, cast, grant, as_user, db_snapshot):
    before = db_snapshot()
    body = assert_problem(post(as_user(cast.clerk), redeem_body(grant, **{field: value})), 400, "validation_error")
    assert field in body["errors"], body
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"grant": "1"}, "grant"),
        ({"grant": None}, "grant"),
        ({"grant": -1}, "grant"),
        ({"grant": 1.0}, "grant"),
        ({"grant": 10**30}, "grant"),
        ({"bill_number": ""}, "bill_number"),
        ({"bill_number": "   "}, "bill_number"),
        ({"bill_number": 12345}, "bill_number"),
        ({"bill_number": "x" * 65}, "bill_number"),
        ({"bill_number": "INV\n1"}, "bill_number"),
        ({"capture": "true"}, "capture"),
        ({"capture": 1}, "capture"),
        ({"capture": None}, "capture"),
        ({"coupon_fen": 1}, "coupon_fen"),
        ({"status": "captured"}, "status"),
        ({"provider": 1}, "provider"),
        ({"payable_fen": 1}, "payable_fen"),
        ({"id": 1}, "id"),
    ],
)
def test_bad_input_is_400_and_writes_nothing(changes, field, cast, grant, as_user, db_snapshot):
    before = db_snapshot()
    body = assert_problem(post(as_user(cast.clerk), redeem_body(grant, **changes)), 400, "validation_error")
    assert field in body["errors"], body
    assert db_snapshot() == before


def test_missing_fields_and_a_body_that_is_not_an_object_are_400(cast, grant, as_user, db_snapshot):
    client = as_user(cast.clerk)
    before = db_snapshot()
    body = assert_problem(post(client, {}), 400, "validation_error")
    assert {"grant", "bill_number", "bill_amount_fen"} <= set(body["errors"])
    assert_problem(post(client, [redeem_body(grant)]), 400, "validation_error")
    response = client.post(URL, "{not json", content_type="application/json", HTTP_IDEMPOTENCY_KEY=fresh_key())
    assert_problem(response, 400, "validation_error")
    assert db_snapshot() == before


def test_business_refusals_are_409_with_their_code_and_write_nothing(cast, grant, as_user, db_snapshot):
    client = as_user(cast.clerk)
    post(client, redeem_body(grant))
    small = grant_for(cast, fee_fen=10_000, amount_fen=1_000)
    post(client, redeem_body(small, bill_amount_fen=5_000))
    before = db_snapshot()
    assert_problem(post(client, redeem_body(grant)), 409, "duplicate_bill")
    assert_problem(
        post(client, redeem_body(grant, bill_number="INV-2", bill_amount_fen=900_001)), 409, "contract_exceeded"
    )
    assert_problem(post(client, redeem_body(small, bill_number="INV-2", bill_amount_fen=1_000)), 409, "grant_exhausted")
    assert db_snapshot() == before


def test_a_revoked_grant_and_a_suspended_provider_are_409(cast, grant, as_user, db_snapshot):
    client = as_user(cast.clerk)
    revoked = grant_for(cast, fee_fen=10_000)
    grant_revoke(grant=revoked, actor=cast.approver, reason="cancelled")
    before = db_snapshot()
    assert_problem(post(client, redeem_body(revoked)), 409, "grant_revoked")
    assert db_snapshot() == before
    Provider.objects.filter(pk=cast.provider.pk).update(status=Provider.Status.SUSPENDED)
    before = db_snapshot()
    assert_problem(post(client, redeem_body(grant)), 409, "provider_not_listed")
    assert db_snapshot() == before


# --- Idempotency ----------------------------------------------------------------------------------


def test_the_same_key_and_body_replay_the_first_answer(cast, grant, as_user):
    client = as_user(cast.clerk)
    first = post(client, redeem_body(grant), key="bill-INV-1")
    again = post(client, redeem_body(grant), key="bill-INV-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Redemption.objects.count() == 1
    assert account_balance(account_id=grant.account_id).debits_pending == 30_000


def test_a_refusal_is_replayed_too(cast, grant, as_user, db_snapshot):
    client = as_user(cast.clerk)
    post(client, redeem_body(grant))
    first = post(client, redeem_body(grant), key="dup")
    before = db_snapshot()
    again = post(client, redeem_body(grant), key="dup")
    assert_problem(again, 409, "duplicate_bill")
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert db_snapshot() == before


def test_the_same_key_with_another_body_is_409(cast, grant, as_user, db_snapshot):
    client = as_user(cast.clerk)
    post(client, redeem_body(grant), key="k")
    before = db_snapshot()
    assert_problem(post(client, redeem_body(grant, bill_amount_fen=100_001), key="k"), 409, "idempotency_key_reused")
    assert_problem(post(client, redeem_body(grant, bill_number="INV-2"), key="k"), 409, "idempotency_key_reused")
    assert db_snapshot() == before


def test_keys_belong_to_their_caller(cast, grant, as_user):
    first = post(as_user(cast.clerk), redeem_body(grant), key="shared")
    colleague = UserFactory(provider=cast.provider)
    second = post(as_user(colleague), redeem_body(grant, bill_number="INV-2"), key="shared")
    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second
    assert Redemption.objects.count() == 2


def test_a_missing_key_is_400_and_writes_nothing(cast, grant, as_user, db_snapshot):
    before = db_snapshot()
    response = as_user(cast.clerk).post(URL, redeem_body(grant), format="json")
    assert_problem(response, 400, "idempotency_key_required")
    assert db_snapshot() == before
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"], ids=["empty", "too-long", "unprintable"])
def test_a_malformed_key_is_400(key, cast, grant, as_user, db_snapshot):
    before = db_snapshot()
    body = assert_problem(post(as_user(cast.clerk), redeem_body(grant), key=key), 400, "validation_error")
    assert "Idempotency-Key" in body["errors"]
    assert db_snapshot() == before


@pytest.mark.django_db(transaction=True)
def test_racing_requests_with_one_key_make_one_redemption(cast, grant):
    # given: each racer its own client and connection, all with the same key and body
    clients = [signed_in(cast.clerk) for _ in range(RACERS)]
    body = redeem_body(grant)

    # when
    responses = race([lambda c=c: post(c, body, key="raced") for c in clients])

    # then: one redemption, one hold; every racer got its answer
    assert all(not isinstance(r, Exception) for r in responses), responses
    assert [r.status_code for r in responses] == [201] * RACERS
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.get("Idempotent-Replayed") == "true" for r in responses) == RACERS - 1
    assert Redemption.objects.count() == 1
    assert account_balance(account_id=grant.account_id).debits_pending == 30_000


# --- POST /redemptions/batch/ ----------------------------------------------------------------------


def test_a_batch_answers_each_item_in_order(cast, grant, other, as_user):
    # given: one good bill, the same bill again, and another provider's grant
    items = [
        item("b-1", grant, bill_number="INV-1"),
        item("b-2", grant, bill_number="INV-1", bill_amount_fen=50_000),
        item("b-3", other.grant, bill_number="INV-3"),
    ]

    # when
    response = as_user(cast.clerk).post(BATCH_URL, {"items": items}, format="json")

    # then: the first stands even though the others were refused
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [(r["idempotency_key"], r["status"], r["replayed"]) for r in results] == [
        ("b-1", 201, False),
        ("b-2", 409, False),
        ("b-3", 404, False),
    ]
    assert set(results[0]["redemption"]) == REDEMPTION_FIELDS and "error" not in results[0]
    assert (results[0]["redemption"]["coupon_fen"], results[0]["redemption"]["bill_number"]) == (30_000, "INV-1")
    assert results[1]["error"]["code"] == "duplicate_bill" and "redemption" not in results[1]
    assert results[2]["error"]["code"] == "not_found"
    assert list(Redemption.objects.values_list("pk", flat=True)) == [results[0]["redemption"]["id"]]


def test_replaying_a_batch_replays_each_item(cast, grant, other, as_user, db_snapshot):
    client = as_user(cast.clerk)
    items = [
        item("b-1", grant, bill_number="INV-1", capture=True),
        item("b-2", grant, bill_number="INV-1"),
        item("b-3", other.grant, bill_number="INV-3"),
    ]
    first = client.post(BATCH_URL, {"items": items}, format="json").json()["results"]
    before = db_snapshot()

    again = client.post(BATCH_URL, {"items": items}, format="json").json()["results"]

    assert all(r["replayed"] for r in again)
    assert [{k: v for k, v in r.items() if k != "replayed"} for r in again] == [
        {k: v for k, v in r.items() if k != "replayed"} for r in first
    ]
    assert db_snapshot() == before


def test_a_batch_item_is_the_same_unit_as_a_single_post(cast, grant, as_user):
    client = as_user(cast.clerk)
    single = post(client, redeem_body(grant), key="inv-1")
    results = client.post(
        BATCH_URL,
        {"items": [item("inv-1", grant), item("inv-1b", grant, bill_number="INV-2", bill_amount_fen=3)]},
        format="json",
    ).json()["results"]
    assert (results[0]["status"], results[0]["replayed"], results[0]["redemption"]) == (201, True, single.json())
    # A bill too small for a coupon at 30% is refused in its own item.
    assert (results[1]["status"], results[1]["error"]["code"]) == (400, "validation_error")
    assert Redemption.objects.count() == 1


def test_a_batch_item_reusing_a_key_with_another_body_is_409_in_its_item(cast, grant, as_user):
    client = as_user(cast.clerk)
    post(client, redeem_body(grant), key="inv-1")
    results = client.post(BATCH_URL, {"items": [item("inv-1", grant, bill_amount_fen=99)]}, format="json").json()[
        "results"
    ]
    assert (results[0]["status"], results[0]["error"]["code"]) == (409, "idempotency_key_reused")
    assert Redemption.objects.count() == 1


def test_a_bad_item_is_refused_in_its_own_result(cast, grant, as_user):
    items = [item("b-1", grant, bill_amount_fen=-5), item("b-2", grant, bill_number="INV-2"), item("b-3", grant, x=1)]
    results = as_user(cast.clerk).post(BATCH_URL, {"items": items}, format="json").json()["results"]
    assert [r["status"] for r in results] == [400, 201, 400]
    assert results[0]["error"]["code"] == "validation_error" and "bill_amount_fen" in results[0]["error"]["errors"]
    assert "x" in results[2]["error"]["errors"]
    assert Redemption.objects.count() == 1


def envelope_cases(grant):
    good = item("a", grant)
    too_many = [item(f"k{n}", grant, bill_number=f"INV-{n}") for n in range(settings.API_BATCH_SIZE_MAX + 1)]
    no_key = {k: v for k, v in good.items() if k != "idempotency_key"}
    return {
        "limit+1 items": ({"items": too_many}, "items"),
        "no items": ({"items": []}, "items"),
        "items not a list": ({"items": good}, "items"),
        "items missing": ({}, "items"),
        "an item without its key": ({"items": [good, no_key]}, "items.1.idempotency_key"),
        "an empty key": ({"items": [item("", grant)]}, "items.0.idempotency_key"),
        "a key that is not a string": ({"items": [item(5, grant)]}, "items.0.idempotency_key"),
        "a key twice": ({"items": [good, item("a", grant, bill_number="INV-2")]}, "items"),
        "an item that is not an object": ({"items": [good, 1]}, "items.1"),
        "an unknown field": ({"items": [good], "atomic": True}, "atomic"),
        "not an object": ([good], "non_field_errors"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "limit+1 items",
        "no items",
        "items not a list",
        "items missing",
        "an item without its key",
        "an empty key",
        "a key that is not a string",
        "a key twice",
        "an item that is not an object",
        "an unknown field",
        "not an object",
    ],
)
def test_a_malformed_batch_is_400_and_runs_nothing(case, cast, grant, as_user, db_snapshot):
    body, field = envelope_cases(grant)[case]
    before = db_snapshot()
    problem = assert_problem(as_user(cast.clerk).post(BATCH_URL, body, format="json"), 400, "validation_error")
    assert any(name.startswith(field) for name in problem["errors"]), problem
    assert db_snapshot() == before
    assert IdempotencyRecord.objects.count() == 0


def test_a_full_batch_runs_every_item(cast, grant, as_user):
    items = [
        item(f"k{n}", grant, bill_number=f"INV-{n}", bill_amount_fen=1_000) for n in range(settings.API_BATCH_SIZE_MAX)
    ]
    results = as_user(cast.clerk).post(BATCH_URL, {"items": items}, format="json").json()["results"]
    assert [r["status"] for r in results] == [201] * settings.API_BATCH_SIZE_MAX
    assert Redemption.objects.count() == settings.API_BATCH_SIZE_MAX


@pytest.mark.parametrize("role", ["member", "reviewer", "finance"])
def test_only_a_provider_member_sends_a_batch(role, cast, grant, as_user, db_snapshot):
    before = db_snapshot()
    response = as_user(getattr(cast, role)).post(BATCH_URL, {"items": [item("a", grant)]}, format="json")
    assert_problem(response, 403, "permission_denied")
    assert db_snapshot() == before


# --- Reading --------------------------------------------------------------------------------------


def test_lists_are_scoped_and_filtered(cast, grant, other, as_user, year):
    clerk = as_user(cast.clerk)
    pending = post(clerk, redeem_body(grant)).json()
    captured = post(clerk, redeem_body(grant, bill_number="INV-2", capture=True)).json()
    theirs = redemption_create(
        grant=other.grant,
        bill_number="X-1",
        bill_amount_fen=10_000,
        actor=other.clerk,
        now=IN_YEAR,
        **invoice(other.clerk),
    )

    def ids(client, query=""):
        return [r["id"] for r in client.get(f"{URL}?{query}").json()["results"]]

    staff = as_user(cast.reviewer)
    assert ids(staff) == [pending["id"], captured["id"], theirs.pk]
    assert ids(clerk) == [pending["id"], captured["id"]]
    assert ids(as_user(cast.member)) == [pending["id"], captured["id"]]
    assert ids(as_user(other.clerk)) == [theirs.pk]
    assert ids(as_user(UserFactory(enterprise=EnterpriseFactory()))) == []
    assert ids(staff, "status=captured") == [captured["id"]]
    assert ids(staff, f"grant={other.grant.pk}") == [theirs.pk]
    assert ids(staff, f"provider={cast.provider.pk}") == [pending["id"], captured["id"]]
    assert ids(staff, f"enterprise={other.enterprise.pk}") == [theirs.pk]
    assert ids(staff, f"year={year.year}") == [pending["id"], captured["id"], theirs.pk]
    assert ids(staff, f"year={year.year - 1}") == []
    assert as_user(cast.member).get(f"{URL}{pending['id']}/").json() == pending


def test_another_organisations_redemption_is_404(cast, grant, other, as_user, db_snapshot):
    pk = post(as_user(cast.clerk), redeem_body(grant)).json()["id"]
    stranger = as_user(UserFactory(enterprise=EnterpriseFactory()))
    other_clerk = as_user(other.clerk)
    before = db_snapshot()
    assert_problem(stranger.get(f"{URL}{pk}/"), 404, "not_found")
    assert_problem(other_clerk.get(f"{URL}{pk}/"), 404, "not_found")
    assert_problem(other_clerk.post(f"{URL}{pk}/capture/"), 404, "not_found")
    assert_problem(other_clerk.post(f"{URL}{pk}/void/"), 404, "not_found")
    assert_problem(stranger.post(f"{URL}{pk}/reverse/", {"reason": "x"}, format="json"), 404, "not_found")
    assert db_snapshot() == before


# --- Capture, void, reverse -------------------------------------------------------------------------


def test_the_provider_captures_a_hold(cast, grant, as_user):
    clerk = as_user(cast.clerk)
    pk = post(clerk, redeem_body(grant)).json()["id"]
    response = clerk.post(f"{URL}{pk}/capture/")
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["coupon_fen"]) == ("captured", 30_000)
    assert response.json()["captured_at"] is not None
    balance = account_balance(account_id=grant.account_id)
    assert (balance.debits_posted, balance.debits_pending, balance.available_fen) == (30_000, 0, 270_000)


def test_the_provider_voids_a_hold(cast, grant, as_user):
    clerk = as_user(cast.clerk)
    pk = post(clerk, redeem_body(grant)).json()["id"]
    response = clerk.post(f"{URL}{pk}/void/", {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "voided" and response.json()["released_at"] is not None
    assert available_fen(grant) == 300_000


def test_a_reversal_asked_by_a_reviewer_is_done_when_an_approver_approves(cast, grant, as_user):
    pk = post(as_user(cast.clerk), redeem_body(grant, capture=True)).json()["id"]
    asked = as_user(cast.reviewer).post(f"{URL}{pk}/reverse/", {"reason": "The bill was cancelled."}, format="json")
    assert asked.status_code == 202, asked.content
    assert (asked.json()["action"], asked.json()["payload"]["redemption"]) == ("redemption_reverse", pk)
    assert as_user(cast.approver).get(f"{URL}{pk}/").json()["status"] == "captured"
    approved(asked, as_user(cast.approver))
    body = as_user(cast.approver).get(f"{URL}{pk}/").json()
    assert body["status"] == "reversed" and body["reversed_at"] is not None
    assert available_fen(grant) == 300_000
    redemption = Redemption.objects.get(pk=pk)
    assert (redemption.reversal_requested_by, redemption.reversed_by) == (cast.reviewer, cast.approver)


def test_actions_honour_an_idempotency_key(cast, grant, as_user):
    clerk = as_user(cast.clerk)
    pk = post(clerk, redeem_body(grant)).json()["id"]
    first = clerk.post(f"{URL}{pk}/capture/", HTTP_IDEMPOTENCY_KEY="cap-1")
    again = clerk.post(f"{URL}{pk}/capture/", HTTP_IDEMPOTENCY_KEY="cap-1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and again["Idempotent-Replayed"] == "true"
    approver = as_user(cast.approver)
    reversed_ = approver.post(f"{URL}{pk}/reverse/", {"reason": "r"}, format="json", HTTP_IDEMPOTENCY_KEY="rev-1")
    replayed = approver.post(f"{URL}{pk}/reverse/", {"reason": "r"}, format="json", HTTP_IDEMPOTENCY_KEY="rev-1")
    assert reversed_.status_code == replayed.status_code == 202 and replayed["Idempotent-Replayed"] == "true"
    assert_problem(
        approver.post(f"{URL}{pk}/reverse/", {"reason": "other"}, format="json", HTTP_IDEMPOTENCY_KEY="rev-1"),
        409,
        "idempotency_key_reused",
    )
    approved(reversed_, as_user(cast.approver2))
    assert available_fen(grant) == 300_000


def test_a_role_that_may_not_act_is_403(cast, grant, as_user, db_snapshot):
    clerk = as_user(cast.clerk)
    held = post(clerk, redeem_body(grant)).json()["id"]
    captured = post(clerk, redeem_body(grant, bill_number="INV-2", capture=True)).json()["id"]
    before = db_snapshot()
    assert_problem(as_user(cast.approver).post(f"{URL}{held}/capture/"), 403, "permission_denied")
    assert_problem(as_user(cast.member).post(f"{URL}{held}/void/"), 403, "permission_denied")
    for user in (cast.clerk, cast.finance, cast.member):
        response = as_user(user).post(f"{URL}{captured}/reverse/", {"reason": "x"}, format="json")
        assert_problem(response, 403, "permission_denied")
    assert db_snapshot() == before


def test_actions_in_the_wrong_state_are_409(cast, grant, as_user, db_snapshot):
    clerk = as_user(cast.clerk)
    held = post(clerk, redeem_body(grant)).json()["id"]
    captured = post(clerk, redeem_body(grant, bill_number="INV-2", capture=True)).json()["id"]
    before = db_snapshot()
    assert_problem(clerk.post(f"{URL}{captured}/capture/"), 409, "invalid_state")
    assert_problem(clerk.post(f"{URL}{captured}/void/"), 409, "invalid_state")
    assert_problem(
        as_user(cast.approver).post(f"{URL}{held}/reverse/", {"reason": "x"}, format="json"), 409, "invalid_state"
    )
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("capture", {"status": "captured"}, "status"),
        ("void", {"coupon_fen": 0}, "coupon_fen"),
        ("reverse", {}, "reason"),
        ("reverse", {"reason": ""}, "reason"),
        ("reverse", {"reason": 7}, "reason"),
        ("reverse", {"reason": "x" * 2_001}, "reason"),
        ("reverse", {"reason": "x", "reversed_to": "grant"}, "reversed_to"),
    ],
)
def test_bad_action_input_is_400_and_writes_nothing(action, body, field, cast, grant, as_user, db_snapshot):
    capture = action == "reverse"
    pk = post(as_user(cast.clerk), redeem_body(grant, capture=capture)).json()["id"]
    actor = cast.approver if action == "reverse" else cast.clerk
    before = db_snapshot()
    problem = assert_problem(as_user(actor).post(f"{URL}{pk}/{action}/", body, format="json"), 400, "validation_error")
    assert field in problem["errors"], problem
    assert db_snapshot() == before
