"""Database connections of the long-lived loops: workers, their lease heartbeat, the store
indexer and the live feed's reader; and how they live through an outage of the database (or
of Redis, for the live feed)."""

import contextlib
import logging
import threading
import time

from django.db import InterfaceError, OperationalError, close_old_connections, connections

logger = logging.getLogger(__name__)


def close_broken_connections():
    """`close_old_connections()` for a loop that runs all day: drop a connection that failed
    or whose server went away, but keep a healthy one whatever `CONN_MAX_AGE` says.

    The web's `CONN_MAX_AGE = 0` is right for requests, but a loop calling
    `close_old_connections()` between batches reconnected every batch: on PostgreSQL a new
    backend and session each time (a seventh of a worker's time per run) and no statement
    ever executed often enough on one connection to be prepared; on SQLite a cold page cache.

    A connection this thread held while the database went away was most likely cut by the
    server: it is asked once whether it still works (as Django asks after an error), so that
    the loop's next read does not fail on it after the database is back.
    """
    outages = database_outage.count
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.in_atomic_block:
            conn.close_at = None  # no age limit for this thread's connection
            if getattr(conn, "inspector_outages", outages) != outages:
                conn.errors_occurred = True  # `close_old_connections` checks it is usable
            conn.inspector_outages = outages
    close_old_connections()


class Outage:
    """A server this process needs that can go away for a while (the database, Redis).

    Every loop that meets the outage reports it and carries on as it can; the log says once
    that the server went away and once that it is back, without a traceback: an outage is an
    event of the deployment, not a bug of the code.
    """

    # An error met this soon after the server came back is taken for a leftover of the outage
    # (a connection it cut that another loop of the process only reads now), not a new one;
    # if the server is really gone again, the loop's next try says so.
    AFTERMATH_SECONDS = 1.0

    def __init__(self, name, meanwhile, *, log=logger):
        self.name = name
        self.meanwhile = meanwhile  # what the process does until the server is back
        self.log = log
        self.down = False
        self.count = 0  # outages met so far
        self.back_at = float("-inf")  # time.monotonic() when the last one ended
        self._lock = threading.Lock()

    def went_away(self, error):
        with self._lock:
            if self.down:
                return
            if time.monotonic() - self.back_at < self.AFTERMATH_SECONDS:
                self.log.debug("%s: a connection the outage cut (%s)", self.name, describe(error))
                return
            self.down = True
            self.count += 1
        self.log.warning("%s went away (%s); %s", self.name, describe(error), self.meanwhile)

    def is_back(self):
        if not self.down:  # the common case, without the lock
            return
        with self._lock:
            if not self.down:
                return
            self.down = False
            self.back_at = time.monotonic()
        self.log.info("%s is back", self.name)


def describe(error):
    """The error's class and the first line of its message: enough to tell refused from cut."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


database_outage = Outage("The database", "retrying until it is back")


# SQLSTATEs of a server that dropped or refuses connections: the connection exception class,
# an administrator's or a crash shutdown, a server starting up or shutting down.
DROPPED = ("08", "57P01", "57P02", "57P03")


def lost_database(error, connection=None):
    """Whether `error` says this thread lost the database (refused, cut, restarting), as
    opposed to a bad query or a lock timeout. If the database cannot be reached now, the
    thread's broken connection is closed and the outage reported. Call it from the thread
    that met the error (on any connection, Django's or a raw one of the same driver, such as
    a worker's LISTEN connection)."""
    connection = connection or connections["default"]
    driver = connection.Database
    lost = (OperationalError, InterfaceError, driver.OperationalError, driver.InterfaceError)
    if not isinstance(error, lost):
        return False
    if connection.connection is not None and connection.is_usable():
        # Reachable (again): a connection dropped during an outage now over, or on its own.
        dropped = _dropped(error)
        if dropped:
            logger.debug("A database connection was dropped (%s)", describe(error))
        return dropped
    if connection.connection is not None and not connection.in_atomic_block:
        connection.close()
    if not database_outage.down:
        pool = getattr(connection, "pool", None)  # psycopg's: its idle connections were cut too
        if pool is not None:
            with contextlib.suppress(Exception):  # a pool never opened has nothing to check
                pool.check()
    database_outage.went_away(error)
    return True


def _dropped(error):
    """Whether the driver says the server dropped the connection: a SQLSTATE of `DROPPED`, or
    none at all from a driver that reports them (psycopg: the socket closed, or a refused or
    timed-out connect). SQLite's errors carry no SQLSTATE: a locked database is no outage."""
    cause = error.__cause__ if error.__cause__ is not None else error
    if not hasattr(cause, "sqlstate"):
        return False
    return cause.sqlstate is None or cause.sqlstate.startswith(DROPPED)
