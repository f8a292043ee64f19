"""Parties out of good standing get no coupon; references are compared as people mean them."""

import unicodedata
from datetime import timedelta

import pytest

from accounts.models import Enterprise, Provider
from coupons.errors import DuplicateBill, DuplicateContract, EnterpriseNotVerified, ProviderNotListed
from coupons.models import Grant
from coupons.policy import DASHES, reference_normalise
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


# Every dash a keyboard or a word processor may put in a number: the hyphen (U+2010), the
# non-breaking hyphen (U+2011), the figure, en and em dashes (U+2012 to U+2014), the horizontal bar
# (U+2015), the minus sign (U+2212), the small and full-width hyphen-minus (U+FE63, U+FF0D).
LOOK_ALIKE_DASHES = ["\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212", "\ufe63", "\uff0d"]


def test_every_dash_of_the_unicode_database_is_folded():
    """The list in coupons.policy is every character of Unicode's dash punctuation (bar the ASCII
    hyphen-minus itself) that this Python knows."""
    dashes = {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Pd"} - {"-"}
    assert dashes <= set(DASHES), sorted(hex(ord(c)) for c in dashes - set(DASHES))
    assert {reference_normalise(f"A{dash}1") for dash in DASHES} == {"A-1"}


@pytest.mark.parametrize(
    "again",
    ["hz-c-1", "ＨＺ－Ｃ－１", "  HZ-C-1 "] + [f"HZ{dash}C{dash}1" for dash in LOOK_ALIKE_DASHES],
)
def test_a_contract_number_in_another_case_or_width_is_the_same_contract(again, cast, year):
    submit(cast, number="HZ-C-1")
    with pytest.raises(DuplicateContract):
        submit(cast, number=again)


@pytest.mark.parametrize("again", ["b-1", "Ｂ－１", " B-1"] + [f"B{dash}1" for dash in LOOK_ALIKE_DASHES])
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
