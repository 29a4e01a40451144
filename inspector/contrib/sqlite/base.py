"""SQLite whose writers queue for the write lock instead of sleeping on it.

SQLite admits one writer at a time. A connection that finds the lock taken sleeps 1, 2, 5,
10, ... ms before it tries again, so under steady writes (the web process, its embedded
worker, a `run_handlers` process) a writer often sleeps far longer than the holder needed
the lock. Here a transaction that will write (IMMEDIATE) first queues on a lock shared by
the writers of the same database file: a thread lock within a process, handed over at once,
and a file lock across processes, polled every 0.2 ms. SQLite's own busy timeout still
covers writers that do not take part (the sqlite3 shell, another program).

Each connection also starts the database file's checkpointer (`checkpointer.py`): a project
opts in to both by naming this backend as its `ENGINE` ("inspector.contrib.sqlite"); one that
does not is untouched.
"""

import fcntl
import os
import threading
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base

from inspector.contrib.sqlite import checkpointer

POLL = 0.0002  # seconds between tries for another process's file lock

_thread_locks = {}
_guard = threading.Lock()


def _thread_lock(path):
    with _guard:
        return _thread_locks.setdefault(path, threading.Lock())


class DatabaseWrapper(base.DatabaseWrapper):
    _queue = None  # (thread lock, file descriptor) while this connection's transaction runs

    def init_connection_state(self):
        super().init_connection_state()
        checkpointer.started_for(self)

    def _takes_part(self):
        return self.transaction_mode in ("IMMEDIATE", "EXCLUSIVE") and not self.is_in_memory_db()

    def _start_transaction_under_autocommit(self):
        if self._takes_part():
            self._join_queue()
        try:
            super()._start_transaction_under_autocommit()
        except Exception:
            self._leave_queue()
            raise

    def _join_queue(self):
        path = os.path.abspath(str(self.settings_dict["NAME"]))
        timeout = self.settings_dict["OPTIONS"].get("timeout", 5)
        deadline = time.monotonic() + timeout
        lock = _thread_lock(path)
        if not lock.acquire(timeout=timeout):
            raise OperationalError("database is locked (another thread kept writing)")
        try:
            fd = os.open(f"{path}-writers", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            self._queue = (lock, None)  # a read-only folder: SQLite's busy timeout alone
            return
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    lock.release()
                    raise OperationalError(
                        "database is locked (another process kept writing)"
                    ) from None
                time.sleep(POLL)
        self._queue = (lock, fd)

    def _leave_queue(self):
        queue, self._queue = self._queue, None
        if queue is None:
            return
        lock, fd = queue
        if fd is not None:
            os.close(fd)  # closing the descriptor drops its file lock
        lock.release()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._leave_queue()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._leave_queue()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._leave_queue()
