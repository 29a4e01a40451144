"""Tell idle workers that runs are due: LISTEN/NOTIFY on PostgreSQL, a short poll elsewhere."""

import logging
import time

from django.db import connection

logger = logging.getLogger(__name__)

CHANNEL = "inspector_runs"


def notify_workers():
    """Wake listening workers when the current transaction commits (PostgreSQL only)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])


class Waiter:
    """Sleeps until work may be due: a notification, or `poll_interval` at most."""

    def __init__(self, *, poll_interval):
        self.poll_interval = poll_interval
        self._listener = None
        if connection.vendor == "postgresql":
            import psycopg

            params = connection.get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            params.pop("prepare_threshold", None)
            self._listener = psycopg.connect(**params, autocommit=True)
            self._listener.execute(f"LISTEN {CHANNEL}")

    def wait(self):
        if self._listener is None:
            time.sleep(self.poll_interval)
            return
        try:
            for _ in self._listener.notifies(timeout=self.poll_interval, stop_after=1):
                pass
        except Exception:  # a broken listener degrades to polling, it never stops the worker
            logger.exception("Worker lost its LISTEN connection; polling instead")
            self.close()

    def close(self):
        if self._listener is not None:
            self._listener.close()
            self._listener = None
