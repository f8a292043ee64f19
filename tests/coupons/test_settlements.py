"""Settlements: a provider's captured redemptions, batched once, paid once, exported as CSV."""

import csv
import io

import pytest

from accounts.models import Role
from config.errors import InvalidState, PermissionDenied, ValidationFailed
from coupons import books
from coupons.errors import FourEyes
from coupons.models import Redemption, Settlement
from coupons.selectors import program_year_figures, settlement_lines_csv
from coupons.services.redemptions import redemption_create
from coupons.services.settlements import settlement_create
from ledger.selectors import account_balance, account_get
from tests.controls import settlement_pay
from tests.coupons.conftest import IN_YEAR, YEAR
from tests.evidence import invoice
from tests.factories import ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db


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


def test_settle_and_pay(cast, year, grant_of):
    grant = grant_of()
    captured(cast, grant, "B1", 100_000)
    captured(cast, grant, "B2", 50_000)
    redemption_create(
        grant=grant, bill_number="held", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )

    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    assert (settlement.status, settlement.total_fen, settlement.redemptions_count) == ("open", 45_000, 2)
    assert program_year_figures(year=YEAR).settled_fen == 0

    paid = settlement_pay(settlement=settlement, actor=cast.finance, bank_reference="ICBC-2026-0001")
    assert (paid.status, paid.bank_reference) == ("paid", "ICBC-2026-0001")
    # Two finance users at least: the one who confirmed the payment neither created it nor asked.
    assert paid.paid_by_id not in (paid.created_by_id, paid.payment_requested_by_id)
    assert paid.paid_at is not None
    assert program_year_figures(year=YEAR).settled_fen == 45_000
    provider = account_balance(account_id=account_get(code=books.provider_code(cast.provider.pk)).pk)
    assert provider.credit_balance_fen == 0
    disbursed = account_balance(account_id=account_get(code=books.disbursed_code(YEAR)).pk)
    assert disbursed.credits_posted == 45_000


def test_a_redemption_is_settled_at_most_once(cast, year, grant_of):
    grant = grant_of()
    captured(cast, grant, "B1", 100_000)
    first = settlement_create(provider=cast.provider, actor=cast.finance)
    with pytest.raises(InvalidState, match="nothing to settle"):
        settlement_create(provider=cast.provider, actor=cast.finance)
    captured(cast, grant, "B2", 100_000)
    second = settlement_create(provider=cast.provider, actor=cast.finance)
    assert Redemption.objects.filter(settlement=first).count() == 1
    assert Redemption.objects.filter(settlement=second).count() == 1


def test_settlements_are_per_provider(cast, year, grant_of):
    captured(cast, grant_of(), "B1", 100_000)
    with pytest.raises(InvalidState):
        settlement_create(provider=ProviderFactory(), actor=cast.finance)


def test_pay_refusals(cast, year, grant_of, db_snapshot):
    from coupons.services.settlements import settlement_pay as pay

    finance2 = UserFactory(roles=[Role.FINANCE])
    captured(cast, grant_of(), "B1", 100_000)
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    before = db_snapshot()
    with pytest.raises(ValidationFailed):
        pay(settlement=settlement, actor=finance2, requested_by=cast.finance, bank_reference=" ")
    with pytest.raises(PermissionDenied):
        pay(settlement=settlement, actor=cast.approver, requested_by=cast.finance, bank_reference="X")
    with pytest.raises(FourEyes, match="created"):
        pay(settlement=settlement, actor=cast.finance, requested_by=finance2, bank_reference="X")
    with pytest.raises(FourEyes, match="asked"):
        pay(settlement=settlement, actor=finance2, requested_by=finance2, bank_reference="X")
    with pytest.raises(PermissionDenied):
        settlement_create(provider=cast.provider, actor=cast.clerk)
    assert db_snapshot() == before
    settlement_pay(settlement=settlement, actor=cast.finance, bank_reference="X")
    with pytest.raises(InvalidState):
        settlement_pay(settlement=settlement, actor=cast.finance, bank_reference="Y")
    assert Settlement.objects.get(pk=settlement.pk).bank_reference == "X"


def test_lines_csv(cast, year, grant_of):
    grant = grant_of()
    captured(cast, grant, "B1", 100_000)
    captured(cast, grant, "B2", 33_333)
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    rows = list(csv.DictReader(io.StringIO(settlement_lines_csv(settlement))))
    assert [(r["kind"], r["bill_number"], r["coupon_fen"]) for r in rows[:-1]] == [
        ("redemption", "B1", "30000"),
        ("redemption", "B2", "9999"),
    ]
    assert rows[-1]["kind"] == "total" and rows[-1]["coupon_fen"] == "39999"
    assert sum(int(r["coupon_fen"]) for r in rows[:-1]) == settlement.total_fen
    assert all(r["grant_code"] == grant.code for r in rows[:-1])
