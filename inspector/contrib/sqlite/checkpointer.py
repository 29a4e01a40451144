"""Copy the SQLite write-ahead log into the database from a background thread.

Left to SQLite, the connection whose commit pushes the log past 1,000 pages copies them back
and fsyncs the file inside that commit: milliseconds added to one request in a few. Here a
daemon thread per database file checkpoints passively (never blocking writers or readers),
and each connection's own automatic checkpoint stays as a backstop for a much larger log.
"""

import logging
import sqlite3
import threading
import time

logger = logging.getLogger(__name__)

BACKSTOP_PAGES = 20_000  # about 80 MB of log before a writer checkpoints by itself
IDLE_WAIT = 0.2  # seconds between checkpoints when the log had nothing new
BUSY_WAIT = 0.02  # seconds between checkpoints while writers are busy
REOPEN_AFTER = 30.0  # seconds; follows a database file that was replaced (test databases)

_threads = {}
_lock = threading.Lock()


def started_for(connection):
    """Raise a new connection's automatic checkpoint threshold and make sure a checkpointer
    runs for its database file (called by the backend for each connection it opens)."""
    path = str(connection.settings_dict["NAME"])
    if connection.is_in_memory_db() or not path:
        return
    connection.connection.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
    ensure_running(path)


def ensure_running(path):
    with _lock:
        thread = _threads.get(path)
        if thread is None or not thread.is_alive():
            thread = threading.Thread(
                target=_checkpoint_forever, args=(path,), name="inspector-checkpoint", daemon=True
            )
            _threads[path] = thread
            thread.start()


def _checkpoint_forever(path):
    connection, opened = None, 0.0
    while True:
        try:
            if connection is None or time.monotonic() - opened > REOPEN_AFTER:
                if connection is not None:
                    connection.close()
                # mode=rw: never create a file that a test run has just deleted
                connection = sqlite3.connect(
                    f"file:{path}?mode=rw", uri=True, timeout=0, isolation_level=None
                )
                opened = time.monotonic()
            _busy, frames, _done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            time.sleep(BUSY_WAIT if frames > 0 else IDLE_WAIT)
        except sqlite3.Error as exc:
            logger.debug("WAL checkpoint skipped for %s: %s", path, exc)
            if connection is not None:
                connection.close()
            connection = None
            time.sleep(IDLE_WAIT)
