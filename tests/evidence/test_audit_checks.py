"""The audit's evidence checks: clean books pass them; each kind of tampering (a file changed or
removed on disk, a stray file, an invoice used twice behind the unique index's back, a settled bill
without its invoice or its confirmation) fails the check that guards it, naming what it found."""

import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from coupons.models import Invoice, Redemption, Settlement
from coupons.services.audit import CHECKS
from coupons.services.invoices import invoice_use
from coupons.services.redemptions import redemption_create
from coupons.services.settlements import settlement_create
from evidence.models import Document
from portal.words import AUDIT_CHECK_WORDS
from tests.coupons.conftest import IN_YEAR, Cast, grant_for, make_cast, open_year
from tests.evidence import document, invoice
from tests.evidence.conftest import files_on_disk

pytestmark = pytest.mark.django_db

EVIDENCE_CHECKS = ("stored_files_intact", "invoices_used_once", "settled_redemptions_have_evidence")
BILLS = 3


def run(name: str) -> tuple[list[dict[str, Any]], int]:
    return dict(CHECKS)[name]()


def _as_issue_11_records_it(redemption: Redemption, evidence: dict[str, Any], cast: Cast) -> None:
    """What the invoice register and the enterprise's confirmation record for a captured bill. The
    services that record them land with their own parts of issue 11; where they already recorded
    it, this finds it recorded and changes nothing."""
    if not Invoice.objects.filter(redemption=redemption).exists():
        Redemption.objects.filter(pk=redemption.pk).update(
            invoice_number=evidence["invoice_number"], invoice_document=evidence["invoice_document"]
        )
        invoice_use(
            number=evidence["invoice_number"],
            document=evidence["invoice_document"],
            amount_fen=redemption.bill_amount_fen,
            enterprise_id=redemption.grant.enterprise_id,
            redemption=redemption,
        )
    Redemption.objects.filter(pk=redemption.pk, acknowledgement="awaiting").update(
        acknowledgement="confirmed", acknowledged_by=cast.member, acknowledged_at=timezone.now()
    )


@pytest.fixture
def books(documents_root: Path) -> dict[str, Any]:
    """A grant with three captured bills, each with its invoice and the enterprise's confirmation,
    all settled; and a fourth bill held, not yet settled."""
    cast = make_cast()
    open_year(cast.admin)
    grant = grant_for(cast, fee_fen=1_000_000)
    bills = []
    for n in range(BILLS + 1):
        evidence = invoice(cast.clerk)
        bill = redemption_create(
            grant=grant,
            bill_number=f"B-{n}",
            bill_amount_fen=50_000,
            actor=cast.clerk,
            capture=n < BILLS,
            now=IN_YEAR,
            **evidence,
        )
        _as_issue_11_records_it(bill, evidence, cast)
        bills.append(bill)
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    assert settlement.redemptions_count == BILLS
    return {"cast": cast, "bills": bills, "settlement": settlement, "root": documents_root}


