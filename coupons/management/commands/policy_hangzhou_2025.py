"""manage.py policy_hangzhou_2025 --actor USERNAME: Hangzhou's 2025 rates as they were, as data.

Prepares the program's 2025 year (the default program's unless `--program` names another) with the
2024 measures from 1 January and the June 2025 revision from 13 June (`coupons.policy.
HANGZHOU_2025_RULE_SETS`), as a draft year to open. When the year exists, it adds the versions it
lacks (refused, with the reason, where the year is open and the day is past: no retroactive
repricing). Run again, it changes nothing.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from config.errors import ApplicationError
from coupons.models import DEFAULT_PROGRAM, ProgramYear
from coupons.policy import HANGZHOU_2025_RULE_SETS
from coupons.rule_sets import rule_set_versions
from coupons.services.years import program_year_hangzhou_2025_create, rule_set_version_add

YEAR = 2025


class Command(BaseCommand):
    help = "Prepare Hangzhou's 2025 year with the 2024 measures and the June 2025 revision (from 13 June)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--actor", required=True, help="The username of the superuser who sets it up.")
        parser.add_argument(
            "--program", default=DEFAULT_PROGRAM, help=f"The program's slug (default: {DEFAULT_PROGRAM})."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = User.objects.filter(username=options["actor"]).first()
        if actor is None:
            raise CommandError(f"No user {options['actor']!r}.")
        program = options["program"]
        try:
            program_year = ProgramYear.objects.filter(program_id=program, year=YEAR).first()
            if program_year is None:
                program_year = program_year_hangzhou_2025_create(actor=actor, program=program)
                self.stdout.write(
                    f"{program} {YEAR}: prepared as a draft with {len(HANGZHOU_2025_RULE_SETS)} versions."
                )
            else:
                have = {version.effective_from: version.rule_set.name for version in rule_set_versions(program_year)}
                for version in HANGZHOU_2025_RULE_SETS:
                    day, rates = version["effective_from"], version["rates"]
                    if have.get(day) == rates["name"]:
                        continue
                    rule_set_version_add(year=YEAR, program=program, effective_from=day, rates=rates, actor=actor)
                    self.stdout.write(f"{program} {YEAR}: {rates['name']} from {day.isoformat()} added.")
        except ApplicationError as error:
            raise CommandError(f"{error.code}: {error.detail}") from None
        versions = ", ".join(
            f"{version.rule_set.name} from {version.effective_from.isoformat()}"
            for version in rule_set_versions(program_year)
        )
        self.stdout.write(self.style.SUCCESS(f"{program} {YEAR} ({program_year.status}): {versions}"))
