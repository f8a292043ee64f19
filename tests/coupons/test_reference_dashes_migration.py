"""Migration 0022 folds the dashes of contract and bill numbers stored before dashes were folded,
and stops, changing nothing, where folding shows one contract (or one bill) taken twice."""

from importlib import import_module

import pytest
from django.apps import apps
from django.db import transaction

from coupons.models import Application, Redemption
from coupons.services.redemptions import redemption_create
from tests.coupons.conftest import IN_YEAR, grant_for, submit
from tests.evidence import invoice

pytestmark = pytest.mark.django_db

migration = import_module("coupons.migrations.0022_reference_numbers_fold_dashes")


def stored_as(model, pk: int, **values) -> None:
    """A row as the code before the folding stored it (it kept the dash it was sent)."""
    model.objects.filter(pk=pk).update(**values)


def test_numbers_with_look_alike_dashes_are_folded(cast, year):
    # given: a contract and a bill stored with an en dash and a hyphen (U+2010)
    grant = grant_for(cast)
    redemption = redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )
    stored_as(Application, grant.application_id, contract_number="HZ\u2013C\u20139")
    stored_as(Redemption, redemption.pk, bill_number="B\u20101")

    # when
    migration.fold(apps, None)

    # then: folded; and run again, nothing changes
    assert Application.objects.get(pk=grant.application_id).contract_number == "HZ-C-9"
    assert Redemption.objects.get(pk=redemption.pk).bill_number == "B-1"
    migration.fold(apps, None)
    assert Application.objects.get(pk=grant.application_id).contract_number == "HZ-C-9"


def test_a_contract_taken_twice_under_two_dashes_stops_the_migration_naming_both(cast, year):
    # given: two live applications for one contract, one written with a minus sign (U+2212)
    first = submit(cast, number="HZ-C-7")
    second = submit(cast, number="OTHER")
    stored_as(Application, second.pk, contract_number="HZ\u2212C\u22127")

    # when
    with pytest.raises(RuntimeError) as stopped, transaction.atomic():
        migration.fold(apps, None)

    # then
    assert f"applications {first.pk} and {second.pk}" in str(stopped.value)
    assert Application.objects.get(pk=second.pk).contract_number == "HZ\u2212C\u22127"


def test_a_withdrawn_twin_does_not_stop_it(cast, year):
    # given: the second application for the contract was withdrawn: it holds nothing
    submit(cast, number="HZ-C-8")
    second = submit(cast, number="OTHER")
    stored_as(Application, second.pk, contract_number="HZ\u2011C\u20118", status=Application.Status.WITHDRAWN)

    # when
    migration.fold(apps, None)

    # then: folded, beside the live one (the constraint counts live applications only)
    assert Application.objects.get(pk=second.pk).contract_number == "HZ-C-8"


def test_a_bill_taken_twice_under_two_dashes_stops_the_migration(cast, year):
    grant = grant_for(cast)
    bills = [
        redemption_create(
            grant=grant,
            bill_number=number,
            bill_amount_fen=10_000,
            actor=cast.clerk,
            now=IN_YEAR,
            **invoice(cast.clerk),
        )
        for number in ("B-5", "B-6")
    ]
    stored_as(Redemption, bills[1].pk, bill_number="B\u20145")

    with pytest.raises(RuntimeError) as stopped, transaction.atomic():
        migration.fold(apps, None)

    assert f"redemptions {bills[0].pk} and {bills[1].pk}" in str(stopped.value)
    assert Redemption.objects.get(pk=bills[1].pk).bill_number == "B\u20145"
