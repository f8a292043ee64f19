"""Contract and bill numbers stored before dashes were folded (coupons.policy.reference_normalise)
are folded now, so a number written with a look-alike dash (`HZ‐001`, `HZ–001`) is the same contract
or bill as `HZ-001` for what was stored before too.

Where folding would make two live applications of one program and provider share a contract number,
or two live redemptions of one grant share a bill, the migration stops and names them, changing
nothing: that is one contract subsidised twice (or one bill paid twice), for people to look at
(withdraw or reject the later application, reverse the later redemption) before migrating again.
"""

from django.db import migrations

# A copy of coupons.policy.DASHES as it was when this migration was written (migrations keep their own).
DASHES = (
    "\u058a\u05be\u1400\u1806\u2010\u2011\u2012\u2013\u2014\u2015\u2e17\u2e1a\u2e3a\u2e3b\u2e40\u2e5d"
    "\u301c\u3030\u30a0\ufe31\ufe32\ufe58\ufe63\uff0d\U00010ead"
    "\u2212\u2796\u02d7"
)
FOLD = str.maketrans(dict.fromkeys(DASHES, "-"))
# The statuses of coupons.models at this migration: an application that still holds its contract,
# a redemption that still holds its bill.
APPLICATION_DONE = ("rejected", "withdrawn")
REDEMPTION_DONE = ("voided", "expired")


def _regex() -> str:
    return "[" + "".join(DASHES) + "]"


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
            "These name one contract or one bill twice once their dashes are folded; nothing was changed. "
            "Look at each (withdraw, reject or reverse the later one), then migrate again: " + "; ".join(clashes)
        )


class Migration(migrations.Migration):
    atomic = True

    dependencies = [("coupons", "0021_application_contract_index")]

    # Backwards: nothing to undo (a folded number stays a valid number).
    operations = [migrations.RunPython(fold, migrations.RunPython.noop, elidable=False)]
