"""`manage.py beat_schedule`: when each background job runs (settings `CELERY_BEAT_SCHEDULE`), as the
one `celery -A config beat` will send them. The same list is printed by `make run` and shown on
`/status/`."""

from typing import Any

from django.core.management.base import BaseCommand

from config.schedule import schedule_lines


class Command(BaseCommand):
    help = "Print the beat schedule: each background job, its task and when beat sends it."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("Beat schedule (exactly one `celery -A config beat` sends these):")
        self.stdout.write("\n".join(schedule_lines()))
