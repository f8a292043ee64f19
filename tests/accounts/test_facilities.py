"""A computing center's facilities (what it offers, and the days it is listed for it), the rule of
who takes part on a day, the maker-checker change of a listed center, and its insert-only history.
Every refusal also shows that nothing was written."""

import datetime as dt
import importlib

import pytest
from django.apps import apps
from django.db import DatabaseError, IntegrityError, connection, transaction

from accounts.models import Facility, Provider, ProviderChange, Role, User, listing_day
from accounts.services import FACILITIES_COUNT_MAX, provider_change_apply, provider_create
from config.errors import InvalidState, PermissionDenied, ValidationFailed
from tests.factories import ProviderFactory, UserFactory, valid_uscc

pytestmark = pytest.mark.django_db

DOMESTIC = {"compute_source": "domestic", "description": "Ascend 910B cluster", "listed_from": "2024-01-01"}
OTHER = {
    "compute_source": "other",
    "description": "A800 GPU cloud",
    "listed_from": "2025-03-01",
    "listed_until": "2026-12-31",
}


def rows() -> dict[str, list[tuple]]:
    """Every provider, facility and history row, to prove a refusal wrote nothing."""
    return {
        "providers": list(Provider.objects.order_by("pk").values_list()),
        "facilities": list(Facility.objects.order_by("pk").values_list()),
        "changes": list(ProviderChange.objects.order_by("pk").values_list()),
    }


@pytest.fixture
def admin() -> User:
    return UserFactory(is_superuser=True, is_staff=True)


@pytest.fixture
def approver() -> User:
    return UserFactory(roles=[Role.APPROVER])


def facilities_of(provider: Provider) -> list[tuple]:
    return list(
        Facility.objects.filter(provider=provider)
        .order_by("listed_from", "compute_source")
        .values_list("compute_source", "description", "listed_from", "listed_until")
    )


# --- Listing a center with its facilities -----------------------------------------------------


def test_a_center_is_listed_with_its_facilities_and_the_listing_is_recorded(admin):
    provider = provider_create(
        name="Hangzhou AI Center",
        uscc=valid_uscc(),
        listing="planning_layout",
        facilities=[DOMESTIC, OTHER],
        actor=admin,
    )

    assert facilities_of(provider) == [
        ("domestic", "Ascend 910B cluster", dt.date(2024, 1, 1), None),
        ("other", "A800 GPU cloud", dt.date(2025, 3, 1), dt.date(2026, 12, 31)),
    ]
    change = ProviderChange.objects.get(provider=provider)
    assert (change.kind, change.requested_by, change.decided_by, change.before) == ("listed", admin, admin, None)
    assert change.after == {
        "status": "active",
        "listing": "planning_layout",
        "facilities": [
            {**DOMESTIC, "listed_until": None},
            OTHER,
        ],
    }


@pytest.mark.parametrize(
    ("facilities", "field"),
    [
        ([], "facilities"),
        (None, "facilities"),
        ("domestic", "facilities"),
        ([DOMESTIC] * (FACILITIES_COUNT_MAX + 1), "facilities"),
        (["domestic"], "facilities.0"),
        ([{**DOMESTIC, "price": 1}], "facilities.0"),
        ([{**DOMESTIC, "compute_source": "quantum"}], "facilities.0.compute_source"),
        ([DOMESTIC, {**DOMESTIC, "description": "  "}], "facilities.1.description"),
        ([{**DOMESTIC, "description": "x" * 501}], "facilities.0.description"),
        ([{**DOMESTIC, "listed_from": "2024-02-30"}], "facilities.0.listed_from"),
        ([{**DOMESTIC, "listed_from": None}], "facilities.0.listed_from"),
        ([{**DOMESTIC, "listed_from": 20240101}], "facilities.0.listed_from"),
        ([{**DOMESTIC, "listed_from": "1999-12-31"}], "facilities.0.listed_from"),
        ([{**DOMESTIC, "listed_until": "2023-12-31"}], "facilities.0.listed_until"),
        ([{**DOMESTIC, "listed_until": "soon"}], "facilities.0.listed_until"),
    ],
)
def test_bad_facilities_are_refused_and_nothing_is_written(admin, facilities, field):
    before = rows()
    with pytest.raises(ValidationFailed) as caught:
        provider_create(name="Center", uscc=valid_uscc(), listing="planning_layout", facilities=facilities, actor=admin)
    assert list(caught.value.errors) == [field]
    assert rows() == before


