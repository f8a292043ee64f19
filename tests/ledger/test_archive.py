"""Archiving a closed chain (ledger/archive.py, `manage.py ledger_archive`): it refuses what its owner
refuses and what would leave part of the chain behind; once archived, the audit still verifies the
chains left, balances stay right, and nothing more can be written to the archived chain."""

import gzip
import hashlib
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection
from django.test import override_settings
from django.utils import timezone

from ledger.archive import MANIFEST_FILE, SEALS_FILE, TRANSFERS_FILE, chain_archive
from ledger.audit import LEDGER_CHECKS, archived_chains
from ledger.chain import WATERMARK_LAG_S, chain_findings, ledger_seal
from ledger.errors import ArchiveRefused, HistoryArchived
from ledger.models import ChainArchive, TransferKey
from ledger.partitions import chain_partition_of, chain_partitions_create
from ledger.selectors import account_balance, account_balance_at
from ledger.services import TransferRequest, account_create, transfer_create
from tests.ledger.test_partitions import NEW_CHAINS, clean_partitions  # noqa: F401 (a fixture)

CLOSED, OPEN = NEW_CHAINS[0], NEW_CHAINS[2]
ALLOW = "tests.ledger.test_archive.allow"


def allow(chain: str) -> str | None:
    return None


def refuse(chain: str) -> str | None:
    return f"program year of {chain} is open"


def later():
    return timezone.now() + timedelta(seconds=WATERMARK_LAG_S + 60)


def post(key, debit, credit, amount_fen, chain):
    return transfer_create(
        transfer=TransferRequest.posted(
            key=key,
            debit_account_id=debit.pk,
            credit_account_id=credit.pk,
            amount_fen=amount_fen,
            reason="t",
            chain=chain,
        )
    ).transfer


def ledger_checks_pass() -> dict:
    results = {name: check(findings_max=50) for name, check in LEDGER_CHECKS}
    return {name: findings for name, (findings, _examined) in results.items() if findings}


@pytest.fixture
def two_years(clean_partitions):  # noqa: F811
    """Two chains with partitions: CLOSED (a year with a hold posted and one voided) and OPEN after
    it; a shared account (a provider's) in both, and an account of each year alone."""
    for chain in (CLOSED, OPEN):
        assert chain_partitions_create(chain=chain)
    fund = account_create(code="arch:fund")
    closed_pool = account_create(code="arch:pool:closed", debits_must_not_exceed_credits=True)
    open_pool = account_create(code="arch:pool:open", debits_must_not_exceed_credits=True)
    provider = account_create(code="arch:provider")
    post("arch-open-closed", fund, closed_pool, 10_000, CLOSED)
    post("arch-pay-1", closed_pool, provider, 1_000, CLOSED)
    hold = transfer_create(
        transfer=TransferRequest.pending(
            key="arch-hold",
            debit_account_id=closed_pool.pk,
            credit_account_id=provider.pk,
            amount_fen=700,
            reason="hold",
            chain=CLOSED,
        )
    ).transfer
    transfer_create(
        transfer=TransferRequest.post_pending(key="arch-capture", pending_id=hold.pk, amount_fen=500, reason="c")
    )
    hold2 = transfer_create(
        transfer=TransferRequest.pending(
            key="arch-hold-2",
            debit_account_id=closed_pool.pk,
            credit_account_id=provider.pk,
            amount_fen=300,
            reason="hold",
            chain=CLOSED,
        )
    ).transfer
    transfer_create(transfer=TransferRequest.void_pending(key="arch-void", pending_id=hold2.pk, reason="v"))
    between = timezone.now()
    post("arch-open-open", fund, open_pool, 20_000, OPEN)
    post("arch-pay-2", open_pool, provider, 2_000, OPEN)
    ledger_seal()
    return {"fund": fund, "closed_pool": closed_pool, "open_pool": open_pool, "provider": provider, "between": between}


