from django.db import migrations


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS message_data_gin ON inspector_message "
            "USING gin (data jsonb_path_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS message_data_gin")


class Migration(migrations.Migration):
    """Payload-field search (`data @> {...}`) on PostgreSQL; SQLite has no such index."""

    dependencies = [("inspector", "0008_page_indexes")]

    operations = [migrations.RunPython(create, drop)]