def test_a_window_of_one_day_is_allowed(admin):
    one_day = {**DOMESTIC, "listed_from": "2026-03-01", "listed_until": "2026-03-01"}
    provider = provider_create(
        name="Center", uscc=valid_uscc(), listing="planning_layout", facilities=[one_day], actor=admin
    )
    assert provider.takes_part_on(dt.date(2026, 3, 1))
    assert not provider.takes_part_on(dt.date(2026, 3, 2))


def test_the_database_refuses_a_window_that_ends_before_it_starts():
    provider = ProviderFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Facility.objects.create(
            provider=provider,
            compute_source="domestic",
            description="x",
            listed_from=dt.date(2026, 2, 1),
            listed_until=dt.date(2026, 1, 31),
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Facility.objects.create(
            provider=provider, compute_source="quantum", description="x", listed_from=dt.date(2026, 2, 1)
        )


# --- Who takes part on a day ------------------------------------------------------------------


def test_a_center_takes_part_on_the_days_a_facility_is_listed_both_ends_included():
    provider = ProviderFactory(
        facilities=[
            {"compute_source": "domestic", "listed_from": dt.date(2026, 1, 1), "listed_until": dt.date(2026, 3, 31)},
            {"compute_source": "other", "listed_from": dt.date(2026, 3, 1), "listed_until": None},
        ]
    )
    assert not provider.takes_part_on(dt.date(2025, 12, 31))
    assert provider.takes_part_on(dt.date(2026, 1, 1))
    assert provider.offers_on("domestic", dt.date(2026, 1, 1))
    assert not provider.offers_on("other", dt.date(2026, 1, 1))
    assert provider.offers_on("domestic", dt.date(2026, 3, 31)) and provider.offers_on("other", dt.date(2026, 3, 31))
    assert not provider.offers_on("domestic", dt.date(2026, 4, 1))
    assert provider.offers_on("other", dt.date(2030, 1, 1))


def test_a_suspended_center_takes_part_on_no_day():
    provider = ProviderFactory(status=Provider.Status.SUSPENDED)
    assert not provider.takes_part_on(dt.date(2026, 6, 1))
    assert not provider.offers_on("domestic", dt.date(2026, 6, 1))


def test_a_center_without_facilities_takes_part_on_no_day():
    provider = ProviderFactory(facilities=[])
    assert provider.takes_part and not provider.takes_part_on(dt.date(2026, 6, 1))


def test_the_listing_day_is_the_day_in_beijing():
    # 16:30 UTC on 30 June is 00:30 on 1 July in Asia/Shanghai.
    assert listing_day(dt.datetime(2026, 6, 30, 16, 30, tzinfo=dt.UTC)) == dt.date(2026, 7, 1)
    assert listing_day(dt.datetime(2026, 6, 30, 15, 59, tzinfo=dt.UTC)) == dt.date(2026, 6, 30)


# --- A change, asked for by a superuser and decided by an approver ---------------------------


def test_an_approved_suspension_is_applied_and_recorded(admin, approver):
    provider = ProviderFactory()

    provider_change_apply(
        provider_id=provider.pk,
        changes={"status": "suspended"},
        requested_by=admin,
        decided_by=approver,
        reason="Left the planning layout.",
    )

    provider.refresh_from_db()
    assert provider.status == "suspended"
    change = ProviderChange.objects.get(provider=provider)
    assert (change.kind, change.requested_by, change.decided_by, change.reason) == (
        "changed",
        admin,
        approver,
        "Left the planning layout.",
    )
    assert (change.before["status"], change.after["status"]) == ("active", "suspended")
    assert change.before["facilities"] == change.after["facilities"] != []


def test_an_approved_change_of_facilities_replaces_them_and_keeps_what_they_were(admin, approver):
    provider = ProviderFactory()
    old = facilities_of(provider)

    provider_change_apply(
        provider_id=provider.pk, changes={"facilities": [DOMESTIC]}, requested_by=admin, decided_by=approver
    )

    assert facilities_of(provider) == [("domestic", "Ascend 910B cluster", dt.date(2024, 1, 1), None)]
    change = ProviderChange.objects.get(provider=provider)
    assert [(f["compute_source"], f["listed_from"]) for f in change.before["facilities"]] == [
        (source, listed_from.isoformat()) for source, _, listed_from, _ in old
    ]
    assert change.after["facilities"] == [{**DOMESTIC, "listed_until": None}]
    assert not provider.offers_on("other", dt.date(2026, 6, 1))


def test_another_superuser_may_decide(admin):
    provider = ProviderFactory()
    second = UserFactory(is_superuser=True, is_staff=True)
    provider_change_apply(
        provider_id=provider.pk, changes={"status": "suspended"}, requested_by=admin, decided_by=second
    )
    provider.refresh_from_db()
    assert provider.status == "suspended"


def test_the_requester_may_not_decide_their_own_change(admin):
    provider = ProviderFactory()
    before = rows()
    with pytest.raises(PermissionDenied) as caught:
        provider_change_apply(
            provider_id=provider.pk, changes={"status": "suspended"}, requested_by=admin, decided_by=admin
        )
    assert (caught.value.code, caught.value.http_status) == ("four_eyes", 403)
    assert rows() == before


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.FINANCE, Role.AUDITOR])
def test_only_an_approver_decides_a_change(admin, role):
    provider = ProviderFactory()
    before = rows()
    with pytest.raises(PermissionDenied) as caught:
        provider_change_apply(
            provider_id=provider.pk,
            changes={"status": "suspended"},
            requested_by=admin,
            decided_by=UserFactory(roles=[role]),
        )
    assert caught.value.code == "permission_denied"
    assert rows() == before


