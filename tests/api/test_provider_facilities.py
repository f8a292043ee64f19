"""/api/v1/providers/ with facilities: listing a center with what it offers and when, its read
shape, bad input (400, nothing written), and the refusals that follow from the facilities:
409 compute_source_not_offered on submission, 409 provider_not_listed on redemption (single and
batch) outside the center's listing window."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Facility, Provider, ProviderChange, listing_day
from coupons.models import Application, Redemption
from tests.api.conftest import assert_problem, signed_in
from tests.coupons.conftest import grant_for
from tests.evidence import contract_ids, invoice_ids
from tests.factories import ProviderFactory, valid_uscc

pytestmark = pytest.mark.django_db

DOMESTIC = {"compute_source": "domestic", "description": "Ascend 910B cluster", "listed_from": "2024-01-01"}
OTHER = {
    "compute_source": "other",
    "description": "A800 GPU cloud",
    "listed_from": "2025-03-01",
    "listed_until": "2026-12-31",
}


def provider_body(**changes):
    return {
        "name": "Hangzhou Compute Center",
        "uscc": valid_uscc(),
        "listing": "planning_layout",
        "facilities": [DOMESTIC, OTHER],
        **changes,
    }


def test_a_superuser_lists_a_center_with_its_facilities(cast):
    body = provider_body()

    response = signed_in(cast.admin).post("/api/v1/providers/", body, format="json")

    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["facilities"] == [{**DOMESTIC, "listed_until": None}, OTHER]
    provider = Provider.objects.get(pk=answer["id"])
    assert Facility.objects.filter(provider=provider).count() == 2
    change = ProviderChange.objects.get(provider=provider)
    assert (change.kind, change.requested_by_id, change.decided_by_id) == ("listed", cast.admin.pk, cast.admin.pk)
    # Everyone who sees the center sees what it offers.
    shown = signed_in(cast.member).get(f"/api/v1/providers/{provider.pk}/").json()
    assert shown["facilities"] == answer["facilities"]


@pytest.mark.parametrize(
    ("facilities", "field"),
    [
        (None, "facilities"),
        ([], "facilities"),
        ("domestic", "facilities"),
        ([DOMESTIC] * 21, "facilities"),
        ([{**DOMESTIC, "compute_source": "quantum"}], "facilities.0.compute_source"),
        ([{**DOMESTIC, "description": ""}], "facilities.0.description"),
        ([{**DOMESTIC, "description": 7}], "facilities.0.description"),
        ([{**DOMESTIC, "listed_from": "30/01/2026"}], "facilities.0.listed_from"),
        ([{**DOMESTIC, "listed_from": "2026-02-30"}], "facilities.0.listed_from"),
        ([DOMESTIC, {**DOMESTIC, "listed_until": "2023-12-31"}], "facilities.1.listed_until"),
        ([{**DOMESTIC, "price_fen": 100}], "facilities.0.price_fen"),
    ],
)
def test_bad_facilities_are_400_and_write_nothing(cast, db_snapshot, facilities, field):
    body = provider_body(facilities=facilities)
    if facilities is None:
        del body["facilities"]
    before = db_snapshot()

    problem = assert_problem(
        signed_in(cast.admin).post("/api/v1/providers/", body, format="json"), 400, "validation_error"
    )

    assert field in problem["errors"], problem["errors"]
    assert db_snapshot() == before


def test_the_provider_list_reads_facilities_in_one_query_however_many_centers(cast):
    client = signed_in(cast.reviewer)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/providers/").status_code == 200
        return len(captured)

    first = queries()
    for _ in range(5):
        ProviderFactory()
    assert queries() == first


# --- What follows from the facilities -------------------------------------------------------------


def only(provider, compute_source, listed_from=dt.date(2024, 1, 1), listed_until=None):
    Facility.objects.filter(provider=provider).delete()
    Facility.objects.create(
        provider=provider,
        compute_source=compute_source,
        description="cluster",
        listed_from=listed_from,
        listed_until=listed_until,
    )


def test_an_application_for_a_compute_source_the_center_does_not_offer_is_409(cast, year, db_snapshot):
    only(cast.provider, "domestic")
    body = {
        "provider": cast.provider.pk,
        "contract_number": "HZ-1",
        "contract_fee_fen": 1_000_000,
        "compute_source": "other",
        "purpose": "training",
        **contract_ids(cast.member, year.year),
    }
    client = signed_in(cast.member)
    before = db_snapshot()

    assert_problem(client.post("/api/v1/applications/", body, format="json"), 409, "compute_source_not_offered")

    assert db_snapshot() == before
    response = client.post("/api/v1/applications/", {**body, "compute_source": "domestic"}, format="json")
    assert response.status_code == 201, response.content
    assert Application.objects.count() == 1


def test_a_redemption_at_a_center_whose_listing_ended_is_409_alone_and_in_a_batch(cast, year, db_snapshot):
    grant = grant_for(cast, fee_fen=1_000_000)
    only(cast.provider, "domestic", listed_until=listing_day() - dt.timedelta(days=1))
    client = signed_in(cast.clerk)
    body = {"grant": grant.pk, "bill_number": "INV-1", "bill_amount_fen": 100_000, **invoice_ids(cast.clerk)}
    other_invoice = invoice_ids(cast.clerk)
    before = db_snapshot()

    single = client.post("/api/v1/redemptions/", body, format="json", HTTP_IDEMPOTENCY_KEY="late-1")
    batch = client.post(
        "/api/v1/redemptions/batch/",
        {
            "items": [
                {"idempotency_key": "late-2", **body},
                {"idempotency_key": "late-3", **body, "bill_number": "B", **other_invoice},
            ]
        },
        format="json",
    )

    assert_problem(single, 409, "provider_not_listed")
    assert batch.status_code == 200, batch.content
    assert [(r["status"], r["error"]["code"]) for r in batch.json()["results"]] == [
        (409, "provider_not_listed"),
        (409, "provider_not_listed"),
    ]
    assert not Redemption.objects.exists()
    assert db_snapshot() == before
