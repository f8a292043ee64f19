"""manage.py deem_acknowledgements: captured bills left unanswered past their window become deemed confirmed."""

from typing import Any

from django.core.management.base import BaseCommand

from coupons.tasks import deem_acknowledgements


class Command(BaseCommand):
    help = "Deem confirmed the bills whose acknowledgement window passed in silence (what beat does every ten minutes)."

    def handle(self, *args: Any, **options: Any) -> None:
        deemed = deem_acknowledgements()
        self.stdout.write(self.style.SUCCESS(f"Deemed {deemed} bills confirmed."))
