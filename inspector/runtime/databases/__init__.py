"""What differs between the databases Inspector runs on, behind one small interface.

One module per database (`postgresql.py`, `sqlite.py`) implements `Database`, as the
eventsourcing library keeps one recorder per database; the rest of the app asks
`database()` for the one behind a connection and never branches on the vendor itself. The
workers' claim, the one other place whose SQL differs, follows the same pattern in
`inspector.workers.claims`.
"""

from django.core.exceptions import ImproperlyConfigured
from django.db import connection as default_connection

from inspector.runtime.databases.base import Database
from inspector.runtime.databases.postgresql import PostgreSQL
from inspector.runtime.databases.sqlite import SQLite

_BY_VENDOR = {db.vendor: db for db in (PostgreSQL(), SQLite())}


def database(connection=None):
    """The `Database` behind `connection` (the default connection if none is given)."""
    connection = connection or default_connection
    try:
        return _BY_VENDOR[connection.vendor]
    except KeyError:
        raise ImproperlyConfigured(
            f"Inspector runs on PostgreSQL or SQLite; the {connection.alias!r} database is "
            f"{connection.display_name}."
        ) from None


__all__ = ["Database", "database"]
