"""manage.py ledger_repartition --chain CHAIN [--dry-run]: move a chain's transfers and seals out of
the DEFAULT partitions into partitions of its own, in one transaction (ledger/repartition.py)."""

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger.errors import RepartitionRefused
from ledger.repartition import chain_repartition, chain_repartition_plan


class Command(BaseCommand):
    help = (
        "Move a chain's rows from the DEFAULT partitions of ledger_transfer and ledger_transferseal into "
        "partitions of its own (rows unchanged, keys untouched). Every writer of the ledger waits while it runs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chain", required=True, help="The chain, e.g. hangzhou-compute:2027.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would move; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        chain = options["chain"]
        started = time.perf_counter()
        try:
            if options["dry_run"]:
                plan = chain_repartition_plan(chain=chain)
                self.stdout.write(f"Dry run, nothing changed. Chain {chain} would move: {plan.describe()}.")
                return
            plan = chain_repartition(
                chain=chain,
                progress=lambda line: self.stdout.write(f"[{time.perf_counter() - started:.1f} s] {line}"),
            )
        except RepartitionRefused as error:
            raise CommandError(str(error)) from error
        self.stdout.write(self.style.SUCCESS(f"Chain {chain} moved: {plan.describe()}."))
