"""The tamper-evident hash chain over transfers.

There is a chain per chain key (the coupon program keeps one per program year). Each seal's link
is `sha256(previous link of its chain || canonical content)`, where the canonical content is
the SQL expression `CANONICAL` below: every column of the transfer, in a fixed order and format.
Sealing and verifying both render transfers with that one expression, so they cannot drift apart.
The sealer chains the links in Python (a chain is sequential; a recursive SQL statement over a
batch was quadratic); verifying is a set-based comparison of each link with the one before it (a
window function in PostgreSQL's own sha256), so a million transfers verify in seconds. Any
changed byte of a transfer or a link, a deleted or inserted seal, or a moved transfer breaks the
comparison at that point.
"""

import hashlib
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, Final

from django.db import connection, transaction
from django.utils import timezone

from ledger.models import DEFAULT_CHAIN, ChainHead, TransferSeal

SEAL_BATCH_SIZE: Final = 10_000
# No ledger transaction stays open this long (the services hold locks for milliseconds), so a
# transfer older than this has committed or never will: the sealer may move its watermark past it.
WATERMARK_LAG_S: Final = 120
FINDINGS_MAX: Final = 50

_TIME = "to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
CANONICAL: Final = (
    "concat_ws('|', t.chain, t.id, t.key, t.debit_account_id, t.credit_account_id, t.amount_fen, t.kind, "
    "coalesce(t.pending_id::text, ''), coalesce(t.timeout_s::text, ''), "
    f"coalesce({_TIME.format('t.expires_at')}, ''), t.reason, t.metadata::text, {_TIME.format('t.created_at')}, "
    "t.debit_account_debits_pending, t.debit_account_debits_posted, t.debit_account_credits_pending, "
    "t.debit_account_credits_posted, t.credit_account_debits_pending, t.credit_account_debits_posted, "
    "t.credit_account_credits_pending, t.credit_account_credits_posted)"
)
_LINK = "encode(sha256(convert_to({prev} || {content}, 'UTF8')), 'hex')"

_UNSEALED_SQL = f"""
SELECT t.id, t.chain, {CANONICAL}
  FROM ledger_transfer t
 WHERE t.id > %(watermark)s
   AND NOT EXISTS (SELECT 1 FROM ledger_transferseal s WHERE s.transfer_id = t.id AND s.chain = t.chain)
 ORDER BY t.id
 LIMIT %(limit)s
"""

_WATERMARK_SQL = """
SELECT coalesce(
    (SELECT min(t.id) - 1 FROM ledger_transfer t
      WHERE t.id > %(watermark)s
        AND (t.created_at > %(horizon)s
             OR NOT EXISTS (SELECT 1 FROM ledger_transferseal s WHERE s.transfer_id = t.id AND s.chain = t.chain))),
    (SELECT coalesce(max(id), %(watermark)s) FROM ledger_transfer WHERE id > %(watermark)s)
)
"""


def ledger_seal(*, limit: int = SEAL_BATCH_SIZE, now: datetime | None = None) -> int:
    """Extend each chain over its transfers committed since the last run; return how many were sealed.

    Safe to run concurrently (every sealer locks the default chain's head first, then the heads
    it extends in chain order) and to kill at any point (seals and heads move in one transaction).
    """
    now = now or timezone.now()
    with transaction.atomic():
        ChainHead.objects.get_or_create(chain=DEFAULT_CHAIN)
        gate = ChainHead.objects.select_for_update().get(chain=DEFAULT_CHAIN)
        with connection.cursor() as cursor:
            # PostgreSQL renders each transfer's canonical text (the expression the audit uses);
            # the links are chained here, in order: sha256 over the same bytes as the audit's.
            cursor.execute(_UNSEALED_SQL, {"watermark": gate.watermark_id, "limit": limit})
            by_chain: dict[str, list[tuple[int, str]]] = defaultdict(list)
            for transfer_id, chain, content in cursor.fetchall():
                by_chain[chain].append((transfer_id, content))
        seals = []
        for chain in sorted(by_chain):
            if chain == DEFAULT_CHAIN:
                head = gate
            else:
                ChainHead.objects.get_or_create(chain=chain)
                head = ChainHead.objects.select_for_update().get(chain=chain)
            for transfer_id, content in by_chain[chain]:
                head.last_sequence += 1
                head.last_link = hashlib.sha256((head.last_link + content).encode()).hexdigest()
                seals.append(
                    TransferSeal(transfer_id=transfer_id, chain=chain, sequence=head.last_sequence, link=head.last_link)
                )
            if head is not gate:
                head.save(update_fields=["last_sequence", "last_link"])
        TransferSeal.objects.bulk_create(seals, batch_size=1_000)
        with connection.cursor() as cursor:
            cursor.execute(
                _WATERMARK_SQL,
                {"watermark": gate.watermark_id, "horizon": now - timedelta(seconds=WATERMARK_LAG_S)},
            )
            row = cursor.fetchone()
            assert row is not None
            gate.watermark_id = max(gate.watermark_id, int(row[0]))
        gate.save()
        return len(seals)


