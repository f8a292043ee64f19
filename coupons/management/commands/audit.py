"""manage.py audit: run every audit check now and print the findings; exit 1 if any check failed."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from coupons.services.audit import CHECKS, audit_execute, audit_run_create


class Command(BaseCommand):
    help = "Run the audit (what beat does nightly). Exits with an error if a check fails."

    def handle(self, *args: Any, **options: Any) -> None:
        run = audit_run_create()
        self.stdout.write(f"Audit {run.pk}: {len(CHECKS)} checks")
        run = audit_execute(run_id=run.pk)
        for check in run.checks:
            mark = self.style.SUCCESS("ok    ") if check["ok"] else self.style.ERROR("FAILED")
            examined = check["details"].get("examined", "-")
            self.stdout.write(f"  {mark} {check['name']} (examined {examined})")
            if not check["ok"]:
                self.stdout.write(json.dumps(check["details"], indent=2, default=str))
        for check in run.checks:
            for archived in check["details"].get("archived_chains", []):
                self.stdout.write(
                    f"  archived chain {archived['chain']}: {archived['transfers']} transfers, "
                    f"head #{archived['head_sequence']}, manifest sha256 {archived['manifest_sha256']}"
                )
        if run.status != "passed":
            raise CommandError(f"Audit {run.pk} failed.")
        self.stdout.write(self.style.SUCCESS(f"Audit {run.pk} passed."))
