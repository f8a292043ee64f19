"""Factories for people and organisations. Money never comes from a factory: only from services."""

import datetime as dt
import itertools
from typing import Any

import factory
from django.contrib.auth.models import Group

from accounts.models import ComputeSource, Enterprise, Facility, Provider, Role, User
from accounts.uscc import ALPHABET, check_character

_serial = itertools.count(1)
FACILITY_LISTED_FROM = dt.date(2000, 1, 1)


# Hangzhou's city districts (GB/T 2260 330100): inside the program's default region, 3301.
HANGZHOU_DIVISION = "330100"


def valid_uscc(division: str = HANGZHOU_DIVISION) -> str:
    """A fresh credit code with a correct check character, registered in `division` (characters 3-8)."""
    assert len(division) == 6 and division.isdigit(), division
    n = next(_serial)
    body = "91" + division
    digits = ""
    for _ in range(9):
        digits = ALPHABET[n % len(ALPHABET)] + digits
        n //= len(ALPHABET)
    seventeen = body + digits
    return seventeen + check_character(seventeen)


class EnterpriseFactory(factory.django.DjangoModelFactory):
    """A verified enterprise registered in Hangzhou; `uscc=valid_uscc("110105")` puts one elsewhere.
    Its flags are neither declared nor confirmed unless a test sets them."""

    class Meta:
        model = Enterprise

    name = factory.Sequence(lambda n: f"Enterprise {n}")
    uscc = factory.LazyFunction(valid_uscc)
    status = Enterprise.Status.VERIFIED


def _facilities_add(provider: Provider, create: bool, extracted: list[dict[str, Any]] | None, **kwargs: object) -> None:
    """Both compute sources, listed since long before any test's dates (as the migration gives the
    providers that existed before facilities), unless the test passes `facilities=[...]`."""
    if not create:
        return
    rows = extracted
    if rows is None:
        rows = [{"compute_source": source, "listed_from": FACILITY_LISTED_FROM} for source in ComputeSource.values]
    for row in rows:
        Facility.objects.create(
            provider=provider,
            compute_source=row["compute_source"],
            description=row.get("description", f"{row['compute_source']} compute"),
            listed_from=row["listed_from"],
            listed_until=row.get("listed_until"),
        )


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Computing center {n}")
    uscc = factory.LazyFunction(valid_uscc)
    listing = Provider.Listing.PLANNING_LAYOUT

    facilities = factory.PostGeneration(_facilities_add)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @factory.post_generation
    def roles(self, create: bool, extracted: list[Role] | None, **kwargs: object) -> None:
        for role in extracted or []:
            group, _ = Group.objects.get_or_create(name=role)
            self.groups.add(group)
        if create:
            self.save()
