from django.apps import AppConfig
from django.core import checks

from inspector import conf


class InspectorConfig(AppConfig):
    name = "inspector"
    verbose_name = "Inspector"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The dashboard follows what the runtime commits; the runtime does not know it exists.
        from inspector.dashboard import feed
        from inspector.runtime import signals

        signals.messages_appended.connect(feed.poke, dispatch_uid="inspector-feed-messages")
        signals.runs_changed.connect(feed.poke, dispatch_uid="inspector-feed-runs")
        checks.register(check_settings, checks.Tags.compatibility)


def check_settings(app_configs=None, **kwargs):
    """`manage.py check`: a misspelt or invalid `INSPECTOR` key fails start-up, naming it."""
    return [checks.Error(text, id="inspector.E001") for text in conf.configuration_errors()]
