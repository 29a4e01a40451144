from django.apps import AppConfig


class BookshelfConfig(AppConfig):
    name = "bookshelf"
    verbose_name = "Bookshelf"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Declarations register on import; init() then checks them all, failing start-up early.
        from bookshelf import commands, events, handlers  # noqa: F401
        from bookshelf.domain import domain

        domain.init()
