"""/api/v1/settlements/: finance settles and pays providers; the lines for the bank as CSV; scoping."""

import csv
import io

import pytest
from django.utils import timezone

from accounts.models import Role
from coupons import books
from coupons.models import Redemption, Settlement
from coupons.services.redemptions import redemption_create
from coupons.services.settlements import settlement_create
from ledger.selectors import account_balance, account_get
from tests.api.conftest import approved, assert_problem
from tests.controls import redemption_reverse, settlement_pay
from tests.coupons.conftest import IN_YEAR, grant_for, make_cast
from tests.evidence import invoice
from tests.factories import EnterpriseFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/settlements/"
SETTLEMENT_FIELDS = {
    "id",
    "program",
    "provider",
    "enterprise",
    "status",
    "total_fen",
    "redemptions_count",
    "claims_count",
    "bank_reference",
    "paid_at",
    "created_at",
}
CSV_HEADER = [
    "line",
    "kind",
    "redemption_id",
    "grant_code",
    "enterprise",
    "contract_number",
    "bill_number",
    "bill_amount_fen",
    "coupon_fen",
    "captured_at",
]


def captured(cast, grant, bill_number, bill_amount_fen):
    return redemption_create(
        grant=grant,
        bill_number=bill_number,
        bill_amount_fen=bill_amount_fen,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )


def provider_balance(provider):
    return account_balance(account_id=account_get(code=books.provider_code(provider.pk)).pk)


@pytest.fixture
def grant(cast, year):
    return grant_for(cast, fee_fen=1_000_000)


@pytest.fixture
def redeemed(cast, grant):
    """Two captured redemptions: 30,000 and 15,000 fen."""
    return [captured(cast, grant, "INV-1", 100_000), captured(cast, grant, "INV-2", 50_000)]


@pytest.fixture
def settlement(cast, redeemed):
    return settlement_create(provider=cast.provider, actor=cast.finance)


@pytest.fixture
def other(cast, year):
    """Another provider, with a settlement of its own."""
    other = make_cast()
    captured(other, grant_for(other, fee_fen=100_000), "X-1", 10_000)
    other.settlement = settlement_create(provider=other.provider, actor=cast.finance)
    return other


def test_finance_settles_with_a_provider_and_pays(cast, redeemed, as_user):
    finance = as_user(cast.finance)

    # when: settled
    response = finance.post(URL, {"provider": cast.provider.pk}, format="json")

    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == SETTLEMENT_FIELDS
    assert (body["provider"], body["status"], body["total_fen"], body["redemptions_count"]) == (
        cast.provider.pk,
        "open",
        45_000,
        2,
    )
    assert (body["bank_reference"], body["paid_at"]) == ("", None) and body["created_at"]
    assert set(Redemption.objects.values_list("settlement_id", flat=True)) == {body["id"]}
    assert finance.get(f"{URL}{body['id']}/").json() == body
    assert provider_balance(cast.provider).credits_posted == 45_000

    # when: its payment is asked for by the finance user who created it
    asked = finance.post(f"{URL}{body['id']}/pay/", {"bank_reference": "ICBC-0042"}, format="json")

    # then: nothing is paid until a second finance user confirms it
    assert asked.status_code == 202, asked.content
    assert asked.json()["payload"]["bank_reference"] == "ICBC-0042"
    assert finance.get(f"{URL}{body['id']}/").json()["status"] == "open"
    assert provider_balance(cast.provider).debits_posted == 0
    approved(asked, as_user(UserFactory(roles=[Role.FINANCE])))

    # then: the money left the provider's account
    paid = finance.get(f"{URL}{body['id']}/").json()
    assert (paid["status"], paid["bank_reference"]) == ("paid", "ICBC-0042")
    assert paid["paid_at"] is not None and paid["total_fen"] == 45_000
    balance = provider_balance(cast.provider)
    assert (balance.credits_posted, balance.debits_posted) == (45_000, 45_000)


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_lines_csv_lists_every_redemption_and_the_total(cast, grant, redeemed, settlement, as_user):
    response = as_user(cast.finance).get(f"{URL}{settlement.pk}/lines.csv")

    rows = read_csv(response)
    assert response["Content-Disposition"] == f'attachment; filename="settlement-{settlement.pk}.csv"'
    contract = grant.application.contract_number
    first, second = (Redemption.objects.get(pk=r.pk) for r in redeemed)
    assert rows == [
        CSV_HEADER,
        ["1", "redemption", str(first.pk), grant.code, cast.enterprise.name, contract, "INV-1", "100000", "30000",
         timezone.localtime(first.captured_at).isoformat()],
        ["2", "redemption", str(second.pk), grant.code, cast.enterprise.name, contract, "INV-2", "50000", "15000",
         timezone.localtime(second.captured_at).isoformat()],
        ["", "total", "", "", "", "", "", "", "45000", ""],
    ]  # fmt: skip


