"""Factories for people and organisations. Money never comes from a factory: only from services."""

import itertools

import factory
from django.contrib.auth.models import Group

from accounts.models import Enterprise, Provider, Role, User
from accounts.uscc import ALPHABET, check_character

_serial = itertools.count(1)


def valid_uscc() -> str:
    """A fresh credit code with a correct check character."""
    n = next(_serial)
    body = "91330100"
    digits = ""
    for _ in range(9):
        digits = ALPHABET[n % len(ALPHABET)] + digits
        n //= len(ALPHABET)
    seventeen = body + digits
    return seventeen + check_character(seventeen)


class EnterpriseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Enterprise

    name = factory.Sequence(lambda n: f"Enterprise {n}")
    uscc = factory.LazyFunction(valid_uscc)
    status = Enterprise.Status.VERIFIED


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider

    name = factory.Sequence(lambda n: f"Computing center {n}")
    uscc = factory.LazyFunction(valid_uscc)
    listing = Provider.Listing.PLANNING_LAYOUT


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
