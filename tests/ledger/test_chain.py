"""The hash chain: sealing extends it, any tampering is found, concurrent sealers seal once."""

from datetime import timedelta

import pgtrigger
import pytest
from django.db import connection
from django.utils import timezone

from ledger.chain import WATERMARK_LAG_S, chain_findings, ledger_seal
from ledger.models import ChainHead, TransferSeal
from ledger.services import TransferRequest, account_create, transfer_create

pytestmark = pytest.mark.django_db


def later():
    """A moment by which every transfer made so far is old enough to have to be sealed."""
    return timezone.now() + timedelta(seconds=WATERMARK_LAG_S + 60)


def make_transfers(count: int) -> None:
    source, sink = account_create(code="chain:source"), account_create(code="chain:sink")
    for i in range(count):
        transfer_create(
            transfer=TransferRequest.posted(
                key=f"chain-{i}",
                debit_account_id=source.pk,
                credit_account_id=sink.pk,
                amount_fen=100 + i,
                reason="test",
                metadata={"n": i},
            )
        )


def intact(findings: dict) -> bool:
    return not any(findings[k] for k in ("broken_links", "sequence_gaps", "head_mismatch", "unsealed_old_transfers"))


def test_sealing_extends_the_chain_and_it_verifies():
    make_transfers(5)
    assert ledger_seal() == 5
    assert ledger_seal() == 0  # Nothing new.
    findings = chain_findings(now=later())
    assert intact(findings), findings
    assert findings["seals_examined"] == 5
    assert list(TransferSeal.objects.order_by("sequence").values_list("sequence", flat=True)) == [1, 2, 3, 4, 5]
    head = ChainHead.objects.get()
    assert head.last_sequence == 5 and len(head.last_link) == 64


def test_a_batch_limit_seals_in_several_runs_with_the_same_links():
    make_transfers(7)
    assert [ledger_seal(limit=3) for _ in range(4)] == [3, 3, 1, 0]
    assert intact(chain_findings(now=later()))


def tamper(sql: str, params: list | None = None) -> None:
    triggers = ("ledger.Transfer:transfer_insert_only", "ledger.TransferSeal:seal_insert_only")
    with pgtrigger.ignore(*triggers), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(sql, params or [])


@pytest.mark.parametrize(
    ("sql", "finding"),
    [
        ("UPDATE ledger_transfer SET amount_fen = amount_fen + 1 WHERE key = 'chain-2'", "broken_links"),
        ("UPDATE ledger_transfer SET metadata = '{\"n\": 99}' WHERE key = 'chain-2'", "broken_links"),
        (
            "UPDATE ledger_transfer SET created_at = created_at + interval '1 microsecond' WHERE key = 'chain-3'",
            "broken_links",
        ),
        ("UPDATE ledger_transferseal SET link = md5(link) || md5(link) WHERE sequence = 2", "broken_links"),
        ("DELETE FROM ledger_transferseal WHERE sequence = 3", "sequence_gaps"),
    ],
)
def test_any_tampering_is_found(sql, finding):
    make_transfers(5)
    ledger_seal()
    tamper(sql)
    findings = chain_findings(now=later())
    assert findings[finding], findings


def test_an_unsealed_old_transfer_is_found():
    make_transfers(2)
    findings = chain_findings(now=later())
    assert len(findings["unsealed_old_transfers"]) == 2


@pytest.mark.django_db(transaction=True)
def test_sealers_racing_with_writers_seal_each_transfer_once():
    from tests.concurrency import race

    source, sink = account_create(code="race:source"), account_create(code="race:sink")

    def write(i: int) -> object:
        return transfer_create(
            transfer=TransferRequest.posted(
                key=f"race-{i}", debit_account_id=source.pk, credit_account_id=sink.pk, amount_fen=1, reason="test"
            )
        )

    race([(lambda i=i: write(i)) if i % 2 else ledger_seal for i in range(32)])
    while ledger_seal():
        pass
    findings = chain_findings(now=later())
    assert intact(findings), findings
    assert findings["seals_examined"] == 16


def test_each_chain_runs_on_its_own():
    source, sink = account_create(code="multi:source"), account_create(code="multi:sink")
    for i, chain in enumerate(["2026", "2027", "2026", None, "2027", "2026"]):
        transfer_create(
            transfer=TransferRequest.posted(
                key=f"multi-{i}",
                debit_account_id=source.pk,
                credit_account_id=sink.pk,
                amount_fen=1,
                reason="t",
                chain=chain,
            )
        )
    assert ledger_seal() == 6
    sequences = {}
    for seal in TransferSeal.objects.order_by("chain", "sequence"):
        sequences.setdefault(seal.chain, []).append(seal.sequence)
    assert sequences == {"2026": [1, 2, 3], "2027": [1, 2], "ledger": [1]}
    assert {h.chain: h.last_sequence for h in ChainHead.objects.all()} == {"2026": 3, "2027": 2, "ledger": 1}
    assert intact(chain_findings(now=later()))
    # Tampering in one chain is reported in that chain.
    tamper("UPDATE ledger_transfer SET amount_fen = 2 WHERE key = 'multi-1'")
    broken = chain_findings(now=later())["broken_links"]
    assert [(b["chain"], b["sequence"]) for b in broken] == [("2027", 1)]


def test_a_resolution_stays_on_its_holds_chain():
    from ledger.errors import InvalidTransfer

    source, sink = account_create(code="hold:source"), account_create(code="hold:sink")
    pending = transfer_create(
        transfer=TransferRequest.pending(
            key="hold", debit_account_id=source.pk, credit_account_id=sink.pk, amount_fen=5, reason="t", chain="2026"
        )
    ).transfer
    post = transfer_create(
        transfer=TransferRequest.post_pending(key="post", pending_id=pending.pk, reason="t")
    ).transfer
    assert post.chain == "2026"
    with pytest.raises(InvalidTransfer):
        transfer_create(
            transfer=TransferRequest(key="void", kind="void_pending", pending_id=pending.pk, reason="t", chain="2027")
        )