def test_lines_csv_nets_clawbacks(cast, grant, redeemed, settlement, as_user):
    # given: the first settlement paid, then one of its redemptions reversed, and a new one captured
    settlement_pay(settlement=settlement, actor=cast.finance, bank_reference="B-1")
    redemption_reverse(redemption=redeemed[0], actor=cast.approver, reason="cancelled", now=IN_YEAR)
    new = captured(cast, grant, "INV-3", 200_000)
    finance = as_user(cast.finance)

    # when
    body = finance.post(URL, {"provider": cast.provider.pk}, format="json").json()

    # then: 60,000 due less 30,000 owed back
    assert (body["total_fen"], body["redemptions_count"]) == (30_000, 1)
    rows = read_csv(finance.get(f"{URL}{body['id']}/lines.csv"))
    assert [row[:3] + row[6:9] for row in rows[1:]] == [
        ["1", "redemption", str(new.pk), "INV-3", "200000", "60000"],
        ["2", "clawback", str(redeemed[0].pk), "INV-1", "100000", "-30000"],
        ["", "total", "", "", "", "30000"],
    ]


def test_lines_csv_answers_a_client_that_asks_for_csv(cast, settlement, other, as_user):
    clerk = as_user(cast.clerk)
    assert read_csv(clerk.get(f"{URL}{settlement.pk}/lines.csv", HTTP_ACCEPT="text/csv"))[0] == CSV_HEADER
    assert_problem(clerk.get(f"{URL}{other.settlement.pk}/lines.csv", HTTP_ACCEPT="text/csv"), 404, "not_found")


def test_lists_are_scoped_and_filtered(cast, settlement, other, as_user):
    def ids(client, query=""):
        return [s["id"] for s in client.get(f"{URL}?{query}").json()["results"]]

    finance = as_user(cast.finance)
    assert ids(finance) == [settlement.pk, other.settlement.pk]
    assert ids(as_user(cast.reviewer)) == [settlement.pk, other.settlement.pk]
    assert ids(as_user(cast.clerk)) == [settlement.pk]
    assert ids(as_user(other.clerk)) == [other.settlement.pk]
    assert ids(as_user(cast.member)) == []
    assert ids(finance, f"provider={other.provider.pk}") == [other.settlement.pk]
    assert ids(finance, "status=open") == [settlement.pk, other.settlement.pk]
    assert ids(finance, "status=paid") == []
    assert as_user(cast.clerk).get(f"{URL}{settlement.pk}/").json()["total_fen"] == 45_000


def test_another_organisations_settlement_is_404(cast, settlement, other, as_user, db_snapshot):
    other_clerk = as_user(other.clerk)
    member = as_user(cast.member)
    before = db_snapshot()
    for client in (other_clerk, member):
        assert_problem(client.get(f"{URL}{settlement.pk}/"), 404, "not_found")
        assert_problem(client.get(f"{URL}{settlement.pk}/lines.csv"), 404, "not_found")
        assert_problem(
            client.post(f"{URL}{settlement.pk}/pay/", {"bank_reference": "x"}, format="json"), 404, "not_found"
        )
    assert_problem(as_user(cast.finance).post(URL, {"provider": 999_999}, format="json"), 404, "not_found")
    assert db_snapshot() == before


@pytest.mark.parametrize("role", ["clerk", "reviewer", "approver", "member"])
def test_a_role_that_may_not_settle_is_403(role, cast, redeemed, as_user, db_snapshot):
    before = db_snapshot()
    response = as_user(getattr(cast, role)).post(URL, {"provider": cast.provider.pk}, format="json")
    assert_problem(response, 403, "permission_denied")
    assert db_snapshot() == before


@pytest.mark.parametrize("role", ["clerk", "reviewer", "approver"])
def test_a_role_that_may_not_pay_is_403(role, cast, settlement, as_user, db_snapshot):
    before = db_snapshot()
    response = as_user(getattr(cast, role)).post(f"{URL}{settlement.pk}/pay/", {"bank_reference": "x"}, format="json")
    assert_problem(response, 403, "permission_denied")
    assert db_snapshot() == before


