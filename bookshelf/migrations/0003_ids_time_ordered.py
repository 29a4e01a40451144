import inspector.domain.identity
from django.db import migrations, models


class Migration(migrations.Migration):
    """Aggregates' new ids are UUIDv7 (inspector/domain/identity.py). A default lives in Python
    only; as a plain AlterField, SQLite's schema editor would copy each table to change nothing."""

    dependencies = [
        ("bookshelf", "0002_optional_price"),
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
                for model in ("book", "inventory", "order")
            ]
        ),
    ]
