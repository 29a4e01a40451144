import inspector.domain.identity
from django.db import migrations, models


class Migration(migrations.Migration):
    """New messages' and runs' ids are UUIDv7 (inspector/domain/identity.py). A default lives in
    Python only, so nothing changes in the database; as a plain AlterField, SQLite's schema
    editor would have copied both tables whole to change nothing."""

    dependencies = [
        ("inspector", "0013_replay_jobs"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name=model,
                    name="id",
                    field=models.UUIDField(
                        default=inspector.domain.identity.new_id,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                )
                for model in ("handlerrun", "message")
            ]
        ),
    ]
