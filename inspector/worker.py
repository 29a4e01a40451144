"""Workers claim due handler runs under a lease and execute them, in stream order per handler."""

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from django.db import close_old_connections, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from inspector import feed, store
from inspector.models import UNFINISHED, HandlerRun, HandlerState, RunStatus
from inspector.wakeup import Waiter

logger = logging.getLogger(__name__)


def default_worker_id():
    return f"worker:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs handler runs until stopped (`run`) or until none are due (`drain`)."""

    def __init__(
        self,
        *,
        domain=None,
        worker_id=None,
        concurrency=1,
        handlers=None,
        batch_size=10,
        lease_seconds=30.0,
        poll_interval=None,
        max_runs=None,
    ):
        if domain is None:
            from inspector.domain import current_domain

            domain = current_domain._resolve()
        self.domain = domain
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency
        self.handlers = set(handlers) if handlers else None
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        if poll_interval is None:
            poll_interval = 1.0 if connection.vendor == "postgresql" else 0.1
        self.poll_interval = poll_interval
        self.max_runs = max_runs
        self.processed = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._in_progress = set()

    # Claiming ------------------------------------------------------------------------------

    def _due(self, now):
        unclaimed_or_expired = Q(claimed_by="") | Q(lease_expires_at__lt=now)
        return (
            Q(status__in=[RunStatus.PENDING, RunStatus.FAILED], available_at__lte=now)
            & unclaimed_or_expired
        ) | Q(status=RunStatus.RUNNING, lease_expires_at__lt=now)

    def _blocked(self):
        earlier = HandlerRun.objects.filter(
            handler=OuterRef("handler"),
            stream=OuterRef("stream"),
            position__lt=OuterRef("position"),
        )
        parked = [s.name for s in self.domain.handlers() if s.park_on_failure]
        # An earlier unfinished run of the same stream holds the later ones back.
        blocked = Exists(earlier.filter(UNFINISHED))
        if parked:
            blocked = blocked | (
                Q(handler__in=parked) & Exists(earlier.filter(status=RunStatus.DEAD))
            )
        return blocked

    def claim(self, limit=None):
        """Lease up to `limit` due runs in one short transaction."""
        now = timezone.now()
        limit = limit or self.batch_size
        with transaction.atomic():
            candidates = (
                HandlerRun.objects.filter(UNFINISHED)  # matches the partial indexes
                .filter(self._due(now))
                .exclude(self._blocked())
            )
            paused = HandlerState.objects.filter(paused=True).values("handler")
            candidates = candidates.exclude(handler__in=paused)
            if self.handlers is not None:
                candidates = candidates.filter(handler__in=self.handlers)
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True, of=("self",))
            # Only the earliest unfinished run of a stream is unblocked, so a batch never holds
            # two runs of one stream for one handler.
            chosen = list(
                candidates.order_by("global_position").values_list("id", flat=True)[:limit]
            )
            if not chosen:
                return []
            HandlerRun.objects.filter(pk__in=chosen).update(
                status=RunStatus.RUNNING,
                claimed_by=self.worker_id,
                lease_expires_at=now + self.lease,
                updated_at=now,
            )
            runs = list(
                HandlerRun.objects.filter(pk__in=chosen)
                .select_related("message")
                .order_by("global_position")
            )
        feed.poke()  # the runs are now "running"
        with self._lock:
            self._in_progress.update(run.pk for run in runs)
        return runs

    def release(self, runs):
        """Give back claimed runs that were not started (on shutdown)."""
        ids = [run.pk for run in runs]
        if ids:
            HandlerRun.objects.filter(
                pk__in=ids, claimed_by=self.worker_id, status=RunStatus.RUNNING
            ).update(
                status=RunStatus.PENDING,
                claimed_by="",
                lease_expires_at=None,
                updated_at=timezone.now(),
            )
        with self._lock:
            self._in_progress.difference_update(ids)

    def renew_leases(self):
        """Extend the lease of every run this worker is still executing."""
        with self._lock:
            ids = list(self._in_progress)
        if ids:
            HandlerRun.objects.filter(
                pk__in=ids, claimed_by=self.worker_id, status=RunStatus.RUNNING
            ).update(lease_expires_at=timezone.now() + self.lease)

    # Executing -----------------------------------------------------------------------------

    def execute(self, run):
        row = run.message
        message_cls = self.domain.message_class(row.type)
        message = message_cls.from_dict(row.data)._with_metadata(store.metadata_of(row))
        self.domain.dispatcher.execute(run, message, row, owner=self.worker_id)
        with self._lock:
            self._in_progress.discard(run.pk)
            self.processed += 1

    def _budget_left(self):
        return self.max_runs is None or self.processed < self.max_runs

    def run_once(self):
        """Claim one batch and execute it; return how many runs were executed."""
        close_old_connections()
        if not self._budget_left():
            return 0
        limit = self.batch_size
        if self.max_runs is not None:
            limit = max(1, min(limit, self.max_runs - self.processed))
        runs = self.claim(limit)
        done = 0
        for index, run in enumerate(runs):
            if self._stopping.is_set():
                self.release(runs[index:])
                break
            self.execute(run)
            done += 1
        return done

    def drain(self):
        """Execute runs until none are due; return how many ran."""
        total = 0
        while not self._stopping.is_set() and self._budget_left():
            done = self.run_once()
            if not done:
                break
            total += done
        return total

    def _loop(self):
        waiter = Waiter(poll_interval=self.poll_interval)
        try:
            while not self._stopping.is_set() and self._budget_left():
                try:
                    done = self.run_once()
                except Exception:
                    logger.exception("Worker loop error worker_id=%s", self.worker_id)
                    done = 0
                    self._stopping.wait(self.poll_interval)
                if not done:
                    waiter.wait()
        finally:
            waiter.close()
            connection.close()

    def _heartbeat(self):
        interval = self.lease.total_seconds() / 3
        while not self._stopping.wait(interval):
            try:
                close_old_connections()
                self.renew_leases()
            except Exception:
                logger.exception("Lease renewal failed worker_id=%s", self.worker_id)
        connection.close()

    def run(self):
        """Process runs until `stop()` (or `max_runs`); blocks the calling thread."""
        logger.info("Starting worker worker_id=%s concurrency=%s", self.worker_id, self.concurrency)
        heartbeat = threading.Thread(target=self._heartbeat, name="inspector-lease", daemon=True)
        heartbeat.start()
        threads = [
            threading.Thread(target=self._loop, name=f"inspector-worker-{n}", daemon=True)
            for n in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._stopping.set()
        heartbeat.join()
        logger.info("Stopped worker worker_id=%s processed=%s", self.worker_id, self.processed)

    def stop(self):
        """Finish the runs in hand, give back the rest, and return from `run()`."""
        self._stopping.set()
