"""Found from outside: the fast path (`coupons/services/redemptions_fast.py`) locked the grant and the
invoice file a request names before it checked they were the caller's. A computing center could so
hold another center's grant row and invoice-file locks for as long as its batch ran, and by naming
the other's invoice document first and its grant last, deadlock the other center's redemption
(PostgreSQL aborts one of the two: a 500 for a caller who did nothing wrong). The careful path looks
the grant up in the caller's scope and checks the document before it locks either; so must the fast
path."""

import psycopg
import pytest
from django.db import connection, transaction

from config.errors import NotFound, ValidationFailed
from coupons.services.redemptions import redemption_create
from tests.coupons.conftest import grant_for
from tests.evidence import document, invoice, invoice_number
from tests.factories import ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def other_connection() -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"],
        port=settings["PORT"] or None,
        autocommit=True,
    )


def grant_row_is_free(grant_id: int) -> bool:
    with other_connection() as other:
        try:
            other.execute("SELECT id FROM coupons_grant WHERE id = %s FOR UPDATE NOWAIT", [grant_id])
        except psycopg.errors.LockNotAvailable:
            return False
        return True


def invoice_file_is_free(sha256: str) -> bool:
    with other_connection() as other:
        row = other.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [f"invoice-file:{sha256}"]
        ).fetchone()
        assert row is not None
        return bool(row[0])


def test_naming_another_centers_grant_does_not_lock_it(cast, year):
    # given: a grant of the cast's center, and a member of another center
    theirs = grant_for(cast)
    stranger = UserFactory(provider=ProviderFactory())

    # when: the stranger names it, inside a transaction that stays open (as a batch's does)
    with transaction.atomic():
        with pytest.raises(NotFound):
            redemption_create(
                grant=theirs.pk, bill_number="B-1", bill_amount_fen=10_000, actor=stranger, **invoice(stranger)
            )

        # then: the other center's grant is not locked by the stranger
        assert grant_row_is_free(theirs.pk)


def test_naming_another_centers_invoice_document_does_not_lock_its_file(cast, year):
    # given: an invoice the cast's center uploaded, and another center with a grant of its own
    their_invoice = document(cast.clerk, "invoice")
    stranger_provider = ProviderFactory()
    stranger = UserFactory(provider=stranger_provider)
    own = grant_for(cast)
    own.provider = stranger_provider  # The stranger's own grant: same contract terms, its center.
    own.save(update_fields=["provider"])

    # when
    with transaction.atomic():
        with pytest.raises(ValidationFailed):
            redemption_create(
                grant=own.pk,
                bill_number="B-1",
                bill_amount_fen=10_000,
                actor=stranger,
                invoice_number=invoice_number(),
                invoice_document=their_invoice.pk,
            )

        # then: the file behind the other center's invoice is not locked by the stranger
        assert invoice_file_is_free(their_invoice.file_id)
