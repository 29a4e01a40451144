from django.apps import AppConfig
from django.db.backends.signals import connection_created


class InspectorConfig(AppConfig):
    name = "inspector"
    verbose_name = "Inspector"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from inspector.contrib.sqlite import checkpointer

        connection_created.connect(checkpointer.on_connection_created, dispatch_uid="inspector-wal")
