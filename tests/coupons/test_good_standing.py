"""Parties out of good standing get no coupon; references are compared as people mean them."""

from datetime import timedelta

import pytest

from accounts.models import Enterprise, Provider
from coupons.errors import DuplicateBill, DuplicateContract, EnterpriseNotVerified, ProviderNotListed
from coupons.models import Grant
from coupons.selectors import settlement_lines_csv
from coupons.services.applications import application_approve, application_confirm
from coupons.services.redemptions import redemption_create
from coupons.services.settlements import settlement_create
from tests.coupons.conftest import IN_YEAR, grant_for, submit, to_reviewed
from tests.evidence import invoice

pytestmark = pytest.mark.django_db


def test_no_approval_for_a_provider_suspended_since_the_application(cast, year, db_snapshot):
    application = to_reviewed(cast, submit(cast))
    Provider.objects.filter(pk=cast.provider.pk).update(status="suspended")
    before = db_snapshot()
    with pytest.raises(ProviderNotListed):
        application_approve(application=application, actor=cast.approver)
    assert db_snapshot() == before
    assert not Grant.objects.exists()


def test_no_approval_or_confirmation_for_a_suspended_enterprise(cast, year, db_snapshot):
    submitted = submit(cast)
    reviewed = to_reviewed(cast, submit(cast))
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(status="suspended")
    before = db_snapshot()
    with pytest.raises(EnterpriseNotVerified):
        application_approve(application=reviewed, actor=cast.approver)
    with pytest.raises(EnterpriseNotVerified):
        application_confirm(application=submitted, actor=cast.clerk)
    assert db_snapshot() == before


def test_no_redemption_for_a_suspended_enterprise(cast, year, db_snapshot):
    grant = grant_for(cast)
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(status="suspended")
    before = db_snapshot()
    with pytest.raises(EnterpriseNotVerified):
        redemption_create(
            grant=grant, bill_number="B1", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
        )
    assert db_snapshot() == before


@pytest.mark.parametrize("again", ["hz-c-1", "ＨＺ－Ｃ－１", "  HZ-C-1 "])
def test_a_contract_number_in_another_case_or_width_is_the_same_contract(again, cast, year):
    submit(cast, number="HZ-C-1")
    with pytest.raises(DuplicateContract):
        submit(cast, number=again)


@pytest.mark.parametrize("again", ["b-1", "Ｂ－１", " B-1"])
def test_a_bill_number_in_another_case_or_width_is_the_same_bill(again, cast, year):
    grant = grant_for(cast)
    redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )
    with pytest.raises(DuplicateBill):
        redemption_create(
            grant=grant, bill_number=again, bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
        )


def test_a_hold_past_its_timeout_frees_its_bill_at_once(cast, year):
    grant = grant_for(cast)
    hold = redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )
    later = hold.expires_at + timedelta(seconds=1)
    again = redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=10_000, actor=cast.clerk, now=later, **invoice(cast.clerk)
    )
    hold.refresh_from_db()
    assert (hold.status, again.status) == ("expired", "pending")


def test_settlement_csv_cells_are_never_formulas(cast, year):
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(name="=cmd|' /C calc'!A0")
    grant = grant_for(cast)
    redemption_create(
        grant=grant,
        bill_number='=HYPERLINK("http://evil.example")',
        bill_amount_fen=10_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )
    text = settlement_lines_csv(settlement_create(provider=cast.provider, actor=cast.finance))
    cells = [cell for line in text.splitlines() for cell in line.split(",")]
    assert not any(cell.lstrip('"').startswith(("=", "+", "@")) for cell in cells), text
