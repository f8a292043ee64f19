"""The ledger's part of the audit (ledger/audit.py), on the ledger alone: no coupon table involved."""

import pytest
from django.db import connection

from ledger.audit import LEDGER_CHECKS
from ledger.chain import ledger_seal
from ledger.services import TransferRequest, transfer_create

pytestmark = pytest.mark.django_db


def run(findings_max: int = 50) -> dict[str, tuple[list, int]]:
    return {name: check(findings_max=findings_max) for name, check in LEDGER_CHECKS}


def test_a_sound_ledger_passes_each_check_having_examined_it(limited, sink):
    transfer_create(
        transfer=TransferRequest.pending(
            key="h", debit_account_id=limited.pk, credit_account_id=sink.pk, amount_fen=200, reason="hold"
        )
    )
    ledger_seal()
    results = run()
    assert list(results) == [
        "account_totals_equal_transfers",
        "debits_equal_credits",
        "no_limited_account_overdrawn",
        "hash_chain_intact",
    ]
    assert all(findings == [] for findings, _ in results.values()), results
    assert results["account_totals_equal_transfers"][1] == 3  # source, limited, sink
    assert results["hash_chain_intact"][1] == 2


def test_a_changed_total_is_found_by_the_replay_and_the_sums(limited, sink):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_account SET credits_posted = credits_posted + 7 WHERE id = %s", [sink.pk])
    results = run()
    (finding,) = results["account_totals_equal_transfers"][0]
    assert (finding["account_id"], finding["credits_posted"], finding["credits_posted_from_transfers"]) == (
        sink.pk,
        7,
        0,
    )
    assert results["debits_equal_credits"][0] != []
    assert results["no_limited_account_overdrawn"][0] == []


def test_findings_are_capped(limited, sink, source):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_account SET credits_posted = credits_posted + 1")
    findings, examined = run(findings_max=2)["account_totals_equal_transfers"]
    assert (len(findings), examined) == (2, 3)
