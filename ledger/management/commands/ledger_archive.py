"""manage.py ledger_archive --chain CHAIN --to DIR [--drop]: move a closed, audited chain's history out
of the database into a gzip CSV dump with a manifest (ledger/archive.py says what it checks first)."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger.archive import chain_archive
from ledger.errors import ArchiveRefused


class Command(BaseCommand):
    help = "Detach a closed, audited chain's partitions, dump them with a manifest, and drop them with --drop."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chain", required=True, help="The chain, e.g. hangzhou-compute:2026.")
        parser.add_argument("--to", required=True, type=Path, help="The directory that receives the dump.")
        parser.add_argument("--drop", action="store_true", help="Drop the detached tables once dumped.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            archive = chain_archive(chain=options["chain"], to=options["to"], drop=options["drop"])
        except ArchiveRefused as error:
            raise CommandError(str(error)) from error
        tables = ", ".join(archive.manifest["tables"].values())
        self.stdout.write(
            self.style.SUCCESS(
                f"Archived chain {archive.chain}: {archive.transfers} transfers, head #{archive.head_sequence}, "
                f"manifest sha256 {archive.manifest_sha256}; "
                + (f"dropped {tables}." if archive.dropped else f"detached {tables} (kept; --drop drops them).")
            )
        )
