"""The environment of a process a test starts (a worker, daphne, a management command) that must
use this test's database rather than the one its settings name."""

import os

from django.db import connection


def on_test_database(env):
    """Point `env` (a dict of environment variables, changed in place and returned) at the test
    database: the SQLite file by its path, or the PostgreSQL server's test database by name."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        env["INSPECTOR_SQLITE_PATH"] = str(name)
        env.pop("DATABASE_URL", None)
    else:
        env["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}"
    return env