@override_settings(LEDGER_ARCHIVE_CHECK="tests.ledger.test_archive.refuse")
def test_archive_refuses_a_chain_its_owner_has_not_closed_and_audited(two_years, tmp_path):
    with pytest.raises(CommandError, match=r"program year of .* is open"):
        call_command("ledger_archive", "--chain", CLOSED, "--to", str(tmp_path))
    assert chain_partition_of("ledger_transfer", CLOSED) is not None
    assert not ChainArchive.objects.exists()


@override_settings(LEDGER_ARCHIVE_CHECK=None)
def test_archive_refuses_when_nothing_can_say_the_chain_is_closed(two_years, tmp_path):
    with pytest.raises(ArchiveRefused, match="LEDGER_ARCHIVE_CHECK"):
        chain_archive(chain=CLOSED, to=tmp_path)


@override_settings(LEDGER_ARCHIVE_CHECK=ALLOW)
def test_archive_refuses_a_chain_with_an_open_hold(two_years, tmp_path):
    transfer_create(
        transfer=TransferRequest.pending(
            key="arch-hold-open",
            debit_account_id=two_years["closed_pool"].pk,
            credit_account_id=two_years["provider"].pk,
            amount_fen=1,
            reason="hold",
            chain=CLOSED,
        )
    )
    with pytest.raises(ArchiveRefused, match="open pending"):
        chain_archive(chain=CLOSED, to=tmp_path)
    assert chain_partition_of("ledger_transfer", CLOSED) is not None
    assert not ChainArchive.objects.exists()
    assert list(tmp_path.iterdir()) == []  # The attempt left no half archive behind.


@override_settings(LEDGER_ARCHIVE_CHECK=ALLOW)
def test_archive_refuses_a_chain_in_the_default_partition(clean_partitions, tmp_path):  # noqa: F811
    source, sink = account_create(code="arch:s"), account_create(code="arch:k")
    post("arch-default", source, sink, 1, NEW_CHAINS[1])
    with pytest.raises(ArchiveRefused, match="DEFAULT"):
        chain_archive(chain=NEW_CHAINS[1], to=tmp_path)


