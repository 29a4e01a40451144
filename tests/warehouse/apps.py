from django.apps import AppConfig


class WarehouseConfig(AppConfig):
    """The inspector's test domain (tests.settings only): books, orders with their lines,
    inventory and notifications, plus probe handlers that record what they saw."""

    name = "tests.warehouse"
    label = "warehouse"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Declarations register on import; init() then checks them all, failing start-up early.
        from tests.warehouse import commands, events, handlers, probe  # noqa: F401
        from tests.warehouse.domain import domain

        domain.init()