def tamper(*statements: str) -> None:
    """Raw SQL, as someone with the database's password would (constraints checked at once)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for statement in statements:
            cursor.execute(statement)


def test_clean_books_pass_every_evidence_check(books):
    # Each bill's invoice, and the application's signed contract.
    assert run("stored_files_intact") == ([], BILLS + 2)
    assert run("invoices_used_once") == ([], BILLS + 1)
    assert run("settled_redemptions_have_evidence") == ([], BILLS)


def test_the_checks_are_in_the_audit_and_named_for_people():
    names = [name for name, _ in CHECKS]
    assert all(name in names for name in EVIDENCE_CHECKS)
    assert all(name in AUDIT_CHECK_WORDS for name in EVIDENCE_CHECKS)


# --- stored_files_intact -------------------------------------------------------------------------


def _path_of(books: dict[str, Any], document: Document) -> Path:
    return books["root"] / document.file.storage_name


def test_a_file_changed_on_disk_is_reported_with_its_hash(books):
    first = Document.objects.order_by("pk").first()
    assert first is not None
    path = _path_of(books, first)
    original = path.read_bytes()
    path.write_bytes(original.replace(b"%%EOF", b"%%EOX"))  # Same size, other bytes.
    findings, examined = run("stored_files_intact")
    assert examined == BILLS + 2
    assert findings == [
        {
            "sha256": first.sha256,
            "problem": "changed",
            "size": len(original),
            "size_in_storage": len(original),
            "sha256_in_storage": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    ]
    path.write_bytes(original + b"appended")  # Another size: judged without reading it.
    assert run("stored_files_intact")[0][0]["size_in_storage"] == len(original) + len(b"appended")


def test_a_file_removed_from_disk_is_reported_missing(books):
    documents = list(Document.objects.order_by("pk")[:2])
    for removed in documents:
        _path_of(books, removed).unlink()
    findings, _ = run("stored_files_intact")
    assert findings == [
        {"sha256": removed.sha256, "problem": "missing", "size": removed.size}
        for removed in sorted(documents, key=lambda d: d.sha256)
    ]


def test_a_stray_file_in_storage_is_reported_once_it_is_old(books):
    stray = books["root"] / "documents" / "ab" / "cd" / ("abcd" + "0" * 60)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"%PDF-1.4 not ours %%EOF")
    assert run("stored_files_intact")[0] == []  # It might be an upload whose row is not committed yet.
    an_hour_ago = (timezone.now() - dt.timedelta(hours=1, minutes=1)).timestamp()
    os.utime(stray, (an_hour_ago, an_hour_ago))
    assert run("stored_files_intact")[0] == [{"name": "documents/ab/cd/abcd" + "0" * 60, "problem": "unreferenced"}]
    assert len(files_on_disk(books["root"])) == BILLS + 3  # The invoices, the contract and the stray.


# --- invoices_used_once ---------------------------------------------------------------------------


def _live_invoices() -> list[Invoice]:
    return list(Invoice.objects.filter(released_at__isnull=True).order_by("pk"))


def test_a_number_in_another_written_form_beside_the_unique_index_is_a_second_use(books):
    first = _live_invoices()[0]
    tamper(
        "INSERT INTO coupons_invoice (number, document_id, amount_fen, enterprise_id, redemption_id, claim_id, "
        f"used_at, released_at) SELECT number || ' ', document_id, amount_fen, enterprise_id, "
        f"{books['bills'][BILLS].pk}, NULL, used_at, NULL FROM coupons_invoice WHERE id = {first.pk}"
    )
    findings, examined = run("invoices_used_once")
    assert examined == BILLS + 2
    second = Invoice.objects.get(number=first.number + " ")
    assert {"problem": "not_normalised", "invoice_ids": [second.pk], "number": first.number + " "} in findings
    assert {"problem": "number_used_twice", "invoice_ids": [first.pk, second.pk], "number": first.number} in findings
    assert any(f["problem"] == "document_for_two_numbers" for f in findings)


def test_a_number_live_twice_once_the_unique_index_is_gone_is_found(books):
    first, other = _live_invoices()[:2]
    tamper(
        "DROP INDEX coupons_invoice_used_once",
        f"UPDATE coupons_invoice SET number = '{first.number}' WHERE id = {other.pk}",
    )
    findings, _ = run("invoices_used_once")
    assert findings[0] == {"problem": "number_used_twice", "invoice_ids": [first.pk, other.pk], "number": first.number}


def test_a_released_use_does_not_count(books):
    first, other = _live_invoices()[:2]
    tamper(
        f"UPDATE coupons_invoice SET released_at = now() WHERE id = {other.pk}",
        f"UPDATE coupons_invoice SET number = '{first.number}' WHERE id = {other.pk}",
    )
    assert run("invoices_used_once") == ([], BILLS)


def test_one_invoice_document_behind_two_numbers_is_found(books):
    first, other = _live_invoices()[:2]
    # The same bytes, uploaded again by another organisation: another Document, the same file.
    copy = document(
        books["cast"].member, "invoice", data=Path(books["root"] / first.document.file.storage_name).read_bytes()
    )
    tamper(f"UPDATE coupons_invoice SET document_id = {copy.pk} WHERE id = {other.pk}")
    findings, _ = run("invoices_used_once")
    assert findings == [
        {
            "problem": "document_for_two_numbers",
            "sha256": first.document.sha256,
            "invoice_ids": [first.pk, other.pk],
            "numbers": sorted([first.number, other.number]),
        }
    ]


def test_a_number_that_is_no_invoice_number_is_found(books):
    first = _live_invoices()[0]
    tamper(f"UPDATE coupons_invoice SET number = 'FAKE-1' WHERE id = {first.pk}")
    assert run("invoices_used_once")[0] == [
        {"problem": "invalid_number", "invoice_ids": [first.pk], "number": "FAKE-1"}
    ]


# --- settled_redemptions_have_evidence -----------------------------------------------------------


def test_a_settled_bill_without_its_invoice_document_is_found(books):
    bill = books["bills"][1]
    tamper(f"UPDATE coupons_redemption SET invoice_document_id = NULL WHERE id = {bill.pk}")
    findings, examined = run("settled_redemptions_have_evidence")
    assert examined == BILLS
    assert [(f["redemption_id"], f["invoice_document_id"]) for f in findings] == [(bill.pk, None)]


def test_a_settled_bill_whose_invoice_is_another_kind_of_document_is_found(books):
    bill = books["bills"][0]
    contract = document(books["cast"].clerk, "contract")
    tamper(f"UPDATE coupons_redemption SET invoice_document_id = {contract.pk} WHERE id = {bill.pk}")
    (finding,) = run("settled_redemptions_have_evidence")[0]
    assert finding["redemption_id"] == bill.pk and finding["invoice_document_kind"] == "contract"


@pytest.mark.parametrize("acknowledgement", ["awaiting", "disputed", "upheld"])
def test_a_settled_bill_the_enterprise_did_not_stand_behind_is_found(books, acknowledgement):
    bill = books["bills"][2]
    tamper(
        "ALTER TABLE coupons_redemption DROP CONSTRAINT coupons_redemption_settled_only_if_acknowledged",
        f"UPDATE coupons_redemption SET acknowledgement = '{acknowledgement}' WHERE id = {bill.pk}",
    )
    (finding,) = run("settled_redemptions_have_evidence")[0]
    assert finding == {
        "redemption_id": bill.pk,
        "settlement_id": books["settlement"].pk,
        "status": "captured",
        "acknowledgement": acknowledgement,
        "invoice_document_id": Redemption.objects.get(pk=bill.pk).invoice_document_id,
        "invoice_document_kind": "invoice",
    }


def test_an_unsettled_bill_is_not_judged(books):
    held = books["bills"][BILLS]
    tamper(
        f"UPDATE coupons_redemption SET invoice_document_id = NULL, acknowledgement = 'awaiting' WHERE id = {held.pk}"
    )
    assert run("settled_redemptions_have_evidence") == ([], BILLS)
    assert Settlement.objects.count() == 1
