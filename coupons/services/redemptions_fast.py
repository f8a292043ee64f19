"""The redemption's fast path: the common case of `redemption_create` in two waits on PostgreSQL.

`redemption_create` (`coupons/services/redemptions.py`) is the rule. This module only makes its
common case cheap, and answers nothing on its own: when anything is out of the ordinary, it says so
(returns None) and `redemption_create` runs the careful path, which locks and checks one thing at a
time and gives the exact refusal. So a refusal reads the same whichever path saw it first.

1. One wait: the grant's row lock, the invoice file's advisory lock, then one statement that reads
   everything the checks need (the grant with its year, contract, provider and enterprise; whether
   the provider is listed today; sanctions and affiliation; the contract's live bills; the invoice
   register; the grant's balance; the provider's ledger account; the invoice document), and takes
   the new redemption's id from its sequence. The locks come first in the pipeline, so the read
   runs after them and sees every redemption committed before them (READ COMMITTED takes a new
   snapshot per statement).
2. The checks, in Python, on that one row.
3. One wait: a savepoint, the ledger transfer (`ledger.services.transfer_send`: its accounts locked
   in id order, then applied), the redemption row (already naming its hold, so never updated), its
   invoice use, the invoice's citation, and the savepoint's release. If the database refuses any of
   it (a unique index lost to a concurrent request, an account over its limit or closed), the
   savepoint is rolled back and the careful path answers.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from django.db import DatabaseError, transaction

from accounts.models import Enterprise, Provider, User, listing_day
from config import db
from coupons import books
from coupons.evidence import enterprise_key, provider_key
from coupons.invoices import invoice_key
from coupons.models import CLAIM_LIVE_STATUSES, Grant, Invoice, ProgramYear, Redemption
from coupons.policy import subsidy_fen
from coupons.services.eligibility import program_day
from evidence.models import Citation, Kind
from evidence.selectors import organisation_key
from ledger.selectors import AVAILABLE_FEN_SQL
from ledger.services import TransferRequest, transfer_send

_GRANT_FIELDS: Final = [field.attname for field in Grant._meta.concrete_fields]
_GRANT_COLUMNS: Final = ", ".join(f"g.{field.column}" for field in Grant._meta.concrete_fields)


def _literal(value: str) -> str:
    """A constant of the code (an enum's value) written into the SQL, so it is not sent every time."""
    assert value.replace("_", "").isalnum(), value
    return f"'{value}'"


_LISTINGS: Final = ", ".join(_literal(value) for value in Provider.Listing.values)
_LIVE: Final = ", ".join(_literal(value) for value in (Redemption.Status.PENDING, Redemption.Status.CAPTURED))
# Only the caller's own grant and invoice are locked (as the careful path, which looks them up in the
# caller's scope first): a lock on another center's would let a stranger stall or deadlock its requests.
_LOCK_GRANT_SQL: Final = "SELECT id FROM coupons_grant WHERE id = %s AND provider_id = %s FOR UPDATE"
# The contract's lock (`stacking.contract_lock`: the same key), before the grant's as everywhere: its
# bills are counted across every program's grant of it.
_LOCK_CONTRACT_SQL: Final = (
    "SELECT pg_advisory_xact_lock(hashtextextended('contract:' || a.provider_id || ':' || a.contract_number, 0))"
    " FROM coupons_grant g JOIN coupons_application a ON a.id = g.application_id"
    " WHERE g.id = %s AND g.provider_id = %s"
)
# The live redemptions and claims of the contract's grants in every program (stacked programs each
# grant the one contract): its bills never add up past its fee, and a bill is subsidised once.
_CONTRACT_REDEMPTIONS: Final = f"""
    SELECT r.bill_number, r.bill_amount_fen FROM coupons_redemption r
      JOIN coupons_grant cg ON cg.id = r.grant_id JOIN coupons_application ca ON ca.id = cg.application_id
     WHERE ca.provider_id = a.provider_id AND ca.contract_number = a.contract_number AND r.status IN ({_LIVE})
"""
_CONTRACT_CLAIMS: Final = f"""
    SELECT c.bill_amount_fen FROM coupons_claim c
      JOIN coupons_grant cg ON cg.id = c.grant_id JOIN coupons_application ca ON ca.id = cg.application_id
     WHERE ca.provider_id = a.provider_id AND ca.contract_number = a.contract_number
       AND c.status IN ({", ".join(_literal(status) for status in CLAIM_LIVE_STATUSES)})
"""
# One file stands behind one invoice: uses of the same bytes take turns (`invoice_use` takes the same lock).
_LOCK_INVOICE_FILE_SQL: Final = (
    "SELECT pg_advisory_xact_lock(hashtextextended('invoice-file:' || sha256, 0)) FROM evidence_document"
    f" WHERE id = %s AND owner = %s AND kind = {_literal(Kind.INVOICE)}"
)
_CONTEXT_SQL: Final = f"""
SELECT {_GRANT_COLUMNS},
       y.redemption_mode, y.acknowledgement_window_days, y.chain AS year_chain, a.contract_fee_fen,
       e.status AS enterprise_status,
       p.status = {_literal(Provider.Status.ACTIVE)} AND p.listing IN ({_LISTINGS}) AND EXISTS (
           SELECT 1 FROM accounts_facility f
            WHERE f.provider_id = p.id AND f.listed_from <= %(listing_day)s::date
              AND (f.listed_until IS NULL OR f.listed_until >= %(listing_day)s::date)
       ) AS provider_listed,
       p.uscc = e.uscc OR EXISTS (
           SELECT 1 FROM accounts_relatedparty r
            WHERE r.uscc_low = LEAST(p.uscc COLLATE "C", e.uscc COLLATE "C")
              AND r.uscc_high = GREATEST(p.uscc COLLATE "C", e.uscc COLLATE "C")
       ) AS affiliated,
       EXISTS (
           SELECT 1 FROM accounts_sanction s
            WHERE s.uscc IN (p.uscc, e.uscc) AND s.valid_from <= %(program_day)s::date
              AND (s.valid_until IS NULL OR s.valid_until >= %(program_day)s::date)
       ) AS sanctioned,
       EXISTS (
           SELECT 1 FROM coupons_redemption r
            WHERE r.grant_id = g.id AND r.status = {_literal(Redemption.Status.PENDING)}
              AND r.expires_at <= %(now)s::timestamptz
       ) AS stale_holds,
       EXISTS (
           SELECT 1 FROM ({_CONTRACT_REDEMPTIONS}) r WHERE r.bill_number = %(bill_number)s::text
       ) AS duplicate_bill,
       (SELECT COALESCE(SUM(r.bill_amount_fen), 0) FROM ({_CONTRACT_REDEMPTIONS}) r)
       + (SELECT COALESCE(SUM(c.bill_amount_fen), 0) FROM ({_CONTRACT_CLAIMS}) c) AS billed_fen,
       EXISTS (
           SELECT 1 FROM coupons_invoice i
            WHERE REPLACE(i.number, '-', '') = %(invoice_key)s::text AND i.released_at IS NULL
       ) AS invoice_used,
       EXISTS (
           SELECT 1 FROM coupons_invoice i JOIN evidence_document other ON other.id = i.document_id
            WHERE other.sha256 = d.sha256 AND i.released_at IS NULL AND i.number <> %(invoice_number)s::text
       ) AS file_taken,
       (SELECT {AVAILABLE_FEN_SQL} FROM ledger_account WHERE id = g.account_id) AS available_fen,
       (SELECT id FROM ledger_account WHERE code = %(provider_account_code)s::text) AS provider_account_id,
       d.kind AS document_kind, d.owner AS document_owner, d.sha256 AS document_sha256,
       nextval(pg_get_serial_sequence('coupons_redemption', 'id')) AS redemption_id
  FROM coupons_grant g
  JOIN coupons_programyear y ON y.id = g.year_id
  JOIN coupons_application a ON a.id = g.application_id
  JOIN accounts_provider p ON p.id = g.provider_id
  JOIN accounts_enterprise e ON e.id = g.enterprise_id
  LEFT JOIN evidence_document d ON d.id = %(document_id)s::bigint
 WHERE g.id = %(grant_id)s::bigint
"""


@dataclass(frozen=True, kw_only=True)
class Bill:
    """A bill as `redemption_create` checked it."""

    grant_id: int
    bill_number: str
    bill_amount_fen: int
    requested_fen: int | None
    capture: bool
    invoice_number: str
    invoice_document_id: int
    invoice_amount_fen: int


def redemption_transfer(
    *,
    pk: int,
    grant: Grant,
    chain: str,
    provider_account_id: int,
    coupon_fen: int,
    capture: bool,
    hold_timeout_s: int,
) -> TransferRequest:
    """The ledger transfer of redemption `pk`: the coupon from the grant to the provider, posted at
    once (`capture`) or held for `hold_timeout_s`, sealed in the grant's program year's `chain`. Its
    key names the redemption, so a retry moves nothing twice. Both paths of `redemption_create`
    make it here."""
    if capture:
        return TransferRequest.posted(
            key=f"redemption:{pk}:capture",
            debit_account_id=grant.account_id,
            credit_account_id=provider_account_id,
            amount_fen=coupon_fen,
            reason="redemption_capture",
            chain=chain,
        )
    return TransferRequest.pending(
        key=f"redemption:{pk}:hold",
        debit_account_id=grant.account_id,
        credit_account_id=provider_account_id,
        amount_fen=coupon_fen,
        reason="redemption_hold",
        chain=chain,
        timeout_s=hold_timeout_s,
    )


def _context(bill: Bill, actor: User, now: dt.datetime) -> dict[str, Any] | None:
    """Lock the grant and the invoice file, and read what the checks need: one wait."""
    assert actor.provider_id is not None
    params = {
        "grant_id": bill.grant_id,
        "document_id": bill.invoice_document_id,
        "listing_day": listing_day(now),
        "program_day": program_day(now),
        "now": now,
        "bill_number": bill.bill_number,
        "invoice_key": invoice_key(bill.invoice_number),
        "invoice_number": bill.invoice_number,
        "provider_account_code": books.provider_code(actor.provider_id),
    }
    read = db.cursor()
    with db.pipeline():  # One cursor: it keeps the last statement's answer, the only one read.
        read.execute(_LOCK_CONTRACT_SQL, [bill.grant_id, actor.provider_id], prepare=True)
        read.execute(_LOCK_GRANT_SQL, [bill.grant_id, actor.provider_id], prepare=True)
        read.execute(_LOCK_INVOICE_FILE_SQL, [bill.invoice_document_id, organisation_key(actor)], prepare=True)
        read.execute(_CONTEXT_SQL, params, prepare=True)
    row = read.fetchone()  # The pipeline's end waited for all three; the answers are here.
    if row is None:
        return None
    assert read.description is not None
    names = _GRANT_FIELDS + [column.name for column in read.description[len(_GRANT_FIELDS) :]]
    return dict(zip(names, row, strict=True))


def _clean(context: dict[str, Any], bill: Bill, actor: User, now: dt.datetime) -> bool:
    """Whether every check of `redemption_create` passes on this row (then the fast path writes)."""
    return (
        context["provider_id"] == actor.provider_id
        and context["redemption_mode"] == ProgramYear.RedemptionMode.PROVIDER_DEDUCTION
        and context["provider_listed"]
        and context["enterprise_status"] == Enterprise.Status.VERIFIED
        and not context["affiliated"]
        and not context["sanctioned"]
        and context["status"] == Grant.Status.ACTIVE
        and now < context["expires_at"]
        and not context["stale_holds"]
        and not context["duplicate_bill"]
        and not context["invoice_used"]
        and not context["file_taken"]
        and context["billed_fen"] + bill.bill_amount_fen <= context["contract_fee_fen"]
        and subsidy_fen(bill.bill_amount_fen, context["rate_bp"]) > 0
        and context["available_fen"] > 0
        and context["provider_account_id"] is not None
        and context["document_kind"] == Kind.INVOICE
        and context["document_owner"] == organisation_key(actor)
    )


def redemption_create_fast(*, bill: Bill, actor: User, now: dt.datetime, hold_timeout_s: int) -> Redemption | None:
    """The redemption, made in two waits; or None when the careful path must answer. Call it inside
    a transaction; it writes nothing unless it returns a redemption."""
    if actor.provider_id is None:
        return None
    context = _context(bill, actor, now)
    if context is None or not _clean(context, bill, actor, now):
        return None
    grant = Grant.from_db("default", _GRANT_FIELDS, [context[name] for name in _GRANT_FIELDS])
    by_rate_fen = subsidy_fen(bill.bill_amount_fen, grant.rate_bp)
    requested_fen = bill.requested_fen if bill.requested_fen is not None else by_rate_fen
    coupon_fen = min(by_rate_fen, context["available_fen"], requested_fen)
    pk = context["redemption_id"]
    window = dt.timedelta(days=context["acknowledgement_window_days"])
    redemption = Redemption(
        pk=pk,
        grant=grant,
        provider_id=grant.provider_id,
        bill_number=bill.bill_number,
        bill_amount_fen=bill.bill_amount_fen,
        invoice_number=bill.invoice_number,
        invoice_document_id=bill.invoice_document_id,
        invoice_amount_fen=bill.invoice_amount_fen,
        requested_fen=bill.requested_fen,
        rate_bp=grant.rate_bp,
        coupon_fen=coupon_fen,
        status=Redemption.Status.CAPTURED if bill.capture else Redemption.Status.PENDING,
        created_by=actor,
        captured_at=now if bill.capture else None,
        # The enterprise's acknowledgement window opens at capture (docs/evidence.md).
        acknowledge_by=now + window if bill.capture else None,
        # The ledger times a hold from the same `now` (ledger.services).
        expires_at=None if bill.capture else now + dt.timedelta(seconds=hold_timeout_s),
    )
    transfer = redemption_transfer(
        pk=pk,
        grant=grant,
        chain=context["year_chain"],
        provider_account_id=context["provider_account_id"],
        coupon_fen=coupon_fen,
        capture=bill.capture,
        hold_timeout_s=hold_timeout_s,
    )
    hold_expression: dict[str, tuple[str, Sequence[Any]]] | None = None
    if not bill.capture:
        hold_expression = {"hold_transfer_id": ("(SELECT id FROM ledger_transfer WHERE key = %s)", [transfer.key])}
    use = Invoice(
        number=bill.invoice_number,
        document_id=bill.invoice_document_id,
        amount_fen=bill.invoice_amount_fen,
        enterprise_id=grant.enterprise_id,
        redemption_id=pk,
    )
    citation = Citation(
        document_id=bill.invoice_document_id,
        subject=f"redemption:{pk}",
        role=Kind.INVOICE,
        principal=enterprise_key(grant.enterprise_id),
        parties=sorted({enterprise_key(grant.enterprise_id), provider_key(grant.provider_id)}),
        sha256=context["document_sha256"],
        cited_by=actor,
    )
    # The three rows in one statement (the invoice use's key to the redemption is checked at commit).
    rows = [
        db.insert_statement(redemption, include_pk=True, expressions=hold_expression),
        db.insert_statement(use),
        db.insert_statement(citation),
    ]
    insert = f"WITH redemption AS ({rows[0][0]}), invoice_use AS ({rows[1][0]}) {rows[2][0]}"
    insert_params = rows[0][1] + rows[1][1] + rows[2][1]
    savepoint = None
    try:
        with db.pipeline():
            savepoint = transaction.savepoint()
            sent = transfer_send(transfer=transfer, now=now)
            db.cursor().execute(insert, insert_params, prepare=True)
            transaction.savepoint_commit(savepoint)
        applied = sent.result()
    except (psycopg.Error, DatabaseError):
        # A concurrent request took the bill or the invoice first, or the ledger refused: the careful
        # path says which, exactly.
        if savepoint is not None:
            transaction.savepoint_rollback(savepoint)
        return None
    assert applied is not None
    if not bill.capture:
        redemption.hold_transfer_id = applied.pk
    redemption._state.adding = False
    return redemption
