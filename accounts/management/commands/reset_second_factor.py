"""manage.py reset_second_factor USERNAME: remove a user's authenticator and recovery codes.

For an administrator helping a colleague who lost both. The user then signs in with the password
alone; staff who must have a second factor are sent to set up a new one at once."""

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from accounts.second_factor import second_factor_reset

security_log = logging.getLogger("coupons.security")


class Command(BaseCommand):
    help = "Remove a user's second factor (authenticator and recovery codes) so they can enrol again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The user whose second factor is removed.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        removed = second_factor_reset(user=user)
        security_log.warning("second factor reset: username=%r devices=%s", user.username, removed)
        self.stdout.write(
            self.style.SUCCESS(f"Removed {removed} second-factor device(s) of {user.username}; they may enrol again.")
        )
