"""Fixtures shared by the whole suite: the inspector's tests (tests.settings, the warehouse
domain: tests/inspector/conftest.py) and the bookshelf's (bookshelf.settings_test:
tests/bookshelf/conftest.py)."""

import os

import pytest
from hypothesis import settings as hypothesis_settings

# Property-based tests (test_properties.py modules). By default the same examples every run
# (`derandomize`: a CI failure is the one a developer sees again on their machine, and a pass
# on one database run is not luck the other run lacks) and no example database to keep.
# HYPOTHESIS_PROFILE=explore draws new examples each run and replays a failure from
# .hypothesis/ until it is fixed. No deadline: the examples run on a shared, busy database.
hypothesis_settings.register_profile("ci", deadline=None, derandomize=True, database=None)
hypothesis_settings.register_profile("explore", deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _fresh_paused_handlers():
    """Each test starts with no cached pause state (the database was emptied)."""
    from inspector.runtime.dispatch import forget_paused_handlers

    forget_paused_handlers()


@pytest.fixture(scope="session")
def django_db_setup(request, django_db_setup):
    """Before the test database is dropped, let PostgreSQL end the sessions of the worker,
    daphne and shell processes the tests stopped (a SIGKILLed client's backend can outlive
    it by a moment). A session that stays is reported, then ended, so the drop succeeds:
    seen so far, the idle connection of a live-feed read that ran on a thread other than
    the test's own (the feed's reader keeps its connection, as in a web process)."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    import psycopg

    connection.close()
    connection.close_pool()  # this process's own idle connections go first
    params = connection.get_connection_params()
    params.pop("pool", None)
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        lingering = _other_sessions(admin, wait=10.0)
        if lingering:
            plugins = request.config.pluginmanager
            with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
                reporter = plugins.get_plugin("terminalreporter")
                reporter.write_line("Sessions still open on the test database, ended:")
                for row in lingering:
                    reporter.write_line(f"  {row}")
            admin.execute(f"SELECT pg_terminate_backend(pid) FROM ({OTHER_SESSIONS}) s")


OTHER_SESSIONS = (
    "SELECT pid, application_name, state, backend_start, left(query, 120) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND backend_type = 'client backend'"
)


def _other_sessions(admin, *, wait):
    import time

    deadline = time.monotonic() + wait
    while True:
        rows = admin.execute(OTHER_SESSIONS).fetchall()
        if not rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def pytest_sessionfinish(session):
    """Remove what the SQLite test database leaves beside its file once it is dropped: the
    write-ahead log and shared memory of connections still open on other threads, and the
    writers' lock file (inspector/backends/sqlite3)."""
    import contextlib
    import os

    from django.conf import settings

    if not settings.configured or "sqlite" not in settings.DATABASES["default"]["ENGINE"]:
        return
    name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if not name or os.path.exists(name):  # kept (--reuse-db) or never created
        return
    for suffix in ("-wal", "-shm", "-writers"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name + suffix)
