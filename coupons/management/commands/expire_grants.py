"""manage.py expire_grants: lapse every grant past its expiry into its year's lapsed account.

Idempotent and safe beside the beat job: each grant lapses once (its lock and its ledger key).
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from coupons.services.grants import grants_expire_due


class Command(BaseCommand):
    help = "Lapse grants past their expiry and void their holds (what beat does every ten minutes)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--now", help="Act as if it were this moment (ISO 8601 with offset); for rehearsals. Default: now."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        if options["now"]:
            parsed = parse_datetime(options["now"])
            if parsed is None or parsed.tzinfo is None:
                raise CommandError("--now takes an ISO 8601 moment with its offset, e.g. 2027-06-15T10:00:00+08:00.")
            now = parsed
        total = 0
        while expired := grants_expire_due(now=now):
            total += expired
            self.stdout.write(f"grants expired: {total}")
        self.stdout.write(self.style.SUCCESS(f"Expired {total} grants past their expiry."))
