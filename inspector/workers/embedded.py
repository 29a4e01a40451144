"""The in-process worker of the embedded default: async mode with one command."""

import logging
import os
import socket
import threading

from inspector import conf
from inspector.readmodel.indexer import start_indexer_thread
from inspector.workers.worker import Worker

logger = logging.getLogger(__name__)
_started = None
_lock = threading.Lock()


def start_embedded_worker():
    """Start one worker thread and the store indexer in this process, once; a no-op when
    disabled in settings."""
    global _started
    if not conf.setting("embedded_worker"):
        return None
    with _lock:
        if _started is None:
            worker = Worker(worker_id=f"embedded:{socket.gethostname()}:{os.getpid()}")
            thread = threading.Thread(target=worker.run, name="inspector-embedded", daemon=True)
            thread.start()
            start_indexer_thread()  # keeps the inspector's counts and payload search fast
            _started = worker
    return _started
