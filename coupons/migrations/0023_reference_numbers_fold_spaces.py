"""Contract and bill numbers stored with white space inside (`HZ- 001`, `HZ 001`) lose it now, as
coupons.policy.reference_normalise drops it from every number it is sent since this migration, so
`HZ- 001` is the same contract as `HZ-001` for what was stored before too.

Where that makes two live applications of one program and provider share a contract number, or two
live redemptions of one grant share a bill, the migration stops and names them, changing nothing, as
migration 0022 does for dashes: that is one contract subsidised twice (or one bill paid twice), for
people to look at before migrating again. Numbers holding characters the service now refuses
(coupons.policy.reference_refused) are kept as they are: they were taken, and stay readable.
"""

from django.db import migrations

# The statuses of coupons.models at this migration: an application that still holds its contract,
# a redemption that still holds its bill.
APPLICATION_DONE = ("rejected", "withdrawn")
REDEMPTION_DONE = ("voided", "expired")
# The space separators NFKC leaves as the ASCII space (no-break, ideographic, thin and the rest are
# stored as sent by the code before this one only if they came through another path; fold them too).
SPACES = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
FOLD = str.maketrans(dict.fromkeys(SPACES, None))


def _regex() -> str:
    return "[" + SPACES + "]"


def fold(apps, schema_editor):
    Application = apps.get_model("coupons", "Application")
    Redemption = apps.get_model("coupons", "Redemption")
    clashes = []
    for application in Application.objects.filter(contract_number__regex=_regex()).order_by("pk"):
        folded = application.contract_number.translate(FOLD)
        twin = (
            Application.objects.filter(
                program_id=application.program_id, provider_id=application.provider_id, contract_number=folded
            )
            .exclude(status__in=APPLICATION_DONE)
            .exclude(pk=application.pk)
            .first()
        )
        if twin is not None and application.status not in APPLICATION_DONE:
            clashes.append(f"applications {twin.pk} and {application.pk} (contract {folded!r})")
            continue
        application.contract_number = folded
        application.save(update_fields=["contract_number"])
    for redemption in Redemption.objects.filter(bill_number__regex=_regex()).order_by("pk"):
        folded = redemption.bill_number.translate(FOLD)
        twin = (
            Redemption.objects.filter(grant_id=redemption.grant_id, bill_number=folded)
            .exclude(status__in=REDEMPTION_DONE)
            .exclude(pk=redemption.pk)
            .first()
        )
        if twin is not None and redemption.status not in REDEMPTION_DONE:
            clashes.append(
                f"redemptions {twin.pk} and {redemption.pk} (bill {folded!r} of grant {redemption.grant_id})"
            )
            continue
        redemption.bill_number = folded
        redemption.save(update_fields=["bill_number"])
    if clashes:
        raise RuntimeError(
            "These name one contract or one bill twice once the spaces inside their numbers are dropped; nothing "
            "was changed. Look at each (withdraw, reject or reverse the later one), then migrate again: "
            + "; ".join(clashes)
        )


class Migration(migrations.Migration):
    atomic = True

    dependencies = [("coupons", "0022_reference_numbers_fold_dashes")]

    # Backwards: nothing to undo (a number without spaces stays a valid number).
    operations = [migrations.RunPython(fold, migrations.RunPython.noop, elidable=False)]
