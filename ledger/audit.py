"""The ledger's part of the audit: the checks that read only ledger tables.

Each returns its findings (the offending rows, at most `findings_max`) and how many rows it
examined; it holds when it examined what it had to and found nothing. Knows nothing of what the
accounts are for: the coupon audit (coupons/services/audit.py) runs `LEDGER_CHECKS` first, under
these names, then its own checks.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Protocol

from django.db import connection

from ledger.chain import chain_findings

Finding = dict[str, Any]


class LedgerCheck(Protocol):
    def __call__(self, *, findings_max: int) -> tuple[list[Finding], int]: ...


def _json_value(value: Any) -> Any:
    """Findings are stored as JSON: sums of fen come back as Decimal (whole numbers), times as datetimes."""
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def findings_of(sql: str, *, findings_max: int, params: list[Any] | None = None) -> list[Finding]:
    """At most `findings_max` rows of an audit query, as JSON-ready findings (the coupon audit's too)."""
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} LIMIT %s", [*(params or []), findings_max])
        assert cursor.description is not None
        columns = [c.name for c in cursor.description]
        return [{c: _json_value(v) for c, v in zip(columns, row, strict=True)} for row in cursor.fetchall()]


def _rows(sql: str, findings_max: int) -> list[Finding]:
    return findings_of(sql, findings_max=findings_max)


def count_of(sql: str) -> int:
    """How many rows an audit check examined: the first column of the query's one row."""
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
        return int(row[0]) if row else 0


_OPEN_PENDING = (
    "t.kind = 'pending' "
    "AND NOT EXISTS (SELECT 1 FROM ledger_transfer r WHERE r.pending_id = t.id AND r.chain = t.chain)"
)


def account_totals_findings(*, findings_max: int) -> tuple[list[Finding], int]:
    """Every account's four totals equal the sums of its transfers."""
    sql = f"""
        WITH legs AS (
            SELECT t.debit_account_id AS account_id,
                   CASE WHEN t.kind IN ('posted', 'post_pending') THEN t.amount_fen ELSE 0 END AS debits_posted,
                   0::bigint AS credits_posted,
                   CASE WHEN {_OPEN_PENDING} THEN t.amount_fen ELSE 0 END AS debits_pending,
                   0::bigint AS credits_pending
              FROM ledger_transfer t
            UNION ALL
            SELECT t.credit_account_id, 0,
                   CASE WHEN t.kind IN ('posted', 'post_pending') THEN t.amount_fen ELSE 0 END,
                   0,
                   CASE WHEN {_OPEN_PENDING} THEN t.amount_fen ELSE 0 END
              FROM ledger_transfer t
            UNION ALL
            -- What archived chains' transfers did, kept when they left (docs/ledger-history.md).
            SELECT x.account_id, x.debits_posted, x.credits_posted, x.debits_pending, x.credits_pending
              FROM ledger_archivedtotals x
        ), sums AS (
            SELECT account_id, sum(debits_posted) AS dp, sum(credits_posted) AS cp,
                   sum(debits_pending) AS dq, sum(credits_pending) AS cq
              FROM legs GROUP BY account_id
        )
        SELECT a.id AS account_id, a.code,
               a.debits_posted, coalesce(s.dp, 0) AS debits_posted_from_transfers,
               a.credits_posted, coalesce(s.cp, 0) AS credits_posted_from_transfers,
               a.debits_pending, coalesce(s.dq, 0) AS debits_pending_from_transfers,
               a.credits_pending, coalesce(s.cq, 0) AS credits_pending_from_transfers
          FROM ledger_account a LEFT JOIN sums s ON s.account_id = a.id
         WHERE (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)
               IS DISTINCT FROM (coalesce(s.dp, 0), coalesce(s.cp, 0), coalesce(s.dq, 0), coalesce(s.cq, 0))
         ORDER BY a.id
    """
    return _rows(sql, findings_max), count_of("SELECT count(*) FROM ledger_account")


def debits_equal_credits_findings(*, findings_max: int) -> tuple[list[Finding], int]:
    """Over all accounts, debits equal credits (posted and pending)."""
    sql = """
        SELECT sum(debits_posted) AS debits_posted, sum(credits_posted) AS credits_posted,
               sum(debits_pending) AS debits_pending, sum(credits_pending) AS credits_pending
          FROM ledger_account
        HAVING sum(debits_posted) <> sum(credits_posted) OR sum(debits_pending) <> sum(credits_pending)
    """
    return _rows(sql, findings_max), count_of("SELECT count(*) FROM ledger_account")


def limited_accounts_overdrawn_findings(*, findings_max: int) -> tuple[list[Finding], int]:
    """No total is negative and no limited account passes its limit (the CHECK constraints' backstop)."""
    sql = """
        SELECT id AS account_id, code, debits_pending, debits_posted, credits_pending, credits_posted
          FROM ledger_account
         WHERE least(debits_pending, debits_posted, credits_pending, credits_posted) < 0
            OR (debits_must_not_exceed_credits AND debits_pending + debits_posted > credits_posted)
            OR (credits_must_not_exceed_debits AND credits_pending + credits_posted > debits_posted)
         ORDER BY id
    """
    return _rows(sql, findings_max), count_of("SELECT count(*) FROM ledger_account")


def hash_chain_findings(*, findings_max: int) -> tuple[list[Finding], int]:
    """Every chain's links recompute, with no gap, its head where the seals end, and no old transfer unsealed.

    An archived chain (`manage.py ledger_archive`) is no longer in the database to verify: it is
    not a failure, and `archived_chains` names it with its manifest's hash."""
    findings = chain_findings()
    problems = [
        {"kind": kind, "rows": findings[kind]}
        for kind in ("broken_links", "sequence_gaps", "head_mismatch", "unsealed_old_transfers")
        if findings[kind]
    ][:findings_max]
    return problems, count_of("SELECT count(*) FROM ledger_transfer")


LEDGER_CHECKS: Final[list[tuple[str, LedgerCheck]]] = [
    ("account_totals_equal_transfers", account_totals_findings),
    ("debits_equal_credits", debits_equal_credits_findings),
    ("no_limited_account_overdrawn", limited_accounts_overdrawn_findings),
    ("hash_chain_intact", hash_chain_findings),
]


def archived_chains() -> list[Finding]:
    """The chains archived out of the database, each with the sha256 of its dump's manifest (what the
    audit reports for them instead of verifying them; verify the dump with the manifest)."""
    return findings_of(
        "SELECT chain, transfers, head_sequence, head_link, manifest_sha256, dropped FROM ledger_chainarchive "
        "ORDER BY chain",
        findings_max=10_000,
    )
