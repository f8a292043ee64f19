"""Writes to the ledger: opening and closing accounts, creating transfers, expiring holds.

`transfers_create` is the one way money moves. For a batch it:

1. validates every request in Python (nothing touches the database for a malformed batch);
2. locks every account the batch touches, in id order, so crossing batches cannot deadlock;
3. looks up the batch's keys: a key that exists with the same content returns the first transfer
   (`created=False`), a key that exists with other content raises
   `TransferExistsWithDifferentFields`;
4. applies each new transfer with one statement that updates both accounts (PostgreSQL does the
   arithmetic, and its CHECK constraints refuse an overdraw) and inserts the transfer with both
   accounts' totals after it. When every transfer is new, posted or pending, between open accounts,
   the statements go in one pipeline (one round trip for the batch), or, when moreover no account
   is both debited and credited in the batch, as one statement for the whole batch (each account
   updated once by its sum, each transfer recording the running totals: `_APPLY_SET_SQL`); if the
   database refuses either, the batch is rolled back and applied again one statement at a time,
   which names the refusal.

The whole batch commits or fails as one; a failure raises a typed `LedgerError` and leaves nothing
written. Called inside an outer transaction, the batch is a savepoint of it.
"""

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from ledger.errors import (
    AccountClosed,
    AccountExistsWithDifferentFlags,
    AccountNotFound,
    ExceedsCredits,
    ExceedsDebits,
    ExceedsPendingTransferAmount,
    HistoryArchived,
    InvalidTransfer,
    Overflow,
    PendingTransferAlreadyResolved,
    PendingTransferExpired,
    PendingTransferNotFound,
    TransferExistsWithDifferentFields,
)
from ledger.models import (
    ACCOUNT_CODE_LENGTH_MAX,
    CHAIN_LENGTH_MAX,
    DEFAULT_CHAIN,
    KEY_LENGTH_MAX,
    TRANSFER_REASON_LENGTH_MAX,
    Account,
    ChainArchive,
    Transfer,
    TransferKey,
    TransferKind,
)

TRANSFERS_PER_BATCH_MAX: Final = 1_000
AMOUNT_FEN_MAX: Final = 2**63 - 1
TIMEOUT_S_MAX: Final = 400 * 24 * 3600
METADATA_BYTES_MAX: Final = 4_096
# A key inserted concurrently by another transaction is seen on the first retry; two is ample.
KEY_RACE_ATTEMPTS_MAX: Final = 3
EXPIRE_BATCH_SIZE: Final = 500
EXPIRED_REASON: Final = "expired"

_REASON_PATTERN = re.compile(r"^[a-z0-9_.:-]+$")
_CODE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]+$")

_KEY_CONSTRAINT = "ledger_transfer_key_unique"
_RESOLVED_ONCE_CONSTRAINT = "ledger_transfer_pending_resolved_once"
# The CHECK that `ledger.archive` puts on the DEFAULT partition for each archived chain.
_ARCHIVED_CHAIN_CONSTRAINT = "ledger_transfer_default_not_"
_DEBITS_LIMIT_CONSTRAINT = "ledger_account_debits_must_not_exceed_credits"
_CREDITS_LIMIT_CONSTRAINT = "ledger_account_credits_must_not_exceed_debits"


