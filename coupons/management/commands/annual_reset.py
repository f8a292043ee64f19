"""manage.py annual_reset --year Y: close Y, release holds, lapse unused coupons, carry or withdraw
open applications by Y's policy, open Y+1.

Resumable and idempotent: run it again after a crash and it finishes what is left.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from config.errors import ApplicationError
from coupons.models import DEFAULT_PROGRAM, ProgramYear
from coupons.services.reset import annual_reset


class Command(BaseCommand):
    help = "Run (or finish) the annual reset of a program year."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--year", type=int, required=True, help="The program year to close and reset.")
        parser.add_argument(
            "--program", default=DEFAULT_PROGRAM, help=f"The program's slug (default: {DEFAULT_PROGRAM})."
        )
        parser.add_argument(
            "--now", help="Act as if it were this moment (ISO 8601 with offset); for rehearsals. Default: now."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        if options["now"]:
            parsed = parse_datetime(options["now"])
            if parsed is None or parsed.tzinfo is None:
                raise CommandError("--now takes an ISO 8601 moment with its offset, e.g. 2027-01-01T00:05:00+08:00.")
            now = parsed
        if not ProgramYear.objects.filter(program_id=options["program"], year=options["year"]).exists():
            raise CommandError(f"No program year {options['year']} in program {options['program']}.")
        try:
            report = annual_reset(year=options["year"], now=now, progress=self.stdout.write, program=options["program"])
        except ApplicationError as error:
            raise CommandError(f"{error.code}: {error.detail}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"{report.program} {report.year}: holds released {report.holds_released}, "
                f"grants expired {report.grants_expired}, "
                f"lapsed {report.lapsed_fen} fen; open applications carried {report.applications_carried}, "
                f"withdrawn {report.applications_withdrawn}; next year opened: {report.next_year_opened}"
                + ("; grants still in their grace period" if report.waiting_for_grace else "")
                + (
                    f"; {report.grants_outliving_the_year} grants valid for months stay valid (expire_grants lapses "
                    "them when they expire)"
                    if report.grants_outliving_the_year
                    else ""
                )
            )
        )
