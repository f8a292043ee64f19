"""Bills need an invoice, and each invoice is used once in the whole service: what `redemption_create`
requires and records, the invoice register across grants, providers and years, its release on a void
or an expiry (never on a reversal), and the race for one invoice on two contracts."""

import datetime as dt

import pytest

from config.errors import ValidationFailed
from coupons.errors import DuplicateBill, DuplicateInvoice
from coupons.invoices import InvalidInvoiceNumber
from coupons.models import Grant, Invoice, Redemption
from coupons.services.applications import application_approve, application_submit
from coupons.services.redemptions import (
    redemption_capture,
    redemption_create,
    redemption_void,
    redemptions_expire_holds,
)
from coupons.services.years import program_year_create, program_year_open, year_end
from evidence.models import Citation
from evidence.selectors import documents_visible_to
from tests.concurrency import race
from tests.controls import redemption_reverse
from tests.coupons.conftest import CAP_FEN, IN_YEAR, POOL_FEN, YEAR, Cast, grant_for, make_cast, open_year, to_reviewed
from tests.evidence import contract, document, invoice, invoice_number
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db


FEE_FEN = 200_000  # A grant of 60,000 fen: several fit under the enterprise's cap.


def redeem(cast, grant, bill="B1", bill_amount_fen=10_000, **extra):
    actor = extra.pop("actor", cast.clerk)
    extra = {**invoice(actor), **extra}
    return redemption_create(
        grant=grant,
        bill_number=bill,
        bill_amount_fen=bill_amount_fen,
        actor=actor,
        now=extra.pop("now", IN_YEAR),
        **extra,
    )


def refused(db_snapshot, error, call):
    before = db_snapshot()
    with pytest.raises(error) as caught:
        call()
    assert db_snapshot() == before
    return caught.value


def elsewhere(cast: Cast) -> Cast:
    """The same staff, with another enterprise and another computing center."""
    other = make_cast()
    return Cast(
        **{
            **cast.__dict__,
            "enterprise": other.enterprise,
            "member": other.member,
            "provider": other.provider,
            "clerk": other.clerk,
        }
    )


# --- What a redemption records -----------------------------------------------------------------------


def test_the_invoice_is_recorded_registered_and_cited_for_the_enterprise(cast, year):
    grant = grant_for(cast, fee_fen=FEE_FEN)
    document_ = document(cast.clerk, "invoice")

    made = redeem(
        cast,
        grant,
        invoice_number="２６３３ 2000 0000 0000 0001",
        invoice_document=document_.pk,
        invoice_amount_fen=120_000,
    )

    made.refresh_from_db()
    assert (made.invoice_number, made.invoice_document_id, made.invoice_amount_fen) == (
        "26332000000000000001",
        document_.pk,
        120_000,
    )
    use = Invoice.objects.get()
    assert (use.number, use.document_id, use.amount_fen, use.enterprise_id, use.redemption_id, use.released_at) == (
        "26332000000000000001",
        document_.pk,
        120_000,
        cast.enterprise.pk,
        made.pk,
        None,
    )
    citation = Citation.objects.get(subject=f"redemption:{made.pk}")
    assert (citation.role, citation.principal, sorted(citation.parties)) == (
        "invoice",
        f"enterprise:{cast.enterprise.pk}",
        sorted([f"enterprise:{cast.enterprise.pk}", f"provider:{cast.provider.pk}"]),
    )
    # The enterprise reads the invoice billed in its name; another enterprise does not.
    assert documents_visible_to(cast.member).filter(pk=document_.pk).exists()
    assert not documents_visible_to(UserFactory(enterprise=EnterpriseFactory())).filter(pk=document_.pk).exists()


def test_the_invoice_amount_defaults_to_the_bill(cast, year):
    made = redeem(cast, grant_for(cast, fee_fen=FEE_FEN), bill_amount_fen=50_000)
    assert made.invoice_amount_fen == 50_000 == Invoice.objects.get().amount_fen


