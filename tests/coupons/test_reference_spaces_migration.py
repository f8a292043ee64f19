"""Migration 0023 drops the white space inside contract and bill numbers stored before it was dropped,
and stops, changing nothing, where that shows one contract (or one bill) taken twice."""

from importlib import import_module

import pytest
from django.apps import apps
from django.db import transaction

from coupons.models import Application, Redemption
from coupons.services.redemptions import redemption_create
from tests.coupons.conftest import IN_YEAR, grant_for, submit
from tests.evidence import invoice

pytestmark = pytest.mark.django_db

migration = import_module("coupons.migrations.0023_reference_numbers_fold_spaces")


def test_numbers_with_spaces_inside_are_folded_once(cast, year):
    grant = grant_for(cast)
    redemption = redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )
    Application.objects.filter(pk=grant.application_id).update(contract_number="HZ- C 9")
    Redemption.objects.filter(pk=redemption.pk).update(bill_number="B\u00a0-1")

    migration.fold(apps, None)

    assert Application.objects.get(pk=grant.application_id).contract_number == "HZ-C9"
    assert Redemption.objects.get(pk=redemption.pk).bill_number == "B-1"
    migration.fold(apps, None)
    assert Application.objects.get(pk=grant.application_id).contract_number == "HZ-C9"


def test_a_contract_taken_twice_with_a_space_stops_the_migration_naming_both(cast, year):
    first = submit(cast, number="HZ-C-7")
    second = submit(cast, number="OTHER")
    Application.objects.filter(pk=second.pk).update(contract_number="HZ- C-7")

    with pytest.raises(RuntimeError) as stopped, transaction.atomic():
        migration.fold(apps, None)

    assert f"applications {first.pk} and {second.pk}" in str(stopped.value)
    assert Application.objects.get(pk=second.pk).contract_number == "HZ- C-7"


def test_a_withdrawn_twin_does_not_stop_it(cast, year):
    first = submit(cast, number="HZ-C-8")
    Application.objects.filter(pk=first.pk).update(status="withdrawn")
    second = submit(cast, number="OTHER-2")
    Application.objects.filter(pk=second.pk).update(contract_number="HZ -C-8")

    migration.fold(apps, None)

    assert Application.objects.get(pk=second.pk).contract_number == "HZ-C-8"
