"""Give every provider listed before facilities were recorded the facilities it had in practice.

Until now a listed, active provider took part every day with any compute source: the application
chose "domestic" or "other" and nothing checked it. So each existing provider gets one facility of
each compute source, listed from the day it was created (Beijing time) until further notice. That
is exactly what the service allowed before, so no application, grant or redemption already made
becomes invalid; staff then narrow each center's facilities through an approved provider change.
Each provider's history records it as a `migrated` change, made by no person.

Data only (the schema is the migration before). Reversing deletes these facilities and history
rows, which only this migration can do: the history's trigger is dropped by the schema
migration's reversal, not here, so the reversal goes through pgtrigger's ignore.
"""

from zoneinfo import ZoneInfo

from django.db import migrations

TIME_ZONE = ZoneInfo("Asia/Shanghai")
DESCRIPTION = {
    "domestic": "Domestic compute (recorded when facilities were introduced)",
    "other": "Other compute (recorded when facilities were introduced)",
}


def _facilities_add(apps, schema_editor):
    Provider = apps.get_model("accounts", "Provider")
    Facility = apps.get_model("accounts", "Facility")
    ProviderChange = apps.get_model("accounts", "ProviderChange")
    for provider in Provider.objects.order_by("pk"):
        if Facility.objects.filter(provider=provider).exists():
            continue
        listed_from = provider.created_at.astimezone(TIME_ZONE).date()
        facilities = [
            Facility.objects.create(
                provider=provider,
                compute_source=source,
                description=DESCRIPTION[source],
                listed_from=listed_from,
                listed_until=None,
            )
            for source in ("domestic", "other")
        ]
        facility_words = [
            {
                "compute_source": facility.compute_source,
                "description": facility.description,
                "listed_from": facility.listed_from.isoformat(),
                "listed_until": None,
            }
            for facility in facilities
        ]
        ProviderChange.objects.create(
            provider=provider,
            kind="migrated",
            reason="Facilities recorded for a center listed before facilities existed.",
            before={"status": provider.status, "listing": provider.listing, "facilities": []},
            after={"status": provider.status, "listing": provider.listing, "facilities": facility_words},
        )


def _facilities_remove(apps, schema_editor):
    import pgtrigger

    Facility = apps.get_model("accounts", "Facility")
    ProviderChange = apps.get_model("accounts", "ProviderChange")
    with pgtrigger.ignore("accounts.ProviderChange:provider_change_insert_only"):
        ProviderChange.objects.filter(kind="migrated").delete()
    Facility.objects.filter(description__in=list(DESCRIPTION.values())).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_provider_facilities_and_changes"),
    ]

    operations = [migrations.RunPython(_facilities_add, _facilities_remove)]