# --- Refused before anything is written ----------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "2633200000000000000",  # 19 digits
        "263320000000000000011",  # 21 digits
        "0330021006-1234567",  # a number of 7 digits
        "03300210061-12345678",  # a code of 11 digits
        "033002100611_12345678",  # an unknown separator
        "INV-2026-0001",
        "٢٦٣٣٢٠٠٠٠٠٠٠٠٠٠٠٠٠٠١",  # Arabic-Indic digits
        "",
        "   ",
        12345678901234567890,
    ],
)
def test_a_number_that_is_not_a_chinese_invoice_number_is_400(number, cast, year, db_snapshot):
    grant = grant_for(cast, fee_fen=FEE_FEN)
    error = refused(db_snapshot, InvalidInvoiceNumber, lambda: redeem(cast, grant, invoice_number=number))
    assert error.code == "invalid_invoice_number" and error.http_status == 400


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("26332000000000000002", "26332000000000000002"),
        (" 2633 2000 0000 0000 0002 ", "26332000000000000002"),
        ("033002100611-12345678", "033002100611-12345678"),
        ("033002100611 / 12345678", "033002100611-12345678"),
        ("033002100611:12345678", "033002100611-12345678"),
        ("3300211111-12345678", "3300211111-12345678"),
        ("330021111112345678", "3300211111-12345678"),  # 10 + 8 digits written together
        ("03300210061112345678", "033002100611-12345678"),  # 12 + 8 written together (a code starts 0 or 1)
        ("０３３００２１００６１１－12345678", "033002100611-12345678"),  # full-width
    ],
)
def test_each_form_of_an_invoice_number_is_accepted_in_its_one_written_form(written, normalised, cast, year):
    assert redeem(cast, grant_for(cast, fee_fen=FEE_FEN), invoice_number=written).invoice_number == normalised


def test_two_spellings_of_one_invoice_are_one_invoice(cast, year, db_snapshot):
    grant = grant_for(cast, fee_fen=FEE_FEN)
    redeem(cast, grant, "B1", invoice_number="033002100611-12345678")
    refused(
        db_snapshot,
        DuplicateInvoice,
        lambda: redeem(cast, grant, "B2", invoice_number="０３３００２１００６１１ / 12345678"),
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # Found from outside: a 12-digit code run into its number was taken for a digital number.
        ("033002100611-12345678", "03300210061112345678"),
        # A digital number split like a code and a number is still that digital invoice.
        ("26332000000000000002", "263320000000-00000002"),
    ],
)
def test_no_way_of_writing_a_number_makes_one_invoice_two(first, second, cast, year, db_snapshot):
    redeem(cast, grant_for(cast, fee_fen=FEE_FEN), "B1", invoice_number=first)
    other = elsewhere(cast)
    other_grant = grant_for(other, fee_fen=FEE_FEN)
    refused(db_snapshot, DuplicateInvoice, lambda: redeem(other, other_grant, invoice_number=second))


def test_one_invoice_file_stands_behind_one_invoice_number(cast, year, db_snapshot):
    """Found from outside: one uploaded PDF cited for five different numbers, all paid."""
    grant = grant_for(cast, fee_fen=FEE_FEN)
    file = document(cast.clerk, "invoice")
    held = redeem(cast, grant, "B1", invoice_number=invoice_number(), invoice_document=file)
    error = refused(
        db_snapshot,
        DuplicateInvoice,
        lambda: redeem(cast, grant, "B2", invoice_number=invoice_number(), invoice_document=file),
    )
    assert "invoice_document" in error.detail or error.extra.get("field") == "invoice_document"
    # A released use frees the file with its number.
    redemption_void(redemption=held, actor=cast.clerk)
    assert redeem(cast, grant, "B3", invoice_number=invoice_number(), invoice_document=file).invoice_document == file


def test_the_refusal_names_the_other_number_only_to_the_organisation_that_used_it(cast, year, db_snapshot):
    """Found from outside: uploading another organisation's bytes told which number they stood behind."""
    grant = grant_for(cast, fee_fen=FEE_FEN)
    pdf = b"%PDF-1.4\n% one invoice, uploaded by two centers\n%%EOF\n"
    first_number = invoice_number()
    redeem(cast, grant, "B1", invoice_number=first_number, invoice_document=document(cast.clerk, "invoice", data=pdf))
    other = make_cast()
    with_year_of_cast = grant_for(other, fee_fen=100_000)
    theirs = document(other.clerk, "invoice", data=pdf)  # The same bytes, another center's document.

    error = refused(
        db_snapshot,
        DuplicateInvoice,
        lambda: redeem(other, with_year_of_cast, "X1", invoice_number=invoice_number(), invoice_document=theirs),
    )
    assert first_number not in error.detail and "another invoice number" in error.detail
    mine = refused(
        db_snapshot,
        DuplicateInvoice,
        lambda: redeem(
            cast,
            grant,
            "B2",
            invoice_number=invoice_number(),
            invoice_document=document(cast.clerk, "invoice", data=pdf),
        ),
    )
    assert first_number in mine.detail


