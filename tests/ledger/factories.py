"""Factories for ledger rows. Transfers are never built here: they go through the services."""

import factory

from ledger.models import Account


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    code = factory.Sequence(lambda n: f"test:{n}")
