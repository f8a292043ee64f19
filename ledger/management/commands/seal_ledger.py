"""manage.py seal_ledger: extend the hash chain over every transfer not yet sealed."""

from typing import Any

from django.core.management.base import BaseCommand

from ledger.chain import SEAL_BATCH_SIZE, ledger_seal


class Command(BaseCommand):
    help = "Seal newly committed ledger transfers into the SHA-256 chain (what beat does every few seconds)."

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        while True:
            sealed = ledger_seal(limit=SEAL_BATCH_SIZE)
            total += sealed
            if sealed:
                self.stdout.write(f"sealed {total} so far")
            if sealed < SEAL_BATCH_SIZE:
                break
        self.stdout.write(self.style.SUCCESS(f"Sealed {total} transfers."))