@dataclass(frozen=True, kw_only=True)
class TransferRequest:
    """What a caller asks of the ledger. Build one with the class methods, which name the kind.

    For `post_pending` and `void_pending` the accounts come from the pending transfer; an amount
    left out posts the whole held amount.
    """

    key: str
    reason: str
    kind: TransferKind = TransferKind.POSTED
    debit_account_id: int | None = None
    credit_account_id: int | None = None
    amount_fen: int | None = None
    pending_id: int | None = None
    timeout_s: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)  # Any: JSON values of the caller's.
    # The hash chain that will seal the transfer; a post or void takes its pending transfer's.
    chain: str | None = None

    @classmethod
    def posted(
        cls,
        *,
        key: str,
        debit_account_id: int,
        credit_account_id: int,
        amount_fen: int,
        reason: str,
        metadata: Mapping[str, Any] | None = None,
        chain: str | None = None,
    ) -> "TransferRequest":
        return cls(
            key=key,
            chain=chain,
            kind=TransferKind.POSTED,
            debit_account_id=debit_account_id,
            credit_account_id=credit_account_id,
            amount_fen=amount_fen,
            reason=reason,
            metadata=metadata or {},
        )

    @classmethod
    def pending(
        cls,
        *,
        key: str,
        debit_account_id: int,
        credit_account_id: int,
        amount_fen: int,
        reason: str,
        timeout_s: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        chain: str | None = None,
    ) -> "TransferRequest":
        return cls(
            key=key,
            chain=chain,
            kind=TransferKind.PENDING,
            debit_account_id=debit_account_id,
            credit_account_id=credit_account_id,
            amount_fen=amount_fen,
            reason=reason,
            timeout_s=timeout_s,
            metadata=metadata or {},
        )

    @classmethod
    def post_pending(
        cls,
        *,
        key: str,
        pending_id: int,
        reason: str,
        amount_fen: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> "TransferRequest":
        return cls(
            key=key,
            kind=TransferKind.POST_PENDING,
            pending_id=pending_id,
            amount_fen=amount_fen,
            reason=reason,
            metadata=metadata or {},
        )

    @classmethod
    def void_pending(
        cls, *, key: str, pending_id: int, reason: str, metadata: Mapping[str, Any] | None = None
    ) -> "TransferRequest":
        return cls(
            key=key, kind=TransferKind.VOID_PENDING, pending_id=pending_id, reason=reason, metadata=metadata or {}
        )


@dataclass(frozen=True)
class TransferOutcome:
    """One transfer of a batch: the transfer itself, and whether this call created it."""

    transfer: Transfer
    created: bool


# --- Accounts ---------------------------------------------------------------------------------


def account_create(
    *, code: str, debits_must_not_exceed_credits: bool = False, credits_must_not_exceed_debits: bool = False
) -> Account:
    """Create an account, or return the existing one with this code and the same flags."""
    if not isinstance(code, str) or not 0 < len(code) <= ACCOUNT_CODE_LENGTH_MAX or not _CODE_PATTERN.match(code):
        raise InvalidTransfer(
            f"An account code is 1 to {ACCOUNT_CODE_LENGTH_MAX} letters, digits or _.:-", field="code"
        )
    if debits_must_not_exceed_credits and credits_must_not_exceed_debits:
        raise InvalidTransfer("An account takes one limit at most.", field="flags")
    account, _ = Account.objects.get_or_create(
        code=code,
        defaults={
            "debits_must_not_exceed_credits": debits_must_not_exceed_credits,
            "credits_must_not_exceed_debits": credits_must_not_exceed_debits,
        },
    )
    if (account.debits_must_not_exceed_credits, account.credits_must_not_exceed_debits) != (
        debits_must_not_exceed_credits,
        credits_must_not_exceed_debits,
    ):
        raise AccountExistsWithDifferentFlags(f"Account {code} exists with other flags.", account_code=code)
    return account


def account_set_closed(*, account_id: int, closed: bool) -> Account:
    """Close an account to new transfers (voids of its holds still go through), or reopen it."""
    with transaction.atomic():
        try:
            account = Account.objects.select_for_update(no_key=True).get(pk=account_id)
        except Account.DoesNotExist:
            raise AccountNotFound(f"No account with id {account_id}.", account_ids=[account_id]) from None
        if account.closed != closed:
            account.closed = closed
            account.save(update_fields=["closed"])
        return account


# --- Transfers --------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_amount(amount_fen: object, *, required: bool) -> None:
    if amount_fen is None and not required:
        return
    if not _is_int(amount_fen) or not 0 < amount_fen <= AMOUNT_FEN_MAX:  # type: ignore[operator]
        raise InvalidTransfer(
            f"amount_fen must be a whole number of fen from 1 to {AMOUNT_FEN_MAX}.", field="amount_fen"
        )


def _validate(request: TransferRequest) -> None:
    if not isinstance(request, TransferRequest):
        raise InvalidTransfer("Each transfer must be a TransferRequest.", field="transfer")
    key = request.key
    if not isinstance(key, str) or not 0 < len(key) <= KEY_LENGTH_MAX or not key.isprintable():
        raise InvalidTransfer(f"key must be 1 to {KEY_LENGTH_MAX} printable characters.", field="key")
    reason = request.reason
    if (
        not isinstance(reason, str)
        or not 0 < len(reason) <= TRANSFER_REASON_LENGTH_MAX
        or not _REASON_PATTERN.match(reason)
    ):
        raise InvalidTransfer(
            f"reason must be 1 to {TRANSFER_REASON_LENGTH_MAX} lower-case letters, digits or _.:-", field="reason"
        )
    if request.chain is not None and (
        not isinstance(request.chain, str)
        or not 0 < len(request.chain) <= CHAIN_LENGTH_MAX
        or not _REASON_PATTERN.match(request.chain)
    ):
        raise InvalidTransfer(
            f"chain must be 1 to {CHAIN_LENGTH_MAX} lower-case letters, digits or _.:-", field="chain"
        )
    if request.kind not in TransferKind.values:
        raise InvalidTransfer(f"kind must be one of {', '.join(TransferKind.values)}.", field="kind")
    if request.kind in (TransferKind.POSTED, TransferKind.PENDING):
        for name in ("debit_account_id", "credit_account_id"):
            if not _is_int(getattr(request, name)):
                raise InvalidTransfer(f"{name} must be an account id.", field=name)
        if request.debit_account_id == request.credit_account_id:
            raise InvalidTransfer("The debit and credit accounts must differ.", field="credit_account_id")
        _validate_amount(request.amount_fen, required=True)
        if request.pending_id is not None:
            raise InvalidTransfer("Only post_pending and void_pending name a pending transfer.", field="pending_id")
    else:
        if not _is_int(request.pending_id):
            raise InvalidTransfer(f"{request.kind} needs pending_id.", field="pending_id")
        for name in ("debit_account_id", "credit_account_id"):
            value = getattr(request, name)
            if value is not None and not _is_int(value):
                raise InvalidTransfer(f"{name} must be an account id.", field=name)
        _validate_amount(request.amount_fen, required=False)
        if request.kind == TransferKind.VOID_PENDING and request.amount_fen is not None:
            raise InvalidTransfer("A void releases the whole pending amount; leave amount_fen out.", field="amount_fen")
    if request.timeout_s is not None:
        if request.kind != TransferKind.PENDING:
            raise InvalidTransfer("Only a pending transfer takes a timeout.", field="timeout_s")
        if not _is_int(request.timeout_s) or not 0 < request.timeout_s <= TIMEOUT_S_MAX:
            raise InvalidTransfer(f"timeout_s must be 1 to {TIMEOUT_S_MAX} seconds.", field="timeout_s")
    if not isinstance(request.metadata, Mapping):
        raise InvalidTransfer("metadata must be a JSON object.", field="metadata")
    try:
        encoded = json.dumps(dict(request.metadata), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidTransfer("metadata must hold only JSON values.", field="metadata") from None
    if len(encoded.encode()) > METADATA_BYTES_MAX:
        raise InvalidTransfer(f"metadata must encode to at most {METADATA_BYTES_MAX} bytes.", field="metadata")


@dataclass
class _Resolved:
    """A request with everything filled in from its pending transfer, ready to apply."""

    request: TransferRequest
    debit_account_id: int
    credit_account_id: int
    amount_fen: int
    pending: Transfer | None
    chain: str = DEFAULT_CHAIN


class _KeyRace(Exception):
    """Another transaction inserted one of our keys after we looked: look again."""


class _PipelineRefused(Exception):
    """The database refused a transfer of a pipelined batch: apply the batch again one by one."""


_TRANSFER_COLUMNS = [f.column for f in Transfer._meta.concrete_fields]
_TOTALS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
# The head of both inserts of a new transfer (`_APPLY_SQL`, one; `_APPLY_SET_SQL`, a batch): its
# fields, then each account's totals after it.
_TRANSFER_INSERT = """INSERT INTO ledger_transfer (
    key, debit_account_id, credit_account_id, amount_fen, kind, pending_id, timeout_s, expires_at,
    reason, metadata, chain, created_at,
    debit_account_debits_pending, debit_account_debits_posted,
    debit_account_credits_pending, debit_account_credits_posted,
    credit_account_debits_pending, credit_account_debits_posted,
    credit_account_credits_pending, credit_account_credits_posted
)"""

# One statement per transfer: both account updates (PostgreSQL does the sums and checks the
# limits) and the insert that records the totals after them. Accounts are already locked.
_APPLY_SQL = f"""
WITH stamp AS (SELECT clock_timestamp() AS at),
debit AS (
    UPDATE ledger_account
       SET debits_pending = debits_pending + %(debits_pending_delta)s::bigint,
           debits_posted = debits_posted + %(debits_posted_delta)s::bigint
     WHERE id = %(debit_account_id)s::bigint
 RETURNING debits_pending, debits_posted, credits_pending, credits_posted
), credit AS (
    UPDATE ledger_account
       SET credits_pending = credits_pending + %(credits_pending_delta)s::bigint,
           credits_posted = credits_posted + %(credits_posted_delta)s::bigint
     WHERE id = %(credit_account_id)s::bigint
 RETURNING debits_pending, debits_posted, credits_pending, credits_posted
)
{_TRANSFER_INSERT}
SELECT %(key)s::text, %(debit_account_id)s::bigint, %(credit_account_id)s::bigint, %(amount_fen)s::bigint,
       %(kind)s::text, %(pending_id)s::bigint, %(timeout_s)s::integer, %(expires_at)s::timestamptz,
       %(reason)s::text, %(metadata)s::jsonb, %(chain)s::text, stamp.at,
       debit.debits_pending, debit.debits_posted, debit.credits_pending, debit.credits_posted,
       credit.debits_pending, credit.debits_posted, credit.credits_pending, credit.credits_posted
  FROM stamp, debit, credit
RETURNING {", ".join(_TRANSFER_COLUMNS)}
"""


# The same statement for `transfer_send`, which has not looked at the accounts: unless both are open
# it fails (a cast error naming how many were open), so the caller's pipeline stops there.
_APPLY_IF_OPEN_SQL = (
    _APPLY_SQL.replace(
        "WITH stamp AS (SELECT clock_timestamp() AS at),",
        "WITH stamp AS (SELECT clock_timestamp() AS at),\n"
        "open AS (SELECT (CASE WHEN count(*) = 2 THEN 'true' ELSE 'accounts open: ' || count(*) END)::boolean AS ok\n"
        "          FROM ledger_account\n"
        "          WHERE id IN (%(debit_account_id)s::bigint, %(credit_account_id)s::bigint) AND NOT closed),",
    )
    .replace(
        "WHERE id = %(debit_account_id)s::bigint",
        "WHERE id = %(debit_account_id)s::bigint AND (SELECT ok FROM open)",
    )
    .replace(
        "WHERE id = %(credit_account_id)s::bigint",
        "WHERE id = %(credit_account_id)s::bigint AND (SELECT ok FROM open)",
    )
)


_METADATA_INDEX = _TRANSFER_COLUMNS.index("metadata")
_TRANSFER_FIELDS = [f.attname for f in Transfer._meta.concrete_fields]


def _transfer_from_row(row: Sequence[Any]) -> Transfer:
    """A transfer from a row of `_TRANSFER_COLUMNS` (the concrete fields, in order): built as Django
    builds a fetched row, positionally, which costs a fraction of keyword arguments."""
    values = list(row)
    assert len(values) == len(_TRANSFER_COLUMNS)
    if isinstance(values[_METADATA_INDEX], str):
        values[_METADATA_INDEX] = json.loads(values[_METADATA_INDEX])
    return Transfer.from_db(connection.alias, _TRANSFER_FIELDS, values)


def _cursor() -> psycopg.Cursor[Any]:
    """A psycopg cursor on Django's connection (and so in its transaction) that binds parameters
    on the server, so the few statements on the hot path are prepared once per connection instead
    of parsed and planned on every transfer. They do not appear in Django's query log."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _transfers_query(cursor: psycopg.Cursor[Any], column: str, values: Sequence[Any]) -> None:
    """Send the query for transfers whose `column` (id, key or pending_id) is one of `values`."""
    array_type = {"id": "bigint[]", "key": "text[]", "pending_id": "bigint[]"}[column]
    sql = f"SELECT {', '.join(_TRANSFER_COLUMNS)} FROM ledger_transfer WHERE {column} = ANY(%s::{array_type})"
    cursor.execute(sql, [list(values)], prepare=True)


def _fetch_transfers(column: str, values: Sequence[Any]) -> list[Transfer]:
    with _cursor() as cursor:
        _transfers_query(cursor, column, values)
        return [_transfer_from_row(row) for row in cursor.fetchall()]


def _constraint_of(error: Exception) -> str | None:
    """The constraint a database error names, whether psycopg raised it or Django wrapped it."""
    cause = error if isinstance(error, psycopg.Error) else error.__cause__
    return getattr(getattr(cause, "diag", None), "constraint_name", None)


def _resolve(requests: Sequence[TransferRequest], pendings: Mapping[int, Transfer]) -> list[_Resolved]:
    resolved = []
    for request in requests:
        if request.pending_id is None:
            assert request.debit_account_id is not None and request.credit_account_id is not None
            assert request.amount_fen is not None
            resolved.append(
                _Resolved(
                    request,
                    request.debit_account_id,
                    request.credit_account_id,
                    request.amount_fen,
                    None,
                    request.chain or DEFAULT_CHAIN,
                )
            )
            continue
        pending = pendings.get(request.pending_id)
        if pending is None or pending.kind != TransferKind.PENDING:
            raise PendingTransferNotFound(
                f"No pending transfer with id {request.pending_id}.", pending_id=request.pending_id
            )
        for name in ("debit_account_id", "credit_account_id"):
            given = getattr(request, name)
            if given is not None and given != getattr(pending, name):
                raise InvalidTransfer(f"{name} differs from the pending transfer's.", field=name)
        amount_fen = pending.amount_fen if request.amount_fen is None else request.amount_fen
        if request.chain is not None and request.chain != pending.chain:
            raise InvalidTransfer("chain differs from the pending transfer's.", field="chain")
        resolved.append(
            _Resolved(request, pending.debit_account_id, pending.credit_account_id, amount_fen, pending, pending.chain)
        )
    return resolved


_LOCK_SQL = (
    "SELECT id, code, closed, debits_must_not_exceed_credits, credits_must_not_exceed_debits, "
    "debits_pending, debits_posted, credits_pending, credits_posted "
    "FROM ledger_account WHERE id = ANY(%s::bigint[]) ORDER BY id FOR NO KEY UPDATE"
)


def _lock_and_look_up(
    account_ids: set[int], keys: list[str], pending_ids: list[int]
) -> tuple[dict[int, dict[str, Any]], dict[str, Transfer], dict[int, str]]:
    """Lock the accounts in id order (the one order every writer uses), then read the batch's
    keys and the resolutions of its pending transfers; return the accounts' rows, the transfers
    that exist by key, and how each resolved pending transfer was resolved.

    The reads run after the locks (the server runs statements in order), so a concurrent batch
    on these accounts has either committed or not started. They are pipelined with the lock, so
    the three statements cost one round trip.
    """
    connection.ensure_connection()
    raw = connection.connection
    lock, keyed, resolving = psycopg.Cursor(raw), psycopg.Cursor(raw), psycopg.Cursor(raw)
    with raw.pipeline():
        lock.execute(_LOCK_SQL, [sorted(account_ids)], prepare=True)
        _transfers_query(keyed, "key", keys)
        if pending_ids:
            _transfers_query(resolving, "pending_id", pending_ids)
    assert lock.description is not None
    columns = [column.name for column in lock.description]
    accounts = {row[0]: dict(zip(columns, row, strict=True)) for row in lock.fetchall()}
    missing = sorted(account_ids - accounts.keys())
    if missing:
        raise AccountNotFound(f"No account with id {', '.join(map(str, missing))}.", account_ids=missing)
    existing = {t.key: t for t in map(_transfer_from_row, keyed.fetchall())}
    resolutions: dict[int, str] = {}
    if pending_ids:
        for resolution in map(_transfer_from_row, resolving.fetchall()):
            assert resolution.pending_id is not None
            resolutions[resolution.pending_id] = _resolution_word(resolution)
    return accounts, existing, resolutions


def _first_difference(existing: Transfer, item: _Resolved) -> str | None:
    request = item.request
    wanted = {
        "kind": request.kind,
        "debit_account_id": item.debit_account_id,
        "credit_account_id": item.credit_account_id,
        "amount_fen": item.amount_fen,
        "pending_id": request.pending_id,
        "timeout_s": request.timeout_s,
        "reason": request.reason,
        "metadata": json.loads(json.dumps(dict(request.metadata))),
        "chain": item.chain,
    }
    for name, value in wanted.items():
        if getattr(existing, name) != value:
            return name
    return None


def _deltas(item: _Resolved) -> dict[str, int]:
    """How the transfer changes its debit account's debits and its credit account's credits."""
    kind = item.request.kind
    held = item.pending.amount_fen if item.pending is not None else 0
    if kind == TransferKind.POSTED:
        pending_delta, posted_delta = 0, item.amount_fen
    elif kind == TransferKind.PENDING:
        pending_delta, posted_delta = item.amount_fen, 0
    elif kind == TransferKind.POST_PENDING:
        pending_delta, posted_delta = -held, item.amount_fen
    else:
        pending_delta, posted_delta = -held, 0
    return {
        "debits_pending_delta": pending_delta,
        "debits_posted_delta": posted_delta,
        "credits_pending_delta": pending_delta,
        "credits_posted_delta": posted_delta,
    }


def _check_pending(item: _Resolved, resolutions: Mapping[int, str], now: datetime) -> None:
    pending = item.pending
    if pending is None:
        return
    resolved_by = resolutions.get(pending.id)
    if resolved_by is not None:
        raise PendingTransferAlreadyResolved(
            f"Pending transfer {pending.id} was already {resolved_by}.", pending_id=pending.id, resolved_by=resolved_by
        )
    if item.request.kind == TransferKind.POST_PENDING:
        if pending.expires_at is not None and pending.expires_at <= now:
            raise PendingTransferExpired(f"Pending transfer {pending.id} expired at {pending.expires_at.isoformat()}.")
        if item.amount_fen > pending.amount_fen:
            raise ExceedsPendingTransferAmount(
                f"Pending transfer {pending.id} holds {pending.amount_fen} fen; cannot post {item.amount_fen}."
            )


def _resolution_word(transfer: Transfer) -> str:
    if transfer.kind == TransferKind.POST_PENDING:
        return "posted"
    return "expired" if transfer.reason == EXPIRED_REASON else "voided"


def _apply_params(item: _Resolved, now: datetime) -> dict[str, Any]:
    request = item.request
    timeout_s = request.timeout_s
    return {
        "key": request.key,
        "debit_account_id": item.debit_account_id,
        "credit_account_id": item.credit_account_id,
        "amount_fen": item.amount_fen,
        "kind": str(request.kind),
        "pending_id": request.pending_id,
        "timeout_s": timeout_s,
        # A hold's timeout runs from `now`, the same moment its expiry is later judged against.
        "expires_at": now + timedelta(seconds=timeout_s) if timeout_s is not None else None,
        "reason": request.reason,
        "metadata": json.dumps(dict(request.metadata), sort_keys=True),
        "chain": item.chain,
        **_deltas(item),
    }


def _apply(item: _Resolved, accounts: dict[int, dict[str, Any]], now: datetime) -> Transfer:
    request = item.request
    params = _apply_params(item, now)
    try:
        with _cursor() as cursor:
            cursor.execute(_APPLY_SQL, params, prepare=True)
            row = cursor.fetchone()
    except (IntegrityError, psycopg.IntegrityError) as error:
        constraint = _constraint_of(error)
        if constraint == _KEY_CONSTRAINT:
            raise _KeyRace from error
        if constraint == _DEBITS_LIMIT_CONSTRAINT:
            debit = accounts[item.debit_account_id]
            available_fen = debit["credits_posted"] - debit["debits_posted"] - debit["debits_pending"]
            raise ExceedsCredits(
                account_code=debit["code"], available_fen=available_fen, amount_fen=item.amount_fen
            ) from error
        if constraint == _CREDITS_LIMIT_CONSTRAINT:
            credit = accounts[item.credit_account_id]
            available_fen = credit["debits_posted"] - credit["credits_posted"] - credit["credits_pending"]
            raise ExceedsDebits(
                account_code=credit["code"], available_fen=available_fen, amount_fen=item.amount_fen
            ) from error
        if constraint is not None and constraint.startswith(_ARCHIVED_CHAIN_CONSTRAINT):
            raise HistoryArchived(f"Chain {item.chain} is archived: it takes no more transfers.") from error
        # A partition's index is named after its parent's (ledger/partitions.py): read the prefix.
        if constraint is not None and constraint.startswith(_RESOLVED_ONCE_CONSTRAINT):
            # Unreachable while the accounts are locked first; the unique index is the backstop.
            raise PendingTransferAlreadyResolved(
                f"Pending transfer {request.pending_id} was already resolved.",
                pending_id=request.pending_id or 0,
                resolved_by="resolved",
            ) from error
        raise
    except (DataError, psycopg.DataError) as error:
        raise Overflow(f"Transfer {request.key!r} would take an account total past 64 bits.") from error
    assert row is not None, "the transfer's accounts were locked, so both updates found their row"
    transfer = _transfer_from_row(row)
    for account_id, prefix in ((item.debit_account_id, "debit_account_"), (item.credit_account_id, "credit_account_")):
        for total in _TOTALS:
            accounts[account_id][total] = getattr(transfer, prefix + total)
    return transfer


def _apply_pipelined(items: Sequence[_Resolved], accounts: dict[int, dict[str, Any]], now: datetime) -> list[Transfer]:
    """Apply new transfers that need no check between them, sent in one pipeline: one round trip for
    the batch instead of one per transfer. The server runs the statements in order, so each records
    the totals after the ones before it, as `_apply` one by one would. If the database refuses one
    (an overdraw, a key inserted meanwhile, an overflow), `_PipelineRefused` is raised: the caller
    rolls the batch back and applies it one by one, which raises the exact typed error."""
    connection.ensure_connection()
    raw = connection.connection
    cursors = []
    try:
        with raw.pipeline():
            for item in items:
                cursor = psycopg.Cursor(raw)
                cursor.execute(_APPLY_SQL, _apply_params(item, now), prepare=True)
                cursors.append(cursor)
        rows = [cursor.fetchone() for cursor in cursors]
    except psycopg.Error as error:
        raise _PipelineRefused from error
    transfers = []
    for item, row in zip(items, rows, strict=True):
        assert row is not None, "the transfer's accounts were locked, so both updates found their row"
        transfer = _transfer_from_row(row)
        for account_id, prefix in (
            (item.debit_account_id, "debit_account_"),
            (item.credit_account_id, "credit_account_"),
        ):
            for total in _TOTALS:
                accounts[account_id][total] = getattr(transfer, prefix + total)
        transfers.append(transfer)
    return transfers


# A batch of new posted or pending transfers in which no account is both debited and credited, in one
# statement: each account's totals move once by the batch's sum (so the CHECK constraints judge the
# final totals, and PostgreSQL does the arithmetic), and each transfer records the totals after it,
# its account's totals before the batch plus the running sum up to it in batch order, as one
# statement per transfer would have recorded them. The transfers are inserted in batch order (ids
# from the sequence in that order); the insert triggers run for each row, as for one at a time.
_APPLY_SET_SQL = f"""
WITH batch AS (
    SELECT * FROM unnest(
        %(key)s::text[], %(debit_account_id)s::bigint[], %(credit_account_id)s::bigint[],
        %(amount_fen)s::bigint[], %(kind)s::text[], %(timeout_s)s::integer[], %(expires_at)s::timestamptz[],
        %(reason)s::text[], %(metadata)s::jsonb[], %(chain)s::text[],
        %(pending_delta)s::bigint[], %(posted_delta)s::bigint[]
    ) WITH ORDINALITY AS b(key, debit_account_id, credit_account_id, amount_fen, kind, timeout_s, expires_at,
                           reason, metadata, chain, pending_delta, posted_delta, n)
), debit AS (
    UPDATE ledger_account a
       SET debits_pending = a.debits_pending + s.pending, debits_posted = a.debits_posted + s.posted
      FROM (SELECT debit_account_id AS id, sum(pending_delta) AS pending, sum(posted_delta) AS posted
              FROM batch GROUP BY debit_account_id) s
     WHERE a.id = s.id
 RETURNING a.id, (a.debits_pending - s.pending)::bigint AS debits_pending,
           (a.debits_posted - s.posted)::bigint AS debits_posted, a.credits_pending, a.credits_posted
), credit AS (
    UPDATE ledger_account a
       SET credits_pending = a.credits_pending + s.pending, credits_posted = a.credits_posted + s.posted
      FROM (SELECT credit_account_id AS id, sum(pending_delta) AS pending, sum(posted_delta) AS posted
              FROM batch GROUP BY credit_account_id) s
     WHERE a.id = s.id
 RETURNING a.id, a.debits_pending, a.debits_posted, (a.credits_pending - s.pending)::bigint AS credits_pending,
           (a.credits_posted - s.posted)::bigint AS credits_posted
)
{_TRANSFER_INSERT}
SELECT b.key, b.debit_account_id, b.credit_account_id, b.amount_fen, b.kind, NULL::bigint, b.timeout_s,
       b.expires_at, b.reason, b.metadata, b.chain, clock_timestamp(),
       (d.debits_pending + sum(b.pending_delta) OVER debits)::bigint,
       (d.debits_posted + sum(b.posted_delta) OVER debits)::bigint,
       d.credits_pending, d.credits_posted,
       c.debits_pending, c.debits_posted,
       (c.credits_pending + sum(b.pending_delta) OVER credits)::bigint,
       (c.credits_posted + sum(b.posted_delta) OVER credits)::bigint
  FROM batch b JOIN debit d ON d.id = b.debit_account_id JOIN credit c ON c.id = b.credit_account_id
WINDOW debits AS (PARTITION BY b.debit_account_id ORDER BY b.n),
       credits AS (PARTITION BY b.credit_account_id ORDER BY b.n)
 ORDER BY b.n
RETURNING {", ".join(_TRANSFER_COLUMNS)}
"""


def _one_statement_applies(items: Sequence[_Resolved]) -> bool:
    """Whether `_apply_set` may apply a batch that `_pipelinable` allows: no account on both sides.
    Then every total of every account only grows through the batch (posted and pending transfers
    add), so the limits hold after each transfer exactly when they hold after the last, which is
    what the CHECK constraints see; and each account row is updated once."""
    debited = {item.debit_account_id for item in items}
    return debited.isdisjoint(item.credit_account_id for item in items)


def _apply_set(items: Sequence[_Resolved], accounts: dict[int, dict[str, Any]], now: datetime) -> list[Transfer]:
    """Apply new transfers that `_one_statement_applies` allows with one statement (`_APPLY_SET_SQL`),
    in one round trip, recording the same totals after each transfer as `_apply` one by one. If the
    database refuses it (an overdraw, a key inserted meanwhile, an overflow), `_PipelineRefused` is
    raised, as for the pipeline: the caller rolls the batch back and applies it one by one, which
    raises the exact typed error."""
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "key", "debit_account_id", "credit_account_id", "amount_fen", "kind", "timeout_s", "expires_at",
            "reason", "metadata", "chain", "pending_delta", "posted_delta",
        )
    }  # fmt: skip
    for item in items:
        params = _apply_params(item, now)
        for name in (
            "key", "debit_account_id", "credit_account_id", "amount_fen", "kind", "timeout_s", "expires_at",
            "reason", "metadata", "chain",
        ):  # fmt: skip
            columns[name].append(params[name])
        # Posted and pending transfers move the debit's debits and the credit's credits alike.
        columns["pending_delta"].append(params["debits_pending_delta"])
        columns["posted_delta"].append(params["debits_posted_delta"])
    try:
        with _cursor() as cursor:
            cursor.execute(_APPLY_SET_SQL, columns, prepare=True)
            rows = cursor.fetchall()
    except psycopg.Error as error:
        raise _PipelineRefused from error
    by_key = {transfer.key: transfer for transfer in map(_transfer_from_row, rows)}
    assert len(by_key) == len(items), "the transfers' accounts were locked, so each found its rows"
    transfers = [by_key[item.request.key] for item in items]
    for item, transfer in zip(items, transfers, strict=True):  # The last transfer on each leaves its totals.
        for account_id, prefix in (
            (item.debit_account_id, "debit_account_"),
            (item.credit_account_id, "credit_account_"),
        ):
            for total in _TOTALS:
                accounts[account_id][total] = getattr(transfer, prefix + total)
    return transfers


def _pipelinable(items: Sequence[_Resolved], existing: Mapping[str, Transfer], accounts: Mapping[int, Any]) -> bool:
    """Whether every transfer of the batch is new, posted or pending, between open accounts: then no
    check of `_create_batch`'s loop can refuse one, and only the database can."""
    return len(items) > 1 and all(
        item.request.key not in existing
        and item.pending is None
        and not accounts[item.debit_account_id]["closed"]
        and not accounts[item.credit_account_id]["closed"]
        for item in items
    )


def _create_batch(requests: Sequence[TransferRequest], now: datetime, *, pipelined: bool) -> list[TransferOutcome]:
    pending_ids = sorted({r.pending_id for r in requests if r.pending_id is not None})
    pendings = {t.id: t for t in _fetch_transfers("id", pending_ids)} if pending_ids else {}
    items = _resolve(requests, pendings)

    accounts, existing, resolutions = _lock_and_look_up(
        {i.debit_account_id for i in items} | {i.credit_account_id for i in items},
        [r.key for r in requests],
        pending_ids,
    )

    if pipelined and _pipelinable(items, existing, accounts):
        apply = _apply_set if _one_statement_applies(items) else _apply_pipelined
        return [TransferOutcome(transfer, created=True) for transfer in apply(items, accounts, now)]
    outcomes = []
    for item in items:
        request = item.request
        found = existing.get(request.key)
        if found is not None:
            difference = _first_difference(found, item)
            if difference is not None:
                raise TransferExistsWithDifferentFields(key=request.key, field=difference)
            outcomes.append(TransferOutcome(found, created=False))
            continue
        _check_pending(item, resolutions, now)
        if request.kind != TransferKind.VOID_PENDING:
            for account_id in (item.debit_account_id, item.credit_account_id):
                if accounts[account_id]["closed"]:
                    raise AccountClosed(
                        f"Account {accounts[account_id]['code']} is closed.", account_code=accounts[account_id]["code"]
                    )
        transfer = _apply(item, accounts, now)
        if item.pending is not None:
            resolutions[item.pending.id] = _resolution_word(transfer)
        outcomes.append(TransferOutcome(transfer, created=True))
    return outcomes


def _refuse_archived_keys(keys: Sequence[str]) -> None:
    """A key taken by a transfer of an archived chain stays taken (`TransferKey` keeps it), though the
    transfer is no longer there to return: say so rather than race for it again."""
    taken = (
        TransferKey.objects.filter(key__in=keys, chain__in=ChainArchive.objects.values("chain"))
        .values_list("key", "chain")
        .first()
    )
    if taken is not None:
        raise HistoryArchived(f"Key {taken[0]!r} is a transfer's of archived chain {taken[1]}.")


def transfers_create(*, transfers: Sequence[TransferRequest], now: datetime | None = None) -> list[TransferOutcome]:
    """Apply a batch of transfers atomically, in order; return one outcome per request.

    `now` is the moment against which pending timeouts are judged (default: the current time).
    Raises `InvalidTransfer` for a malformed request and another `LedgerError` for a refused one;
    either way nothing is written.
    """
    requests = list(transfers)
    if not 0 < len(requests) <= TRANSFERS_PER_BATCH_MAX:
        raise InvalidTransfer(f"A batch holds 1 to {TRANSFERS_PER_BATCH_MAX} transfers.", field="transfers")
    for request in requests:
        _validate(request)
    keys = [r.key for r in requests]
    if len(set(keys)) != len(keys):
        raise InvalidTransfer("Each transfer of a batch needs its own key.", field="key")
    now = now or timezone.now()
    pipelined = True
    attempts = 0
    while attempts < KEY_RACE_ATTEMPTS_MAX:
        try:
            with transaction.atomic():
                return _create_batch(requests, now, pipelined=pipelined)
        except _PipelineRefused:
            pipelined = False  # Once more, one by one: that way says exactly what was refused.
        except _KeyRace:
            _refuse_archived_keys(keys)
            attempts += 1
    raise AssertionError("a key kept racing after its insert had committed")


def transfer_create(*, transfer: TransferRequest, now: datetime | None = None) -> TransferOutcome:
    """Apply one transfer: `transfers_create` with a batch of one."""
    return transfers_create(transfers=[transfer], now=now)[0]


@dataclass(frozen=True)
class SentTransfer:
    """A transfer sent by `transfer_send`; `result()` once the pipeline has been waited on."""

    cursor: psycopg.Cursor[Any]

    def result(self) -> Transfer:
        """The transfer; raises what the pipeline raised when it was not applied."""
        row = self.cursor.fetchone()
        assert row is not None, "the statement fails rather than apply nothing"
        return _transfer_from_row(row)


def transfer_send(*, transfer: TransferRequest, now: datetime) -> SentTransfer:
    """Send a new posted or pending transfer without waiting: its two accounts locked in id order,
    then the one statement that applies it, both queued on the caller's pipeline
    (`config.db.pipeline()`), in the caller's transaction.

    The fast path of `transfers_create` for a hot path that has already made the transfer's key its
    own (a key built from a row it is inserting). It does not look the key up first and does not
    retry: if the key exists, or an account is over its limit, the pipeline raises when it is waited
    on, and if an account is closed the statement fails too. In every such case the caller rolls back to the
    savepoint it took before sending and calls `transfers_create`, which answers exactly (the
    existing transfer, or the refusal). Only posted and pending transfers are sent this way.
    """
    _validate(transfer)
    if transfer.kind not in (TransferKind.POSTED, TransferKind.PENDING):
        raise InvalidTransfer("Only a posted or pending transfer is sent without waiting.", field="kind")
    assert transfer.debit_account_id is not None and transfer.credit_account_id is not None
    assert transfer.amount_fen is not None
    item = _Resolved(
        transfer,
        transfer.debit_account_id,
        transfer.credit_account_id,
        transfer.amount_fen,
        None,
        transfer.chain or DEFAULT_CHAIN,
    )
    connection.ensure_connection()
    raw = connection.connection
    cursor = psycopg.Cursor(raw)  # It keeps the answer of the last statement: the transfer.
    cursor.execute(_LOCK_SQL, [sorted({item.debit_account_id, item.credit_account_id})], prepare=True)
    cursor.execute(_APPLY_IF_OPEN_SQL, _apply_params(item, now), prepare=True)
    return SentTransfer(cursor)


def accounts_lock(*, account_ids: Iterable[int]) -> None:
    """Lock the accounts in id order until the transaction ends, as a transfer locks its two: for a
    caller that then makes several transfers on them in one transaction, so that it never holds some
    of them while it waits for another (`coupons.services.redemptions.redemptions_batch_prepare`)."""
    with _cursor() as cursor:
        cursor.execute(_LOCK_SQL, [sorted(set(account_ids))], prepare=True)


def pending_transfers_expire(*, now: datetime | None = None, limit: int = EXPIRE_BATCH_SIZE) -> int:
    """Void pending transfers whose timeout has passed; return how many this call voided.

    Each void has the key `expire:<pending id>`, so two runs at once void each hold once, and a
    post or void that wins the race simply leaves nothing to expire.
    """
    now = now or timezone.now()
    expired_ids = list(
        Transfer.objects.filter(kind=TransferKind.PENDING, expires_at__lte=now)
        .exclude(id__in=Transfer.objects.filter(pending__isnull=False).values("pending_id"))
        .order_by("expires_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    voided = 0
    for pending_id in expired_ids:
        request = TransferRequest.void_pending(key=f"expire:{pending_id}", pending_id=pending_id, reason=EXPIRED_REASON)
        try:
            outcome = transfer_create(transfer=request, now=now)
        except PendingTransferAlreadyResolved:
            continue
        voided += outcome.created
    return voided
