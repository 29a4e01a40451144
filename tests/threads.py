"""Starting test work on another thread, hence another database connection."""

import threading

from django.db import connection


def run_in_thread(fn):
    """Start fn on a new thread that closes its connection when done; return the thread."""

    def target():
        try:
            fn()
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread
