"""A settlement is paid from one program's fund: it names the program. The settlements made before
programs paid the one fund there was, `hangzhou-compute`. Re-running the fill changes nothing."""

from django.db import migrations, models


def settlements_fill(apps, schema_editor):
    apps.get_model("coupons", "Settlement").objects.filter(program__isnull=True).update(program_id="hangzhou-compute")


class Migration(migrations.Migration):

    dependencies = [
        ("coupons", "0019_measures"),
    ]

    operations = [
        migrations.RunSQL("SET CONSTRAINTS ALL IMMEDIATE", migrations.RunSQL.noop),
        migrations.AddField(
            model_name="settlement",
            name="program",
            field=models.ForeignKey(
                null=True,
                help_text="The fund that pays it.",
                on_delete=models.deletion.PROTECT,
                related_name="settlements",
                to="coupons.program",
            ),
        ),
        migrations.RunPython(settlements_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="settlement",
            name="program",
            field=models.ForeignKey(
                help_text="The fund that pays it.",
                on_delete=models.deletion.PROTECT,
                related_name="settlements",
                to="coupons.program",
            ),
        ),
        migrations.RunSQL(migrations.RunSQL.noop, "SET CONSTRAINTS ALL IMMEDIATE"),
    ]