@pytest.mark.parametrize("missing", ["invoice_number", "invoice_document"])
def test_a_bill_without_its_invoice_is_400(missing, cast, year, db_snapshot):
    grant = grant_for(cast, fee_fen=FEE_FEN)
    evidence = {**invoice(cast.clerk), missing: None}
    error = refused(db_snapshot, ValidationFailed, lambda: redeem(cast, grant, **evidence))
    assert missing in error.errors


def test_the_invoice_document_is_an_invoice_the_center_uploaded(cast, year, db_snapshot):
    grant = grant_for(cast, fee_fen=FEE_FEN)
    for value in (
        document(cast.clerk, "contract"),  # The wrong kind.
        document(cast.member, "invoice"),  # The enterprise's, not the center's.
        document(UserFactory(provider=ProviderFactory()), "invoice"),  # Another center's.
        10**9,
        "1",
    ):
        error = refused(db_snapshot, ValidationFailed, lambda value=value: redeem(cast, grant, invoice_document=value))
        assert "invoice_document" in error.errors


@pytest.mark.parametrize("amount", [99_999, 0, -1, "100000", 1.5, 10**13 + 1])
def test_an_invoice_that_does_not_cover_the_bill_is_400(amount, cast, year, db_snapshot):
    grant = grant_for(cast, fee_fen=FEE_FEN)
    error = refused(
        db_snapshot, ValidationFailed, lambda: redeem(cast, grant, bill_amount_fen=100_000, invoice_amount_fen=amount)
    )
    assert "invoice_amount_fen" in error.errors
    if amount == 99_999:
        assert "The invoice must cover the bill amount" in str(error.errors)


def test_the_invoice_number_is_checked_before_the_business_rules(cast, year, db_snapshot):
    grant = grant_for(cast, fee_fen=FEE_FEN)
    redeem(cast, grant, "B1")
    # The same bill again with a malformed invoice number: the 400 first, then the 409.
    refused(db_snapshot, InvalidInvoiceNumber, lambda: redeem(cast, grant, "B1", invoice_number="12"))
    refused(db_snapshot, DuplicateBill, lambda: redeem(cast, grant, "B1"))


# --- Used once, everywhere ------------------------------------------------------------------------------


def test_an_invoice_is_used_once_on_any_grant_of_any_provider(cast, year, db_snapshot):
    number = invoice_number()
    redeem(cast, grant_for(cast, fee_fen=FEE_FEN), invoice_number=number)
    same_provider = grant_for(cast, fee_fen=FEE_FEN)
    refused(db_snapshot, DuplicateInvoice, lambda: redeem(cast, same_provider, invoice_number=number))

    other = elsewhere(cast)
    other_grant = grant_for(other, fee_fen=FEE_FEN)
    error = refused(db_snapshot, DuplicateInvoice, lambda: redeem(other, other_grant, invoice_number=number))
    assert (error.code, error.http_status) == ("duplicate_invoice", 409)
    assert Invoice.objects.filter(number=number).count() == 1


def test_an_invoice_used_in_an_earlier_year_is_refused_in_this_one(cast, year, db_snapshot):
    program_year_create(year=YEAR - 1, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN)
    program_year_open(year=YEAR - 1, actor=cast.admin)
    last_year = year_end(YEAR - 2).replace(month=6)
    earlier = application_submit(
        actor=cast.member,
        provider=cast.provider,
        contract_number="C-LAST-YEAR",
        contract_fee_fen=1_000_000,
        compute_source="domestic",
        purpose="training",
        now=last_year,
        **contract(cast.member, YEAR - 1),
    )
    application_approve(application=to_reviewed(cast, earlier), actor=cast.approver)
    number = invoice_number()
    redeem(cast, Grant.objects.get(application=earlier), invoice_number=number, now=last_year, capture=True)

    this_year = grant_for(cast, fee_fen=FEE_FEN)
    refused(db_snapshot, DuplicateInvoice, lambda: redeem(cast, this_year, invoice_number=number))


