"""A computing center's facilities decide what it takes part in: an application's compute source
must be one the center offers on the day of submission (Asia/Shanghai), and nothing is submitted,
confirmed, approved or redeemed at a center with no facility listed that day. Each refusal
compares every money and domain table before and after."""

import datetime as dt

import pytest

from accounts.models import Facility, listing_day
from coupons.errors import ComputeSourceNotOffered, ProviderNotListed
from coupons.models import Application
from coupons.services.applications import application_approve, application_confirm, application_submit
from coupons.services.redemptions import redemption_create
from coupons.services.years import program_year_of
from tests.coupons.conftest import IN_YEAR, submit, to_reviewed
from tests.evidence import contract, invoice

pytestmark = pytest.mark.django_db

IN_YEAR_DAY = listing_day(IN_YEAR)


def facilities_set(provider, *rows):
    """Replace the provider's facilities (test set-up; the service path is a provider change)."""
    Facility.objects.filter(provider=provider).delete()
    for compute_source, listed_from, listed_until in rows:
        Facility.objects.create(
            provider=provider,
            compute_source=compute_source,
            description=f"{compute_source} cluster",
            listed_from=listed_from,
            listed_until=listed_until,
        )


def submit_at(cast, now):
    return application_submit(
        actor=cast.member,
        provider=cast.provider,
        contract_number=f"AT-{now:%Y%m%dT%H%M%S}",
        contract_fee_fen=1_000_000,
        compute_source="domestic",
        purpose="training",
        now=now,
        **contract(cast.member, program_year_of(now)),
    )


def refused(db_snapshot, error, call):
    before = db_snapshot()
    with pytest.raises(error) as caught:
        call()
    assert db_snapshot() == before, "a refusal wrote something"
    return caught.value


# --- Submission -------------------------------------------------------------------------------


def test_a_compute_source_the_center_does_not_offer_is_refused(cast, year, db_snapshot):
    facilities_set(cast.provider, ("domestic", dt.date(2024, 1, 1), None))

    error = refused(db_snapshot, ComputeSourceNotOffered, lambda: submit(cast, compute_source="other"))

    assert (error.code, error.http_status) == ("compute_source_not_offered", 409)
    assert submit(cast, compute_source="domestic").status == Application.Status.SUBMITTED


def test_a_compute_source_offered_only_outside_its_window_is_refused(cast, year, db_snapshot):
    facilities_set(
        cast.provider,
        ("domestic", dt.date(2024, 1, 1), None),
        ("other", dt.date(2024, 1, 1), IN_YEAR_DAY - dt.timedelta(days=1)),  # Ended yesterday.
        ("other", IN_YEAR_DAY + dt.timedelta(days=1), None),  # Starts tomorrow.
    )
    refused(db_snapshot, ComputeSourceNotOffered, lambda: submit(cast, compute_source="other"))


@pytest.mark.parametrize(
    "window",
    [
        (IN_YEAR_DAY + dt.timedelta(days=1), None),
        (dt.date(2024, 1, 1), IN_YEAR_DAY - dt.timedelta(days=1)),
    ],
    ids=["not yet listed", "listing ended"],
)
def test_a_center_outside_its_listing_window_takes_no_application(cast, year, db_snapshot, window):
    facilities_set(cast.provider, ("domestic", *window), ("other", *window))
    error = refused(db_snapshot, ProviderNotListed, lambda: submit(cast))
    assert error.code == "provider_not_listed"


def test_the_day_of_submission_is_the_day_in_beijing(cast, year, db_snapshot):
    # 16:30 UTC on 30 June is already 1 July in Hangzhou: a window that ended on 30 June is over,
    # one that starts on 1 July has begun.
    late_evening_utc = dt.datetime(IN_YEAR.year, 6, 30, 16, 30, tzinfo=dt.UTC)
    june_30 = dt.date(IN_YEAR.year, 6, 30)
    facilities_set(cast.provider, ("domestic", dt.date(2024, 1, 1), june_30))
    refused(db_snapshot, ProviderNotListed, lambda: submit_at(cast, late_evening_utc))

    facilities_set(cast.provider, ("domestic", june_30 + dt.timedelta(days=1), None))
    assert submit_at(cast, late_evening_utc).status == Application.Status.SUBMITTED


# --- Confirmation and approval ------------------------------------------------------------------


def test_a_center_whose_listing_ended_confirms_nothing(cast, year, db_snapshot):
    application = submit(cast)
    today = listing_day()
    facilities_set(cast.provider, ("domestic", dt.date(2024, 1, 1), today - dt.timedelta(days=1)))

    refused(db_snapshot, ProviderNotListed, lambda: application_confirm(application=application, actor=cast.clerk))


def test_no_grant_is_issued_at_a_center_whose_listing_ended(cast, year, db_snapshot):
    application = to_reviewed(cast, submit(cast))
    facilities_set(cast.provider, ("domestic", dt.date(2024, 1, 1), listing_day() - dt.timedelta(days=1)))

    refused(db_snapshot, ProviderNotListed, lambda: application_approve(application=application, actor=cast.approver))


# --- Redemption ---------------------------------------------------------------------------------


def redeem(cast, grant, now):
    return redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=100_000, actor=cast.clerk, now=now, **invoice(cast.clerk)
    )


def test_a_redemption_outside_the_centers_listing_window_is_refused(cast, year, grant_of, db_snapshot):
    grant = grant_of()
    facilities_set(cast.provider, ("domestic", dt.date(2024, 1, 1), IN_YEAR_DAY))

    error = refused(db_snapshot, ProviderNotListed, lambda: redeem(cast, grant, IN_YEAR + dt.timedelta(days=1)))

    assert error.code == "provider_not_listed"
    # The last day of the window is still inside it.
    assert redeem(cast, grant, IN_YEAR).status == "pending"


def test_a_redemption_needs_the_center_listed_not_the_grants_compute_source(cast, year, grant_of):
    # The grant's contract was for domestic compute; the center now offers only other compute,
    # but it is still listed, so coupons already granted may still be spent there.
    grant = grant_of()
    facilities_set(cast.provider, ("other", dt.date(2024, 1, 1), None))
    assert redeem(cast, grant, IN_YEAR).status == "pending"
