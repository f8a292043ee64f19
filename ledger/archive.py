"""Archiving a closed chain: its partitions leave the database for a dump on disk.

`chain_archive` (run by `manage.py ledger_archive`) takes one chain whose owner says it may go (the
setting `LEDGER_ARCHIVE_CHECK` names a callable that answers why not, or None: the ledger knows
nothing of program years; the coupon program's answer is `coupons.services.archive`), and:

1. seals every transfer still unsealed;
2. from one snapshot, without locks (a closed chain's rows do not change): refuses while the chain
   holds an open hold (a pending transfer neither posted nor voided), has a transfer unsealed, or
   does not verify from its start; then dumps its transfers and seals as gzip CSV files;
3. in one short transaction under the ledger tables' locks: proves the chain's rows and head are
   what was dumped, keeps what the chain did to each account (`ArchivedTotals`: the sums the audit
   adds to the live transfers', and each account's totals after its last transfer of the chain,
   which `account_balance_at` answers from); forbids the chain in the DEFAULT partitions (a CHECK
   constraint, so no transfer can be written to an archived chain); detaches the chain's partitions
   of `ledger_transfer` and `ledger_transferseal`; writes the manifest (rows, first and last id, the
   chain's head, the files' sha256); records the `ChainArchive`; and with `drop` drops the detached
   tables. A failure anywhere rolls it back (a plain DETACH PARTITION is transactional) and removes
   the files the attempt wrote.

A chain with rows in the DEFAULT partition is refused before anything (part of it would stay).

The keys of an archived chain stay in `ledger_transferkey`, so no later transfer can reuse one.
"""

import gzip
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from ledger.chain import SEAL_BATCH_SIZE, chain_findings, ledger_seal
from ledger.errors import ArchiveRefused
from ledger.models import ChainArchive, ChainHead
from ledger.partitions import chain_partition_of, chain_suffix, partition_name

ARCHIVE_LOCK_TIMEOUT: Final = "10s"
archive_log = logging.getLogger("ledger.archive")
TRANSFERS_FILE: Final = "transfers.csv.gz"
SEALS_FILE: Final = "seals.csv.gz"
MANIFEST_FILE: Final = "manifest.json"

_LEGS = """
    SELECT t.{side}_account_id AS account_id, t.created_at, t.id,
           {debit_posted} AS debits_posted, {credit_posted} AS credits_posted,
           {debit_pending} AS debits_pending, {credit_pending} AS credits_pending,
           t.{side}_account_debits_pending AS after_debits_pending,
           t.{side}_account_debits_posted AS after_debits_posted,
           t.{side}_account_credits_pending AS after_credits_pending,
           t.{side}_account_credits_posted AS after_credits_posted
      FROM {table} t
"""
_POSTED = "CASE WHEN t.kind IN ('posted', 'post_pending') THEN t.amount_fen ELSE 0 END"
# As the audit counts a hold (ledger/audit.py): open while nothing resolved it. None is open here
# (archiving refuses a chain with an open hold), so these are zero; the same sum keeps them honest.
_PENDING = (
    "CASE WHEN t.kind = 'pending' AND NOT EXISTS "
    "(SELECT 1 FROM {table} r WHERE r.pending_id = t.id) THEN t.amount_fen ELSE 0 END"
)
_LAST = "(array_agg({0} ORDER BY created_at DESC, id DESC))[1]"


def _archive_check() -> Callable[[str], str | None]:
    path = getattr(settings, "LEDGER_ARCHIVE_CHECK", None)
    if not path:
        raise ArchiveRefused("No LEDGER_ARCHIVE_CHECK is set: nothing can say the chain is closed and audited.")
    check: Callable[[str], str | None] = import_string(path)
    return check


def _one(sql: str, params: list[Any] | dict[str, Any] | None = None) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        return row[0] if row else None


