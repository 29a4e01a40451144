"""The SQLite backend (inspector.contrib.sqlite): writers queue for the write lock (a thread
lock, then a file lock) instead of sleeping, and a checkpointer copies the log back."""

import fcntl
import os
import sqlite3
import threading
import time

import pytest
from django.db import connection, transaction

from inspector.contrib.sqlite import checkpointer
from tests.warehouse.models import Switch

sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite's single writer only"
)


def other_process_could_write():
    """What a writer in another process sees: can it take the writers' file lock now?"""
    fd = os.open(f"{os.path.abspath(connection.settings_dict['NAME'])}-writers", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.django_db(transaction=True)
@sqlite_only
def test_a_transaction_holds_the_writers_lock_until_it_commits_or_rolls_back():
    with transaction.atomic():
        Switch.objects.create(name="a")
        assert not other_process_could_write()
    assert other_process_could_write()

    with pytest.raises(RuntimeError), transaction.atomic():
        Switch.objects.create(name="b")
        assert not other_process_could_write()
        raise RuntimeError("roll back")
    assert other_process_could_write()
    assert list(Switch.objects.values_list("name", flat=True)) == ["a"]


@pytest.mark.django_db(transaction=True)
@sqlite_only
def test_a_second_thread_starts_writing_only_after_the_first_commits():
    order = []
    inside = threading.Event()

    def second():
        inside.wait(10)
        try:
            with transaction.atomic():
                order.append("second begins")
                Switch.objects.create(name="second")
        finally:
            connection.close()

    thread = threading.Thread(target=second)
    thread.start()
    with transaction.atomic():
        Switch.objects.create(name="first")
        inside.set()
        thread.join(0.3)  # the second thread is queued, not sleeping on SQLite's busy handler
        assert thread.is_alive() and order == []
        order.append("first commits")
    thread.join(10)
    assert order == ["first commits", "second begins"]
    assert Switch.objects.count() == 2


def test_checkpointer_copies_the_log_into_the_database_file(tmp_path):
    path = str(tmp_path / "wal.sqlite3")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # only the checkpointer may copy pages back
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    checkpointer.ensure_running(path)
    before = (tmp_path / "wal.sqlite3").stat().st_size
    for _ in range(200):
        writer.execute("INSERT INTO t (v) VALUES (?)", ["x" * 2000])
    deadline = time.monotonic() + 5
    while (tmp_path / "wal.sqlite3").stat().st_size <= before + 200 * 2000:
        assert time.monotonic() < deadline, "the log was never checkpointed"
        time.sleep(0.05)
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM t").fetchone() == (200,)
    writer.close()