def test_only_a_superuser_asks_for_a_change(approver):
    provider = ProviderFactory()
    before = rows()
    with pytest.raises(PermissionDenied):
        provider_change_apply(
            provider_id=provider.pk,
            changes={"status": "suspended"},
            requested_by=UserFactory(roles=[Role.APPROVER]),
            decided_by=approver,
        )
    assert rows() == before


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({}, ValidationFailed),
        ({"listing": "matched_partner"}, ValidationFailed),
        ({"status": "closed"}, ValidationFailed),
        ({"facilities": []}, ValidationFailed),
        ({"facilities": [{**DOMESTIC, "listed_until": "2023-01-01"}]}, ValidationFailed),
        ({"status": "active"}, InvalidState),
    ],
)
def test_a_bad_or_empty_change_is_refused_and_nothing_is_written(admin, approver, changes, error):
    provider = ProviderFactory()
    before = rows()
    with pytest.raises(error):
        provider_change_apply(provider_id=provider.pk, changes=changes, requested_by=admin, decided_by=approver)
    assert rows() == before


# --- The history is insert-only ---------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    ["UPDATE accounts_providerchange SET reason = 'forged'", "DELETE FROM accounts_providerchange"],
)
def test_the_history_refuses_update_and_delete(admin, approver, statement):
    provider = ProviderFactory()
    provider_change_apply(
        provider_id=provider.pk, changes={"status": "suspended"}, requested_by=admin, decided_by=approver
    )
    before = rows()
    with (
        pytest.raises(DatabaseError, match="Cannot update or delete"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert rows() == before


def test_the_database_holds_the_two_people_of_a_change_apart(admin):
    provider = ProviderFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        ProviderChange.objects.create(provider=provider, kind="changed", requested_by=admin, decided_by=admin, after={})
    with pytest.raises(IntegrityError), transaction.atomic():
        ProviderChange.objects.create(provider=provider, kind="changed", requested_by=admin, after={})


# --- The migration of existing providers ------------------------------------------------------


def test_the_migration_gives_an_existing_provider_both_sources_from_its_creation_day():
    migration = importlib.import_module("accounts.migrations.0008_provider_facilities_from_creation")
    provider = Provider.objects.create(name="Old center", uscc=valid_uscc(), listing="planning_layout")
    listed = ProviderFactory()  # Has facilities already: left alone.
    listed_rows = facilities_of(listed)

    migration._facilities_add(apps, None)
    migration._facilities_add(apps, None)  # Twice changes nothing more.

    created_on = listing_day(provider.created_at)
    assert [(source, listed_from, until) for source, _, listed_from, until in facilities_of(provider)] == [
        ("domestic", created_on, None),
        ("other", created_on, None),
    ]
    assert facilities_of(listed) == listed_rows
    change = ProviderChange.objects.get(provider=provider)
    assert (change.kind, change.requested_by, change.decided_by) == ("migrated", None, None)
    assert change.before["facilities"] == [] and len(change.after["facilities"]) == 2
    assert provider.takes_part_on(listing_day())
