from django.db import migrations


def create_sequence(apps, schema_editor):
    StoreSequence = apps.get_model("inspector", "StoreSequence")
    StoreSequence.objects.get_or_create(name="global", defaults={"value": -1})


class Migration(migrations.Migration):
    dependencies = [("inspector", "0001_initial")]

    operations = [migrations.RunPython(create_sequence, migrations.RunPython.noop)]
