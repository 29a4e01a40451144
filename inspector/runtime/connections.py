"""Database connections of the long-lived loops: workers, their lease heartbeat, the store
indexer and the live feed's reader."""

from django.db import close_old_connections, connections


def close_broken_connections():
    """`close_old_connections()` for a loop that runs all day: drop a connection that failed
    or whose server went away, but keep a healthy one whatever `CONN_MAX_AGE` says.

    The web's `CONN_MAX_AGE = 0` is right for requests, but a loop calling
    `close_old_connections()` between batches reconnected every batch: on PostgreSQL a new
    backend and session each time (a seventh of a worker's time per run) and no statement
    ever executed often enough on one connection to be prepared; on SQLite a cold page cache.
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.in_atomic_block:
            conn.close_at = None  # no age limit for this thread's connection
    close_old_connections()