def test_no_credentials_is_401(cast, settlement, anonymous, db_snapshot):
    before = db_snapshot()
    assert_problem(anonymous.get(URL), 401, "not_authenticated")
    assert_problem(anonymous.get(f"{URL}{settlement.pk}/"), 401, "not_authenticated")
    assert_problem(anonymous.get(f"{URL}{settlement.pk}/lines.csv"), 401, "not_authenticated")
    assert_problem(anonymous.post(URL, {"provider": cast.provider.pk}, format="json"), 401, "not_authenticated")
    assert_problem(
        anonymous.post(f"{URL}{settlement.pk}/pay/", {"bank_reference": "x"}, format="json"), 401, "not_authenticated"
    )
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "provider"),
        ({"provider": None}, "provider"),
        ({"provider": "1"}, "provider"),
        ({"provider": 1.0}, "provider"),
        ({"provider": -1}, "provider"),
        ({"provider": True}, "provider"),
        ({"provider": 10**30}, "provider"),
        ({"provider": 1, "total_fen": 5}, "total_fen"),
        ({"provider": 1, "status": "paid"}, "status"),
    ],
)
def test_bad_settle_input_is_400_and_writes_nothing(body, field, cast, redeemed, as_user, db_snapshot):
    before = db_snapshot()
    problem = assert_problem(as_user(cast.finance).post(URL, body, format="json"), 400, "validation_error")
    assert field in problem["errors"], problem
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "bank_reference"),
        ({"bank_reference": ""}, "bank_reference"),
        ({"bank_reference": "  "}, "bank_reference"),
        ({"bank_reference": 42}, "bank_reference"),
        ({"bank_reference": None}, "bank_reference"),
        ({"bank_reference": "x" * 101}, "bank_reference"),
        ({"bank_reference": "B-1", "paid_at": "2026-01-01T00:00:00Z"}, "paid_at"),
        ({"bank_reference": "B-1", "total_fen": 1}, "total_fen"),
    ],
)
def test_bad_pay_input_is_400_and_writes_nothing(body, field, cast, settlement, as_user, db_snapshot):
    before = db_snapshot()
    response = as_user(cast.finance).post(f"{URL}{settlement.pk}/pay/", body, format="json")
    problem = assert_problem(response, 400, "validation_error")
    assert field in problem["errors"], problem
    assert db_snapshot() == before


def test_nothing_to_settle_and_paying_twice_are_409(cast, settlement, as_user, db_snapshot):
    finance = as_user(cast.finance)
    approved(
        finance.post(f"{URL}{settlement.pk}/pay/", {"bank_reference": "B-1"}, format="json"),
        as_user(UserFactory(roles=[Role.FINANCE])),
    )
    before = db_snapshot()
    assert_problem(finance.post(URL, {"provider": cast.provider.pk}, format="json"), 409, "invalid_state")
    assert_problem(
        finance.post(f"{URL}{settlement.pk}/pay/", {"bank_reference": "B-2"}, format="json"), 409, "invalid_state"
    )
    assert db_snapshot() == before


def test_settle_and_pay_honour_an_idempotency_key(cast, redeemed, as_user):
    finance = as_user(cast.finance)
    body = {"provider": cast.provider.pk}
    first = finance.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="settle-1")
    again = finance.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="settle-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json() and again["Idempotent-Replayed"] == "true"
    assert Settlement.objects.count() == 1

    pay_url = f"{URL}{first.json()['id']}/pay/"
    paid = finance.post(pay_url, {"bank_reference": "B-1"}, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")
    replayed = finance.post(pay_url, {"bank_reference": "B-1"}, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")
    assert (paid.status_code, replayed.status_code) == (202, 202)
    assert paid.json() == replayed.json() and replayed["Idempotent-Replayed"] == "true"
    assert_problem(
        finance.post(pay_url, {"bank_reference": "B-2"}, format="json", HTTP_IDEMPOTENCY_KEY="pay-1"),
        409,
        "idempotency_key_reused",
    )
    approved(paid, as_user(UserFactory(roles=[Role.FINANCE])))
    assert provider_balance(cast.provider).debits_posted == 45_000


def test_an_enterprise_member_sees_no_settlements(cast, settlement, as_user):
    stranger = as_user(UserFactory(enterprise=EnterpriseFactory()))
    assert stranger.get(URL).json()["results"] == []
    assert_problem(stranger.get(f"{URL}{settlement.pk}/"), 404, "not_found")