@pytest.mark.parametrize("drop", [False, True])
@override_settings(LEDGER_ARCHIVE_CHECK=ALLOW)
def test_an_archived_chain_leaves_the_audit_passing_and_the_balances_right(two_years, tmp_path, drop):
    provider, closed_pool, open_pool = two_years["provider"], two_years["closed_pool"], two_years["open_pool"]
    assert ledger_checks_pass() == {}
    now = timezone.now()
    accounts = [two_years[name] for name in ("fund", "closed_pool", "open_pool", "provider")]
    before = {a.pk: (account_balance(account_id=a.pk), account_balance_at(account_id=a.pk, at=now)) for a in accounts}
    at_between = account_balance_at(account_id=provider.pk, at=two_years["between"])

    args = ["--chain", CLOSED, "--to", str(tmp_path)] + (["--drop"] if drop else [])
    call_command("ledger_archive", *args)

    archive = ChainArchive.objects.get(chain=CLOSED)
    assert archive.transfers == 6 and archive.head_sequence == 6 and archive.dropped is drop
    # The audit verifies the chains left, and reports the archived one with its manifest's hash.
    assert ledger_checks_pass() == {}
    findings = chain_findings(now=later())
    assert not any(findings[k] for k in ("broken_links", "sequence_gaps", "head_mismatch", "unsealed_old_transfers"))
    assert [(a["chain"], a["manifest_sha256"]) for a in archived_chains()] == [(CLOSED, archive.manifest_sha256)]
    # The dump is what the manifest says.
    (directory,) = tmp_path.iterdir()
    manifest_bytes = (directory / MANIFEST_FILE).read_bytes()
    assert hashlib.sha256(manifest_bytes).hexdigest() == archive.manifest_sha256
    manifest = json.loads(manifest_bytes)
    for name in (TRANSFERS_FILE, SEALS_FILE):
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == manifest["files"][name]
        assert len(gzip.decompress((directory / name).read_bytes()).decode().splitlines()) == 1 + 6
    assert manifest["head"] == {"sequence": archive.head_sequence, "link": archive.head_link}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ledger_transfer WHERE chain = %s", [CLOSED])
        assert cursor.fetchone() == (0,)
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [manifest["tables"][TRANSFERS_FILE]])
        assert cursor.fetchone() == (not drop,)

    # Balances: now, and at any moment outside the archived chain's span, as before.
    for account_id, (balance, balance_at_now) in before.items():
        assert account_balance(account_id=account_id) == balance
        assert account_balance_at(account_id=account_id, at=now) == balance_at_now
    assert account_balance_at(account_id=provider.pk, at=two_years["between"]) == at_between
    assert account_balance_at(account_id=closed_pool.pk, at=two_years["between"]).credit_balance_fen == 10_000 - 1_500
    assert account_balance_at(account_id=open_pool.pk, at=two_years["between"]).credit_balance_fen == 0
    with pytest.raises(HistoryArchived):
        account_balance_at(account_id=closed_pool.pk, at=_inside(CLOSED))

    # Nothing more is written to the archived chain, and its keys stay taken.
    with pytest.raises(HistoryArchived, match="takes no more transfers"):
        post("arch-late", two_years["fund"], closed_pool, 1, CLOSED)
    with pytest.raises(IntegrityError, match=r"transfer_exists|default_not"), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_transferseal (transfer_id, chain, sequence, link, sealed_at) "
            "SELECT id, %s, 99, 'x', now() FROM ledger_transfer LIMIT 1",
            [CLOSED],
        )
    with pytest.raises(HistoryArchived, match="arch-pay-1"):
        post("arch-pay-1", two_years["fund"], open_pool, 1, OPEN)
    assert TransferKey.objects.filter(chain=CLOSED).count() == 6
    # The open chain goes on.
    post("arch-pay-3", open_pool, provider, 1, OPEN)
    ledger_seal()
    assert ledger_checks_pass() == {}
    with pytest.raises(ArchiveRefused, match="archived already"):
        chain_archive(chain=CLOSED, to=tmp_path / "again")


def _inside(chain: str):
    """A moment strictly inside the archived chain's span for its pool account."""
    from ledger.models import ArchivedTotals

    totals = ArchivedTotals.objects.filter(chain=chain, account__code="arch:pool:closed").get()
    return totals.first_at + (totals.last_at - totals.first_at) / 2


@override_settings(LEDGER_ARCHIVE_CHECK=ALLOW)
def test_a_chain_written_to_while_it_is_dumped_is_not_archived(two_years, tmp_path, monkeypatch):
    """The dump runs without locks; a transfer that reaches the chain meanwhile (nothing should write
    to a closed year, but nothing else stops it yet) makes the locked step refuse, and nothing moves."""
    import threading

    from django.db import connections

    import ledger.archive

    copy_to = ledger.archive._copy_to

    def copy_and_write(table, path):
        if table.startswith("ledger_transfer_"):

            def late() -> None:
                try:
                    post("arch-during-dump", two_years["fund"], two_years["closed_pool"], 1, CLOSED)
                finally:
                    connections.close_all()

            thread = threading.Thread(target=late)
            thread.start()
            thread.join()
        return copy_to(table, path)

    monkeypatch.setattr(ledger.archive, "_copy_to", copy_and_write)
    with pytest.raises(ArchiveRefused, match="changed while it was being dumped"):
        chain_archive(chain=CLOSED, to=tmp_path)
    assert chain_partition_of("ledger_transfer", CLOSED) is not None
    assert not ChainArchive.objects.exists()
    assert list(tmp_path.iterdir()) == []
    assert ledger_checks_pass() == {}
