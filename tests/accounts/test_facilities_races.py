"""Provider changes raced on real connections: the history they leave is one unbroken chain."""

import itertools

import pytest

from accounts.models import Facility, ProviderChange, Role
from accounts.services import provider_change_apply, provider_snapshot
from tests.concurrency import race
from tests.factories import ProviderFactory, UserFactory

RACERS = 8


@pytest.mark.django_db(transaction=True)
def test_racing_changes_of_one_provider_leave_a_history_in_which_each_before_is_the_last_after():
    # given: one provider and eight approved changes of its facilities, each its own
    provider = ProviderFactory()
    admin = UserFactory(is_superuser=True, is_staff=True)
    changes = [
        {
            "facilities": [
                {"compute_source": "domestic", "description": f"cluster {n}", "listed_from": "2024-01-01"},
            ]
        }
        for n in range(RACERS)
    ]
    deciders = [UserFactory(roles=[Role.APPROVER]) for _ in range(RACERS)]

    # when: all applied at once
    results = race(
        [
            lambda change=change, decider=decider: provider_change_apply(
                provider_id=provider.pk, changes=change, requested_by=admin, decided_by=decider
            )
            for change, decider in zip(changes, deciders, strict=True)
        ]
    )

    # then: each applied once, in some order, and each change saw the one before it
    assert not [result for result in results if isinstance(result, Exception)], results
    history = list(ProviderChange.objects.filter(provider=provider, kind="changed").order_by("pk"))
    assert len(history) == RACERS
    for earlier, later in itertools.pairwise(history):
        assert later.before == earlier.after
    assert history[-1].after == provider_snapshot(provider)
    assert Facility.objects.filter(provider=provider).count() == 1
