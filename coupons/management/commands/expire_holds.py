"""manage.py expire_holds: void redemption holds (and other ledger holds) past their timeout."""

from typing import Any

from django.core.management.base import BaseCommand

from coupons.services.redemptions import redemptions_expire_holds
from ledger.services import pending_transfers_expire


class Command(BaseCommand):
    help = "Void holds past their timeout (what beat does every two minutes)."

    def handle(self, *args: Any, **options: Any) -> None:
        redemptions = redemptions_expire_holds()
        others = pending_transfers_expire()
        self.stdout.write(self.style.SUCCESS(f"Expired {redemptions} redemption holds and {others} other holds."))