def _copy_to(table: str, path: Path) -> str:
    """COPY the table, in id order, as CSV with a header into a gzip file; return the file's sha256."""
    order = "transfer_id" if table.startswith("ledger_transferseal") else "id"
    sql = f'COPY (SELECT * FROM "{table}" ORDER BY {order}) TO STDOUT WITH (FORMAT csv, HEADER)'
    with gzip.open(path, "wb") as out, connection.connection.cursor() as cursor, cursor.copy(sql) as copy:
        for block in copy:
            out.write(block)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows_of(transfers_table: str, seals_table: str) -> tuple[int, int | None, int | None, int]:
    """What the chain's partitions hold: transfers, their first and last id, seals."""
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT count(*), min(id), max(id), (SELECT count(*) FROM "{seals_table}") FROM "{transfers_table}"'
        )
        row = cursor.fetchone()
        assert row is not None
        return int(row[0]), row[1], row[2], int(row[3])


def chain_archive(*, chain: str, to: Path, drop: bool = False) -> ChainArchive:
    """Archive `chain` into the directory `to` (see the module's docstring); return its record.

    Raises `ArchiveRefused` saying why when it may not. Runs outside a transaction (it seals first).
    """
    if connection.in_atomic_block:
        raise RuntimeError("chain_archive runs outside a transaction.")
    refusal = _archive_check()(chain)
    if refusal is not None:
        raise ArchiveRefused(refusal)
    if ChainArchive.objects.filter(chain=chain).exists():
        raise ArchiveRefused(f"Chain {chain} is archived already.")
    transfers_table, seals_table = (chain_partition_of(t, chain) for t in ("ledger_transfer", "ledger_transferseal"))
    if transfers_table is None or seals_table is None:
        raise ArchiveRefused(
            f"Chain {chain} has no partitions of its own: its rows are in the DEFAULT partition "
            f"(`manage.py ledger_repartition --chain {chain}` moves them)."
        )
    if _one("SELECT EXISTS (SELECT 1 FROM ledger_transfer_default WHERE chain = %s)", [chain]):
        raise ArchiveRefused(f"Some of chain {chain}'s transfers are in the DEFAULT partition.")
    while ledger_seal(limit=SEAL_BATCH_SIZE) == SEAL_BATCH_SIZE:
        pass

    directory = to / f"ledger-{partition_name('chain', chain).removeprefix('chain_')}"
    directory.mkdir(parents=True, exist_ok=False)
    try:
        return _archive(chain, directory, transfers_table, seals_table, drop=drop)
    except BaseException:
        # Rolled back: the chain is attached as it was; what the attempt wrote is no archive.
        for written in directory.iterdir():
            written.unlink()
        directory.rmdir()
        raise


def _archive(chain: str, directory: Path, transfers_table: str, seals_table: str, *, drop: bool) -> ChainArchive:
    # 1. Verify and dump from one snapshot, without the locks: a closed chain's rows do not change
    #    (they are insert-only, and nothing writes to a closed year), and step 2 proves they did not.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        dumped = _rows_of(transfers_table, seals_table)
        transfers, _first_id, _last_id, seals = dumped
        # A seal names a transfer of its chain, once (its trigger and primary key): as many seals as
        # transfers is every transfer sealed.
        if seals != transfers:
            raise ArchiveRefused(f"Chain {chain} has {transfers - seals} transfers the sealer has not sealed.")
        open_holds = _one(
            f"""SELECT count(*) FROM "{transfers_table}" t WHERE t.kind = 'pending'
                   AND NOT EXISTS (SELECT 1 FROM "{transfers_table}" r WHERE r.pending_id = t.id)"""
        )
        if open_holds:
            raise ArchiveRefused(f"Chain {chain} holds {open_holds} open pending transfers: post or void them first.")
        findings = chain_findings(now=timezone.now(), chain=chain)
        problems = {k: findings[k] for k in ("broken_links", "sequence_gaps", "head_mismatch") if findings[k]}
        if problems:
            raise ArchiveRefused(f"Chain {chain} does not verify: {json.dumps(problems)[:500]}")
        head = ChainHead.objects.filter(chain=chain).first()
        head_sequence, head_link = (head.last_sequence, head.last_link) if head else (0, "")
        _copy_to(transfers_table, directory / TRANSFERS_FILE)
        _copy_to(seals_table, directory / SEALS_FILE)

    # 2. Under the locks, briefly: nothing changed since the dump, then keep the totals, detach, record.
    started = time.perf_counter()
    archive = _archive_locked(
        chain, directory, transfers_table, seals_table, dumped, (head_sequence, head_link), drop=drop
    )
    archive_log.info(
        "archived chain %s: %s transfers; the ledger's tables were locked %.1f s",
        chain,
        archive.transfers,
        time.perf_counter() - started,
    )
    return archive


