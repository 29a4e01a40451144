"""Workers claim due handler runs under a lease and execute them, in stream order per handler."""

import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from inspector.models import HandlerRun, RunStatus
from inspector.runtime import signals, store
from inspector.runtime.connections import (
    close_broken_connections,
    database_outage,
    lost_database,
)
from inspector.runtime.databases import database
from inspector.runtime.dispatch import run_payload
from inspector.runtime.domain import current_domain
from inspector.runtime.wakeup import Waiter, wake_local_workers
from inspector.workers.claims import claim_for
from inspector.workers.replay_jobs import ReplayJobRunner

logger = logging.getLogger(__name__)

# A group that took longer than this dates its runs' last change again just before it commits.
RESTAMP_AFTER = signals.UPDATED_AT_LAG.total_seconds()

# How many of the oldest unfinished runs a claim looks at: a small index walk first, wider
# ones only when the oldest runs are all blocked, waiting or taken.
CLAIM_WINDOWS = (200, 5000, None)


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
        commit_window=0.02,
    ):
        if domain is None:
            domain = current_domain.get()
        self.domain = domain
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency
        self.handlers = set(handlers) if handlers else None
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        if poll_interval is None:
            poll_interval = database().worker_poll_interval
        self.poll_interval = poll_interval
        self.max_runs = max_runs
        self.commit_window = commit_window
        self.processed = 0
        self.more_due = True  # whether the last claim left work that is due now
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._in_progress = set()
        self._left_behind = []  # claimed runs an outage kept `_give_back` from releasing
        self._claims = claim_for(self)  # this database's SQL for leasing and renewing
        self.replay_jobs = ReplayJobRunner(worker_id=self.worker_id, lease_seconds=lease_seconds)

    # Claiming ------------------------------------------------------------------------------

    # A claim whose full batch of candidates another worker leased first looks again this
    # many times: workers choose the same oldest runs, and during a backlog one that lost the
    # race would otherwise wait for the next notification with work still due. A batch that
    # was not full held every due run, so there is nothing left to look for.
    CLAIM_ATTEMPTS = 3

    def claim(self, limit=None):
        """Lease up to `limit` due runs; only the write takes a lock, and only briefly."""
        limit = limit or self.batch_size
        runs, chosen = [], 0
        for _attempt in range(self.CLAIM_ATTEMPTS):
            runs, chosen = self._lease_due(timezone.now(), limit)
            if runs or chosen < limit:
                break
        if not runs:
            return []
        # More may be due at once when the batch was full or a claimed run holds back a later
        # run of its stream; otherwise the next work announces itself (a notification, a
        # commit in this process) or is found by the next poll.
        self.more_due = chosen >= limit or any(run.followed for run in runs)
        signals.announce(run_ids=[run.pk for run in runs])  # they are now "running"
        with self._lock:
            self._in_progress.update(run.pk for run in runs)
        # Sorted here: asked to sort, SQLite would walk a global-position index end to end.
        return sorted(runs, key=lambda run: run.global_position)

    def _lease_due(self, now, limit):
        """One attempt: lease what is due, widening the window while a full one held nothing
        to choose. Returns the leased runs and how many runs were chosen for the attempt."""
        adapt = HandlerRun._meta.get_field("lease_expires_at").get_db_prep_value
        at, expires = adapt(now, connection), adapt(now + self.lease, connection)
        for window in CLAIM_WINDOWS:
            runs, chosen, in_window = self._claims.lease(at, expires, limit, window)
            if chosen or window is None or in_window < window:
                return runs, chosen
        return [], 0

    def release(self, runs):
        """Give back claimed runs whose outcome was not committed (on shutdown, or after their
        group failed): their status guard leaves a run that did succeed alone."""
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
        if not ids:
            return
        self._claims.renew(ids, timezone.now() + self.lease)

    # Executing -----------------------------------------------------------------------------

    def execute(self, run):
        row = run.message
        data = run_payload(run)
        try:
            message_cls = self.domain.message_class(row.type)
            message = message_cls.from_dict(data)._with_metadata(store.metadata_of(row))
        except Exception as exc:
            # A payload its class refuses now (or a type no longer declared) can never be
            # handled as it is: the run fails like a handler would, so that it is seen, and
            # can be edited and replayed, instead of failing the worker's loop again and again.
            self.domain.dispatcher.record_unreadable(run, exc, owner=self.worker_id)
        else:
            self.domain.dispatcher.execute(run, message, row, owner=self.worker_id)
        with self._lock:
            self._in_progress.discard(run.pk)
            self.processed += 1

    def _budget_left(self):
        return self.max_runs is None or self.processed < self.max_runs

    def _release_left_behind(self):
        with self._lock:
            runs, self._left_behind = self._left_behind, []
        try:
            self.release(runs)
        except Exception:
            with self._lock:
                self._left_behind.extend(runs)
            raise

    def run_once(self):
        """Claim one batch and execute it; return how many runs were executed."""
        close_broken_connections()
        if self._left_behind:
            self._release_left_behind()
        if not self._budget_left():
            return 0
        limit = self.batch_size
        if self.max_runs is not None:
            limit = max(1, min(limit, self.max_runs - self.processed))
        runs = self.claim(limit)
        done = 0
        try:
            while done < len(runs) and not self._stopping.is_set():
                done += self._execute_group(runs[done:])
        except Exception:
            self._give_back(runs[done:])  # runs of the failed group that committed stay done
            raise
        if done < len(runs):
            self.release(runs[done:])
        return done

    def _give_back(self, runs):
        """After an error outside the handlers: release the runs, and at least stop renewing
        their leases, so that they expire and another claim takes them. Without the database
        they are released as soon as it is back, rather than after their leases."""
        try:
            self.release(runs)
        except Exception as error:
            if lost_database(error):
                with self._lock:
                    self._left_behind.extend(runs)
            else:
                logger.exception("Could not release runs worker_id=%s", self.worker_id)
        finally:
            with self._lock:
                self._in_progress.difference_update(run.pk for run in runs)

    def _execute_group(self, runs):
        """Execute runs in one transaction until `commit_window` has passed; return how many.

        Group commit: each run is its own savepoint (its unit of work), so a failing run
        rolls back alone and records its failure, while the group pays for one commit.
        Nothing is lost if the worker dies first: no outcome is committed, so the leases
        expire and the runs are claimed again. The window bounds how long a group holds its
        row locks (and, on SQLite, the write lock).
        """
        if not self.commit_window or len(runs) == 1:  # its unit of work is the transaction
            self.execute(runs[0])
            return 1
        done, error = 0, None
        started = time.monotonic()
        deadline = started + self.commit_window
        with transaction.atomic():
            for run in runs:
                if self._stopping.is_set():
                    break
                try:
                    self.execute(run)
                except Exception as exc:  # not the handler's failure: that one is recorded
                    error = exc  # the group's earlier outcomes are still committed
                    break
                done += 1
                if time.monotonic() >= deadline:
                    break
            if error is None and time.monotonic() - started > RESTAMP_AFTER:
                self._restamp(runs[:done])
        if error is not None:
            raise error
        return done

    @staticmethod
    def _restamp(runs):
        """Date the group's outcomes at its commit, keeping `signals.UPDATED_AT_LAG`: readers
        in other processes (the live feed) follow runs by `updated_at`, so an outcome stamped
        long before a slow group committed would never reach them."""
        HandlerRun.objects.filter(pk__in=[run.pk for run in runs]).update(updated_at=timezone.now())

    def drain(self):
        """Execute runs until none are due, taking the chunks of replay jobs that fall due
        meanwhile; return how many runs ran."""
        total = 0
        while not self._stopping.is_set() and self._budget_left():
            stepped = self.replay_jobs.step_due()
            done = self.run_once()
            if not done and not stepped:
                break
            total += done
        return total

    def _loop(self):
        waiter = Waiter(poll_interval=self.poll_interval)
        try:
            while not self._stopping.is_set() and self._budget_left():
                try:
                    done = self.run_once()
                except Exception as error:
                    # Without the database the claimed runs' leases expire and the runs are
                    # claimed again; what was committed waits in the store.
                    if not lost_database(error):
                        logger.exception("Worker loop error worker_id=%s", self.worker_id)
                    done = 0
                    self._stopping.wait(self.poll_interval)
                else:
                    database_outage.is_back()
                # Without LISTEN (SQLite) other processes' appends are not announced: look
                # again after every batch that found work.
                if not done or (not self.more_due and waiter.listening):
                    waiter.wait()
        finally:
            waiter.close()
            connection.close()

    def _heartbeat(self):
        interval = self.lease.total_seconds() / 3
        while not self._stopping.wait(interval):
            try:
                close_broken_connections()
                self.renew_leases()
            except Exception as error:
                if not lost_database(error):
                    logger.exception("Lease renewal failed worker_id=%s", self.worker_id)
        connection.close()

    def run(self):
        """Process runs until `stop()` (or `max_runs`); blocks the calling thread."""
        logger.info("Starting worker worker_id=%s concurrency=%s", self.worker_id, self.concurrency)
        heartbeat = threading.Thread(target=self._heartbeat, name="inspector-lease", daemon=True)
        heartbeat.start()
        jobs = threading.Thread(
            target=self.replay_jobs.run, args=(self._stopping,), name="inspector-jobs", daemon=True
        )
        jobs.start()
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
        jobs.join()
        logger.info("Stopped worker worker_id=%s processed=%s", self.worker_id, self.processed)

    def stop(self):
        """Finish the runs in hand, give back the rest, and return from `run()`."""
        self._stopping.set()
        wake_local_workers()  # a worker waiting out its poll without LISTEN stops at once
