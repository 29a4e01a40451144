"""Tell idle workers that runs are due: LISTEN/NOTIFY on PostgreSQL; elsewhere workers in
the same process (the embedded default) are woken directly and the others poll briefly."""

import logging
import threading

from django.db import connection, transaction

logger = logging.getLogger(__name__)

CHANNEL = "inspector_runs"


_local = threading.Condition()
_local_wakeups = [0]  # bumped on every commit that queued runs in this process


def notify_workers():
    """Wake waiting workers when the current transaction commits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])
    else:
        transaction.on_commit(_wake_local_workers)


def _wake_local_workers():
    with _local:
        _local_wakeups[0] += 1
        _local.notify_all()


class Waiter:
    """Sleeps until work may be due: a notification, or `poll_interval` at most."""

    def __init__(self, *, poll_interval):
        self.poll_interval = poll_interval
        self._listener = None
        self._seen = _local_wakeups[0]
        if connection.vendor == "postgresql":
            import psycopg

            params = connection.get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            params.pop("prepare_threshold", None)
            self._listener = psycopg.connect(**params, autocommit=True)
            self._listener.execute(f"LISTEN {CHANNEL}")

    @property
    def listening(self):
        """Whether every commit that queues runs, in any process, wakes this waiter."""
        return self._listener is not None

    def wait(self):
        if self._listener is None:
            with _local:  # returns at once if runs were queued since the last wait
                _local.wait_for(lambda: _local_wakeups[0] != self._seen, self.poll_interval)
                self._seen = _local_wakeups[0]
            return
        try:
            for _ in self._listener.notifies(timeout=self.poll_interval, stop_after=1):
                pass
            # Those that queued meanwhile are served by the same claim: one wake for all.
            for _ in self._listener.notifies(timeout=0):
                pass
        except Exception:  # a broken listener degrades to polling, it never stops the worker
            logger.exception("Worker lost its LISTEN connection; polling instead")
            self.close()

    def close(self):
        if self._listener is not None:
            self._listener.close()
            self._listener = None
