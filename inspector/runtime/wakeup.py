"""Tell idle workers that runs are due: LISTEN/NOTIFY on PostgreSQL. On SQLite, workers in
the same process (the embedded default) are woken directly, and a worker notices another
process's commits by watching `PRAGMA data_version`, which is far cheaper than looking for
due runs."""

import contextlib
import logging
import threading
import time

from django.db import DatabaseError, connection, transaction

from inspector.runtime.connections import lost_database
from inspector.runtime.databases import database

logger = logging.getLogger(__name__)

# How often a SQLite worker reads `data_version` while it waits: the latency it adds to work
# queued by other processes (half of it on average), against an idle worker's wake-ups.
COMMIT_WATCH_SECONDS = 0.01


_local = threading.Condition()
_local_wakeups = [0]  # bumped on every commit that queued runs in this process


def notify_workers():
    """Wake waiting workers when the current transaction commits."""
    db = database()
    if db.listens:  # every waiting worker, in any process, hears it at the commit
        with connection.cursor() as cursor:
            db.notify_workers(cursor)
    else:
        transaction.on_commit(wake_local_workers)


def wake_local_workers():
    """Wake this process's waiting workers (after a commit that queued runs, or to stop)."""
    with _local:
        _local_wakeups[0] += 1
        _local.notify_all()


class Waiter:
    """Sleeps until work may be due: a notification, or `poll_interval` at most."""

    def __init__(self, *, poll_interval):
        self.poll_interval = poll_interval
        self._listener = None
        self._seen = _local_wakeups[0]
        self._database = database()
        self._commit_marker = None  # read at the first wait, which then looks once more
        self._listen()

    def _listen(self):
        """Open the LISTEN connection (PostgreSQL); False, after logging why, when it cannot
        be opened now: the waiter polls meanwhile and tries again at its next wait."""
        if not self._database.listens:
            return False
        try:
            self._listener = self._database.listen(connection)
        except Exception as error:
            if not lost_database(error):
                logger.exception("Worker could not LISTEN; polling until it can")
            self.close()
            return False
        return True

    @property
    def listening(self):
        """Whether every commit that queues runs, in any process, wakes this waiter."""
        return self._listener is not None

    def wait(self):
        if self._listener is None and self._database.listens and self._listen():
            return  # back after a lost connection: look once for what was announced meanwhile
        if self._listener is None:
            self._wait_without_listener()
            return
        try:
            for _ in self._listener.notifies(timeout=self.poll_interval, stop_after=1):
                pass
            # Those that queued meanwhile are served by the same claim: one wake for all.
            for _ in self._listener.notifies(timeout=0):
                pass
        except Exception as error:  # a broken listener never stops the worker: it listens again
            if not lost_database(error):
                logger.exception("Worker lost its LISTEN connection; listening again")
            self.close()

    def _wait_without_listener(self):
        """Until a commit in this process queued runs, another connection committed (SQLite),
        or `poll_interval` has passed. A commit since the last wait returns at once."""
        deadline = time.monotonic() + self.poll_interval
        while not self._committed_elsewhere():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            step = min(left, COMMIT_WATCH_SECONDS) if self._database.watches_commits else left
            with _local:
                if _local.wait_for(lambda: _local_wakeups[0] != self._seen, step):
                    self._seen = _local_wakeups[0]
                    return

    def _committed_elsewhere(self):
        if not self._database.watches_commits:
            return False
        try:
            with connection.cursor() as cursor:
                marker = self._database.commit_marker(cursor)
        except DatabaseError:  # let the claim meet the error, with its own logging and pause
            logger.exception("Worker could not read data_version")
            return True
        changed, self._commit_marker = marker != self._commit_marker, marker
        return changed

    def close(self):
        if self._listener is not None:
            with contextlib.suppress(Exception):
                self._listener.close()
            self._listener = None