def test_a_voided_holds_invoice_is_free_again(cast, year):
    grant = grant_for(cast, fee_fen=FEE_FEN)
    number = invoice_number()
    hold = redeem(cast, grant, "B1", invoice_number=number)
    redemption_void(redemption=hold, actor=cast.clerk, now=IN_YEAR)

    again = redeem(cast, grant_for(cast, fee_fen=FEE_FEN), "B2", invoice_number=number)

    assert again.status == "pending"
    uses = Invoice.objects.filter(number=number).order_by("pk")
    assert [(u.redemption_id, u.released_at is None) for u in uses] == [(hold.pk, False), (again.pk, True)]


def test_an_expired_holds_invoice_is_free_again_by_the_job_or_on_the_same_grant(cast, year):
    grant = grant_for(cast, fee_fen=FEE_FEN)
    first, second = invoice_number(), invoice_number()
    hold = redeem(cast, grant, "B1", invoice_number=first)
    assert hold.expires_at is not None
    later = hold.expires_at + dt.timedelta(seconds=1)
    assert redemptions_expire_holds(now=later) == 1
    assert redeem(cast, grant_for(cast, fee_fen=FEE_FEN), "B2", invoice_number=first, now=later).status == "pending"
    # On the grant it was held on, a stale hold is released by the next redemption, invoice and all.
    stale = redeem(cast, grant, "B3", invoice_number=second, now=later)
    after = stale.expires_at + dt.timedelta(seconds=1)
    assert redeem(cast, grant, "B4", invoice_number=second, now=after).status == "pending"
    stale.refresh_from_db()
    assert stale.status == "expired"


def test_a_captured_then_reversed_bills_invoice_stays_used(cast, year, db_snapshot):
    grant = grant_for(cast, fee_fen=FEE_FEN)
    number = invoice_number()
    made = redemption_capture(redemption=redeem(cast, grant, invoice_number=number), actor=cast.clerk, now=IN_YEAR)
    redemption_reverse(redemption=made, actor=cast.approver, reason="billed in error")
    assert Redemption.objects.get(pk=made.pk).status == "reversed"

    another = grant_for(cast, fee_fen=FEE_FEN)
    refused(
        db_snapshot,
        DuplicateInvoice,
        lambda: redeem(cast, another, "B2", invoice_number=number),
    )
    assert Invoice.objects.get(number=number).released_at is None


@pytest.mark.parametrize("split", [False, True], ids=["as written", "split like a code"])
def test_the_database_keeps_one_live_use_of_a_number(split, cast, year):
    from django.db import IntegrityError, transaction

    made = redeem(cast, grant_for(cast, fee_fen=FEE_FEN))
    number = f"{made.invoice_number[:12]}-{made.invoice_number[12:]}" if split else made.invoice_number
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(
            number=number,
            document=made.invoice_document,
            amount_fen=1,
            enterprise=cast.enterprise,
            redemption=made,
        )


# --- The race -------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("providers", [1, 2], ids=["one center", "two centers"])
def test_one_invoice_racing_on_two_contracts_is_used_once(providers):
    # given: two grants (two contracts; one or two centers), each center with its own invoice file
    cast = make_cast()
    open_year(cast.admin)
    first = grant_for(cast, fee_fen=FEE_FEN)
    second_cast = elsewhere(cast) if providers == 2 else cast
    second = grant_for(second_cast, fee_fen=FEE_FEN)
    number = invoice_number()
    bodies = [
        (cast, first, document(cast.clerk, "invoice")),
        (second_cast, second, document(second_cast.clerk, "invoice")),
    ]

    # when: both redeem the same invoice number at once, each capturing at once
    results = race(
        [
            lambda c=c, g=g, d=d: redemption_create(
                grant=g,
                bill_number="B1",
                bill_amount_fen=100_000,
                actor=c.clerk,
                capture=True,
                now=IN_YEAR,
                invoice_number=number,
                invoice_document=d,
            )
            for c, g, d in bodies
        ]
    )

    # then: exactly one was made; the other was told the invoice is used; one live use
    made = [r for r in results if isinstance(r, Redemption)]
    refusals = [r for r in results if not isinstance(r, Redemption)]
    assert len(made) == 1 and len(refusals) == 1, results
    assert isinstance(refusals[0], DuplicateInvoice), refusals
    assert Redemption.objects.count() == 1
    assert list(Invoice.objects.filter(released_at__isnull=True).values_list("number", "redemption_id")) == [
        (number, made[0].pk)
    ]
    assert Citation.objects.filter(subject__startswith="redemption:").count() == 1
