from django.apps import AppConfig


class ProbeConfig(AppConfig):
    """Handlers that record what they saw, for worker and ordering tests (test settings only)."""

    name = "tests.probe"
    label = "probe"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from tests.probe import handlers  # noqa: F401