def _archive_locked(
    chain: str,
    directory: Path,
    transfers_table: str,
    seals_table: str,
    dumped: tuple[int, int | None, int | None, int],
    head: tuple[int, str],
    *,
    drop: bool,
) -> ChainArchive:
    transfers, first_id, last_id, seals = dumped
    head_sequence, head_link = head
    transfers_sha256, seals_sha256 = (
        hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in (TRANSFERS_FILE, SEALS_FILE)
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{ARCHIVE_LOCK_TIMEOUT}'")
            # Every writer and sealer of every chain waits from here to the commit (DETACH needs this
            # lock, and CONCURRENTLY is refused beside a DEFAULT partition). No writer is for this
            # chain: it is closed.
            cursor.execute(
                "LOCK TABLE ledger_transfer, ledger_transferseal, ledger_transfer_default, "
                "ledger_transferseal_default IN ACCESS EXCLUSIVE MODE"
            )
        now_head = ChainHead.objects.filter(chain=chain).values_list("last_sequence", "last_link").first()
        if _rows_of(transfers_table, seals_table) != dumped or (now_head or (0, "")) != (head_sequence, head_link):
            raise ArchiveRefused(f"Chain {chain} changed while it was being dumped: run the archive again.")

        table = f'"{transfers_table}"'
        legs = " UNION ALL ".join(
            _LEGS.format(
                side=side,
                table=table,
                debit_posted=_POSTED if side == "debit" else "0",
                credit_posted=_POSTED if side == "credit" else "0",
                debit_pending=_PENDING.format(table=table) if side == "debit" else "0",
                credit_pending=_PENDING.format(table=table) if side == "credit" else "0",
            )
            for side in ("debit", "credit")
        )
        afters = ("after_debits_pending", "after_debits_posted", "after_credits_pending", "after_credits_posted")
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                WITH legs AS ({legs})
                INSERT INTO ledger_archivedtotals (chain, account_id, debits_posted, credits_posted, debits_pending,
                    credits_pending, first_at, last_at, last_id, {", ".join(afters)})
                SELECT %s, account_id, sum(debits_posted), sum(credits_posted), sum(debits_pending),
                       sum(credits_pending), min(created_at), max(created_at), {_LAST.format("id")},
                       {", ".join(_LAST.format(a) for a in afters)}
                  FROM legs GROUP BY account_id
                """,
                [chain],
            )
            # No transfer or seal of this chain can be written any more: it has no partition, and
            # the DEFAULT partitions refuse it.
            for parent in ("ledger_transfer", "ledger_transferseal"):
                cursor.execute(
                    f'ALTER TABLE {parent}_default ADD CONSTRAINT "{parent}_default_not_{chain_suffix(chain)}" '
                    "CHECK (chain <> %s)",
                    [chain],
                )
            cursor.execute(f'ALTER TABLE ledger_transferseal DETACH PARTITION "{seals_table}"')
            cursor.execute(f'ALTER TABLE ledger_transfer DETACH PARTITION "{transfers_table}"')
        manifest = {
            "chain": chain,
            "transfers": transfers,
            "seals": seals,
            "first_id": first_id,
            "last_id": last_id,
            "head": {"sequence": head_sequence, "link": head_link},
            "files": {TRANSFERS_FILE: transfers_sha256, SEALS_FILE: seals_sha256},
            "tables": {TRANSFERS_FILE: transfers_table, SEALS_FILE: seals_table},
            "archived_at": timezone.now().isoformat(),
        }
        encoded = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        (directory / MANIFEST_FILE).write_bytes(encoded)
        archive = ChainArchive.objects.create(
            chain=chain,
            transfers=transfers,
            first_id=first_id,
            last_id=last_id,
            head_sequence=head_sequence,
            head_link=head_link,
            manifest=manifest,
            manifest_sha256=hashlib.sha256(encoded).hexdigest(),
            dropped=drop,
        )
        if drop:
            with connection.cursor() as cursor:
                cursor.execute(f'DROP TABLE "{seals_table}"')
                cursor.execute(f'DROP TABLE "{transfers_table}"')
        return archive
