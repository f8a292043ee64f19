"""`?program=` on the lists of redemptions, claims and settlements (as on applications and grants):
each keeps what belongs to the program named, alone or with `?year=`."""

import pytest

from coupons.services.claims import claim_approve, settlement_create_for_enterprise
from coupons.services.redemptions import redemption_create
from coupons.services.settlements import settlement_create
from coupons.services.years import program_create, program_year_create, program_year_open
from tests.claims import claim
from tests.coupons.conftest import IN_YEAR, YEAR, grant_for
from tests.evidence import invoice
from tests.programs import DISTRICT, district_open, grant_in

pytestmark = pytest.mark.django_db

CITY = "hangzhou-compute"
REFUND = "refund-test"


def captured(cast, grant, bill_number):
    return redemption_create(
        grant=grant,
        bill_number=bill_number,
        bill_amount_fen=100_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )


@pytest.fixture
def books_of_three(cast, year):
    """A redemption in the city's program and one in a district's, each settled for the provider by its
    own fund; a claim in a third program that reimburses enterprises, settled for the enterprise."""
    district_open(cast.admin)
    program_create(
        actor=cast.admin,
        slug=REFUND,
        name="测试报销券",
        name_en="Test reimbursement coupons",
        authority="测试",
        level="district",
        region=["3301"],
        redemption_mode="enterprise_reimbursement",
    )
    program_year_create(year=YEAR, actor=cast.admin, program=REFUND, pool_fen=1_000_000, default_cap_fen=400_000)
    program_year_open(year=YEAR, actor=cast.admin, program=REFUND)
    city_redemption = captured(cast, grant_for(cast, fee_fen=1_000_000), "CITY-1")
    district_redemption = captured(cast, grant_in(cast, DISTRICT, fee_fen=1_000_000), "DIST-1")
    refund_claim = claim(cast, grant_in(cast, REFUND, fee_fen=1_000_000), 100_000)
    claim_approve(claim=refund_claim, actor=cast.reviewer, now=IN_YEAR)
    return {
        "city": city_redemption.pk,
        "district": district_redemption.pk,
        "claim": refund_claim.pk,
        "city_settlement": settlement_create(provider=cast.provider, actor=cast.finance).pk,
        "district_settlement": settlement_create(provider=cast.provider, actor=cast.finance, program=DISTRICT).pk,
        "enterprise_settlement": settlement_create_for_enterprise(
            enterprise=cast.enterprise, actor=cast.finance, program=REFUND
        ).pk,
    }


def ids(client, path):
    response = client.get(path)
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


def test_redemptions_filter_by_program(cast, books_of_three, as_user):
    client, made = as_user(cast.reviewer), books_of_three

    assert ids(client, "/api/v1/redemptions/") == [made["city"], made["district"]]
    assert ids(client, f"/api/v1/redemptions/?program={CITY}") == [made["city"]]
    assert ids(client, f"/api/v1/redemptions/?program={DISTRICT}") == [made["district"]]
    assert ids(client, f"/api/v1/redemptions/?program={DISTRICT}&year={YEAR}") == [made["district"]]
    assert ids(client, f"/api/v1/redemptions/?program={DISTRICT}&year={YEAR + 1}") == []
    assert ids(client, f"/api/v1/redemptions/?program={REFUND}") == []
    assert ids(client, "/api/v1/redemptions/?program=nowhere") == []
    # The provider's own list filters the same way.
    assert ids(as_user(cast.clerk), f"/api/v1/redemptions/?program={DISTRICT}") == [made["district"]]


def test_claims_filter_by_program(cast, books_of_three, as_user):
    client, made = as_user(cast.reviewer), books_of_three

    assert ids(client, f"/api/v1/claims/?program={REFUND}") == [made["claim"]]
    assert ids(client, f"/api/v1/claims/?program={REFUND}&year={YEAR}") == [made["claim"]]
    assert ids(client, f"/api/v1/claims/?program={CITY}") == []
    assert ids(as_user(cast.member), f"/api/v1/claims/?program={REFUND}") == [made["claim"]]


def test_settlements_filter_by_the_program_whose_fund_pays(cast, books_of_three, as_user):
    client, made = as_user(cast.finance), books_of_three
    city, district, enterprise = made["city_settlement"], made["district_settlement"], made["enterprise_settlement"]

    # Each fund pays its own: one settlement per program, listed under its program only.
    assert ids(client, f"/api/v1/settlements/?program={CITY}") == [city]
    assert ids(client, f"/api/v1/settlements/?program={DISTRICT}") == [district]
    assert ids(client, f"/api/v1/settlements/?program={REFUND}") == [enterprise]
    assert ids(client, f"/api/v1/settlements/?program={REFUND}&year={YEAR}") == [enterprise]
    assert ids(client, f"/api/v1/settlements/?program={DISTRICT}&year={YEAR + 1}") == []
    assert ids(client, f"/api/v1/settlements/?year={YEAR}") == [city, district, enterprise]
    assert ids(client, "/api/v1/settlements/?program=nowhere") == []
    assert ids(client, f"/api/v1/programs/{DISTRICT}/settlements/") == [district]


def test_grants_and_applications_filter_by_program_too(cast, books_of_three, as_user):
    client = as_user(cast.reviewer)

    grants = client.get(f"/api/v1/grants/?program={DISTRICT}").json()["results"]
    applications = client.get(f"/api/v1/applications/?program={REFUND}").json()["results"]

    assert [grant["program"] for grant in grants] == [DISTRICT]
    assert [application["program"] for application in applications] == [REFUND]