def chain_findings(*, now: datetime | None = None, chain: str | None = None) -> dict[str, Any]:
    """Verify every chain from its start, or only `chain`; return what is wrong (empty lists when all
    are intact). With `chain`, PostgreSQL reads that chain's partitions only.

    - `broken_links`: seals whose link is not sha256(previous link of its chain || the transfer as
      it is now), or whose chain is not its transfer's;
    - `sequence_gaps`: sequences that do not run 1, 2, 3, … within a chain (a seal deleted or inserted);
    - `head_mismatch`: a chain's head does not point at the chain's last seal;
    - `unsealed_old_transfers`: transfers older than the watermark lag with no seal.
    """
    now = now or timezone.now()
    findings: dict[str, Any] = {}
    # Every query below filters on its tables' chain column when one chain is asked for.
    params = {"chain": chain, "horizon": now - timedelta(seconds=WATERMARK_LAG_S)}
    only = "" if chain is None else "AND {0}.chain = %(chain)s"
    previous = "coalesce(lag(s.link) OVER (PARTITION BY s.chain ORDER BY s.sequence), '')"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT chain, sequence, transfer_id FROM (
                SELECT s.chain, s.sequence, s.transfer_id, s.link, t.chain AS transfer_chain,
                       {_LINK.format(prev=previous, content=CANONICAL)} AS expected
                  FROM ledger_transferseal s LEFT JOIN ledger_transfer t ON t.id = s.transfer_id AND t.chain = s.chain
                 WHERE true {only.format("s")}
            ) links
             WHERE expected IS DISTINCT FROM link OR transfer_chain IS DISTINCT FROM chain
             ORDER BY chain, sequence LIMIT {FINDINGS_MAX}
            """,
            params,
        )
        findings["broken_links"] = [{"chain": c, "sequence": s, "transfer_id": t} for c, s, t in cursor.fetchall()]
        cursor.execute(
            f"""
            SELECT chain, sequence FROM (
                SELECT chain, sequence, row_number() OVER (PARTITION BY chain ORDER BY sequence) AS expected
                  FROM ledger_transferseal s WHERE true {only.format("s")}
            ) numbered WHERE sequence <> expected ORDER BY chain, sequence LIMIT {FINDINGS_MAX}
            """,
            params,
        )
        findings["sequence_gaps"] = [{"chain": c, "sequence": s} for c, s in cursor.fetchall()]
        cursor.execute(
            f"""
            WITH last AS (
                SELECT DISTINCT ON (chain) chain, sequence, link FROM ledger_transferseal s
                 WHERE true {only.format("s")}
                 ORDER BY chain, sequence DESC
            )
            SELECT coalesce(h.chain, last.chain), h.last_sequence, h.last_link, last.sequence, last.link
              FROM ledger_chainhead h FULL JOIN last ON last.chain = h.chain
             WHERE NOT EXISTS (SELECT 1 FROM ledger_chainarchive a WHERE a.chain = h.chain)
               AND (coalesce(h.last_sequence, 0), coalesce(h.last_link, ''))
                   IS DISTINCT FROM (coalesce(last.sequence, 0), coalesce(last.link, ''))
               {"" if chain is None else "AND coalesce(h.chain, last.chain) = %(chain)s"}
             LIMIT {FINDINGS_MAX}
            """,
            params,
        )
        findings["head_mismatch"] = [
            {"chain": c, "head": [hs, hl], "last_seal": [ls, ll]} for c, hs, hl, ls, ll in cursor.fetchall()
        ]
        cursor.execute(
            f"""
            SELECT t.id FROM ledger_transfer t
             WHERE t.created_at < %(horizon)s {only.format("t")}
               AND NOT EXISTS (SELECT 1 FROM ledger_transferseal s WHERE s.transfer_id = t.id AND s.chain = t.chain)
             ORDER BY t.id LIMIT {FINDINGS_MAX}
            """,
            params,
        )
        findings["unsealed_old_transfers"] = [t for (t,) in cursor.fetchall()]
        cursor.execute(f"SELECT count(*) FROM ledger_transferseal s WHERE true {only.format('s')}", params)
        row = cursor.fetchone()
        findings["seals_examined"] = row[0] if row else 0
    return findings
