"""The tamper-evident hash chain over transfers.

Each seal's link is `sha256(previous link || canonical content)`, where the canonical content is
the SQL expression `CANONICAL` below: every column of the transfer, in a fixed order and format.
Sealing and verifying both render transfers with that one expression, so they cannot drift apart.
The sealer chains the links in Python (a chain is sequential; a recursive SQL statement over a
batch was quadratic); verifying is a set-based comparison of each link with the one before it (a
window function in PostgreSQL's own sha256), so a million transfers verify in seconds. Any
changed byte of a transfer or a link, a deleted or inserted seal, or a moved transfer breaks the
comparison at that point.
"""

import hashlib
from datetime import datetime, timedelta
from typing import Any, Final

from django.db import connection, transaction
from django.utils import timezone

from ledger.models import ChainHead, TransferSeal

SEAL_BATCH_SIZE: Final = 10_000
# No ledger transaction stays open this long (the services hold locks for milliseconds), so a
# transfer older than this has committed or never will: the sealer may move its watermark past it.
WATERMARK_LAG_S: Final = 120
FINDINGS_MAX: Final = 50

_TIME = "to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
CANONICAL: Final = (
    "concat_ws('|', t.id, t.key, t.debit_account_id, t.credit_account_id, t.amount_fen, t.kind, "
    "coalesce(t.pending_id::text, ''), coalesce(t.timeout_s::text, ''), "
    f"coalesce({_TIME.format('t.expires_at')}, ''), t.reason, t.metadata::text, {_TIME.format('t.created_at')}, "
    "t.debit_account_debits_pending, t.debit_account_debits_posted, t.debit_account_credits_pending, "
    "t.debit_account_credits_posted, t.credit_account_debits_pending, t.credit_account_debits_posted, "
    "t.credit_account_credits_pending, t.credit_account_credits_posted)"
)
_LINK = "encode(sha256(convert_to({prev} || {content}, 'UTF8')), 'hex')"

_UNSEALED_SQL = f"""
SELECT t.id, {CANONICAL}
  FROM ledger_transfer t
 WHERE t.id > %(watermark)s
   AND NOT EXISTS (SELECT 1 FROM ledger_transferseal s WHERE s.transfer_id = t.id)
 ORDER BY t.id
 LIMIT %(limit)s
"""

_WATERMARK_SQL = """
SELECT coalesce(
    (SELECT min(t.id) - 1 FROM ledger_transfer t
      WHERE t.id > %(watermark)s
        AND (t.created_at > %(horizon)s
             OR NOT EXISTS (SELECT 1 FROM ledger_transferseal s WHERE s.transfer_id = t.id))),
    (SELECT coalesce(max(id), %(watermark)s) FROM ledger_transfer WHERE id > %(watermark)s)
)
"""


def ledger_seal(*, limit: int = SEAL_BATCH_SIZE, now: datetime | None = None) -> int:
    """Extend the chain over transfers committed since the last run; return how many were sealed.

    Safe to run concurrently (the head row's lock queues sealers) and to kill at any point (the
    batch and the head move in one transaction).
    """
    now = now or timezone.now()
    with transaction.atomic():
        ChainHead.objects.get_or_create(pk=1)
        head = ChainHead.objects.select_for_update().get(pk=1)
        with connection.cursor() as cursor:
            # PostgreSQL renders each transfer's canonical text (the expression the audit uses);
            # the links are chained here, in order: sha256 over the same bytes as the audit's.
            cursor.execute(_UNSEALED_SQL, {"watermark": head.watermark_id, "limit": limit})
            seals = []
            for transfer_id, content in cursor.fetchall():
                head.last_sequence += 1
                head.last_link = hashlib.sha256((head.last_link + content).encode()).hexdigest()
                seals.append(TransferSeal(transfer_id=transfer_id, sequence=head.last_sequence, link=head.last_link))
            TransferSeal.objects.bulk_create(seals, batch_size=1_000)
            cursor.execute(
                _WATERMARK_SQL,
                {"watermark": head.watermark_id, "horizon": now - timedelta(seconds=WATERMARK_LAG_S)},
            )
            row = cursor.fetchone()
            assert row is not None
            head.watermark_id = max(head.watermark_id, int(row[0]))
        head.save()
        return len(seals)


def chain_findings(*, now: datetime | None = None) -> dict[str, Any]:
    """Verify the whole chain; return what is wrong (empty lists when it is intact).

    - `broken_links`: seals whose link is not sha256(previous link || the transfer as it is now);
    - `sequence_gaps`: sequences that do not run 1, 2, 3, … (a seal deleted or inserted);
    - `head_mismatch`: the head does not point at the last seal;
    - `unsealed_old_transfers`: transfers older than the watermark lag with no seal.
    """
    now = now or timezone.now()
    findings: dict[str, Any] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT sequence, transfer_id FROM (
                SELECT s.sequence, s.transfer_id, s.link,
                       {_LINK.format(prev="coalesce(lag(s.link) OVER (ORDER BY s.sequence), '')", content=CANONICAL)}
                         AS expected
                  FROM ledger_transferseal s LEFT JOIN ledger_transfer t ON t.id = s.transfer_id
            ) links
             WHERE expected IS DISTINCT FROM link
             ORDER BY sequence LIMIT {FINDINGS_MAX}
            """
        )
        findings["broken_links"] = [{"sequence": s, "transfer_id": t} for s, t in cursor.fetchall()]
        cursor.execute(
            f"""
            SELECT sequence FROM (
                SELECT sequence, row_number() OVER (ORDER BY sequence) AS expected FROM ledger_transferseal
            ) numbered WHERE sequence <> expected ORDER BY sequence LIMIT {FINDINGS_MAX}
            """
        )
        findings["sequence_gaps"] = [s for (s,) in cursor.fetchall()]
        cursor.execute(
            "SELECT count(*), coalesce(max(sequence), 0), "
            "(SELECT link FROM ledger_transferseal ORDER BY sequence DESC LIMIT 1) FROM ledger_transferseal"
        )
        count, last_sequence, last_link = cursor.fetchone() or (0, 0, None)
        head = ChainHead.objects.filter(pk=1).first()
        head_state = (head.last_sequence, head.last_link) if head else (0, "")
        findings["head_mismatch"] = (
            []
            if head_state == (last_sequence, last_link or "")
            else [{"head": list(head_state), "last_seal": [last_sequence, last_link]}]
        )
        cursor.execute(
            f"""
            SELECT t.id FROM ledger_transfer t
             WHERE t.created_at < %s
               AND NOT EXISTS (SELECT 1 FROM ledger_transferseal s WHERE s.transfer_id = t.id)
             ORDER BY t.id LIMIT {FINDINGS_MAX}
            """,
            [now - timedelta(seconds=WATERMARK_LAG_S)],
        )
        findings["unsealed_old_transfers"] = [t for (t,) in cursor.fetchall()]
        findings["seals_examined"] = count
    return findings
