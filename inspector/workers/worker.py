"""Workers claim due handler runs under a lease and execute them, in stream order per handler."""

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from inspector.dashboard import feed
from inspector.models import HandlerRun, Message, RunStatus
from inspector.runtime import store
from inspector.runtime.connections import close_broken_connections
from inspector.runtime.sql import Columns, placeholders
from inspector.runtime.wakeup import Waiter, wake_local_workers

logger = logging.getLogger(__name__)

# What executing a run reads of its message: all of it but the category and causation column.
MESSAGE_FIELDS = (
    "id",
    "kind",
    "type",
    "stream",
    "position",
    "global_position",
    "data",
    "metadata",
    "correlation_id",
    "time",
)


# A group that took longer than this dates its runs' last change again just before it commits.
RESTAMP_AFTER = feed.RUN_WINDOW.total_seconds() / 3

# WINDOW_SCAN. On PostgreSQL every run that finishes leaves a dead entry in the partial index
# of unfinished runs until VACUUM. A plain index scan marks the entries it finds dead, so the
# next scan skips them; a bitmap scan, which the planner prefers whenever few runs are
# unfinished, reads them all again at every claim (0.7 ms at 12,000 finished runs, growing
# until autovacuum comes by). The windowed claim turns bitmap scans off for its statement.

# A run that may still change; written literally (= the partial indexes' condition) so that
# SQLite uses those indexes.
UNFINISHED = "status IN ('pending', 'running', 'failed')"

# How many of the oldest unfinished runs a claim looks at: a small index walk first, wider
# ones only when the oldest runs are all blocked, waiting or taken.
CLAIM_WINDOWS = (200, 5000, None)


def due(alias, *, status=None):
    """SQL: the run `alias` may be claimed now (three `%s` for the time). A run is due when it
    is pending or failed, its retry time has come and no live lease holds it, or when it is
    running on a lease that expired (its worker died)."""
    status = status or f"{alias}.status"
    return (
        f"(({status} IN ('pending', 'failed') AND {alias}.available_at <= %s "
        f"AND ({alias}.claimed_by = '' OR {alias}.lease_expires_at < %s)) "
        f"OR ({status} = 'running' AND {alias}.lease_expires_at < %s))"
    )


def _followed(alias):
    """SQL: a later unfinished run of the same handler and stream waits for run `alias`."""
    return (
        "EXISTS (SELECT 1 FROM inspector_handlerrun e WHERE e.handler = "
        f"{alias}.handler AND e.stream = {alias}.stream AND e.position > {alias}.position "
        f"AND e.{UNFINISHED})"
    )


def default_worker_id():
    return f"worker:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs handler runs until stopped (`run`) or until none are due (`drain`)."""

    # What executing a claimed run reads of it (its message is read whole): converting the
    # other columns of every claimed row was a tenth of a run's cost.
    RUN_FIELDS = ("id", "handler", "status", "attempts", "stream", "position", "global_position")

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
            from inspector.runtime.domain import current_domain

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
        self.commit_window = commit_window
        self.processed = 0
        self.more_due = True  # whether the last claim left work that is due now
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._in_progress = set()

    # Claiming ------------------------------------------------------------------------------

    def _candidate_query(self, at, limit, *, window):
        """The due runs whose stream has no earlier unfinished run, oldest first, as
        `(ctes, select, params)`: `select` reads their ids as `id`.

        Raw SQL on purpose: the status list is written literally so SQLite can use the
        partial indexes, and `window` bounds the scan to the oldest unfinished runs (an index
        walk whatever the planner's statistics say); the CTE `w` holds that window. The
        caller retries without the window when a full window held nothing claimable.
        """
        earlier_unfinished = (
            "AND NOT EXISTS (SELECT 1 FROM inspector_handlerrun e WHERE e.handler = r.handler "
            f"AND e.stream = r.stream AND e.position < r.position AND e.{UNFINISHED})"
        )
        ctes, source = [], "inspector_handlerrun"
        if window:
            # SQLite would rather sort a status range than walk the partial index; tell it.
            hint = " INDEXED BY run_unfinished_order" if connection.vendor == "sqlite" else ""
            # An earlier unfinished run of the same stream has a lower global position, so it
            # is in the window too: ranking the window's runs per stream is the ordering test.
            ctes = [
                "w AS MATERIALIZED (SELECT id, handler, stream, position, global_position, "
                "status, available_at, claimed_by, lease_expires_at "
                f"FROM inspector_handlerrun{hint} WHERE {UNFINISHED} "
                f"ORDER BY global_position LIMIT {int(window)})",
                "ranked AS (SELECT w.*, ROW_NUMBER() OVER "
                "(PARTITION BY handler, stream ORDER BY position) AS nth FROM w)",
            ]
            source, earlier_unfinished = "ranked", "AND r.nth = 1"
        sql = [
            f"SELECT r.id FROM {source} r WHERE r.{UNFINISHED}",
            f"AND {due('r')}",
            earlier_unfinished,
        ]
        params = [at, at, at]
        parked = [spec.name for spec in self.domain.handlers() if spec.park_on_failure]
        if parked:
            sql.append(
                f"AND NOT (r.handler IN ({placeholders(len(parked))}) AND EXISTS ("
                "SELECT 1 FROM inspector_handlerrun d WHERE d.handler = r.handler "
                "AND d.stream = r.stream AND d.position < r.position AND d.status = 'dead'))"
            )
            params.extend(parked)
        sql.append(
            "AND NOT EXISTS (SELECT 1 FROM inspector_handlerstate s "
            "WHERE s.handler = r.handler AND s.paused)"
        )
        if self.handlers is not None:
            sql.append(f"AND r.handler IN ({placeholders(len(self.handlers))})")
            params.extend(sorted(self.handlers))
        sql.append("ORDER BY r.global_position LIMIT %s")
        params.append(limit)
        return ctes, "\n".join(sql), params

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
        feed.poke()  # the runs are now "running"
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
            if connection.vendor == "postgresql":
                runs, chosen, in_window = self._lease_skip_locked(at, expires, limit, window)
            else:
                runs, chosen, in_window = self._lease_under_write_lock(at, expires, limit, window)
            if chosen or window is None or in_window < window:
                return runs, chosen
        return [], 0

    def _lease_skip_locked(self, at, expires, limit, window):
        """PostgreSQL, one statement: choose the candidates, lock those no one else holds,
        re-check on the locked (latest) versions that they are still due, lease them, and read
        them with their messages. Returns the runs, how many were chosen and how many
        unfinished runs the window held.

        One statement instead of four (choose, lease, load, count the window) because an
        idle worker's claim pays them all for the one or two runs a notification announces.
        The due test reads the locked rows, not the table, so the plan stays a primary-key
        lookup whatever the planner believes about the status indexes.
        """
        ctes, select, params = self._candidate_query(at, limit, window=window)
        run_columns = Columns(HandlerRun, self.RUN_FIELDS, "l")
        message_columns = Columns(Message, MESSAGE_FIELDS, "m")
        qn = connection.ops.quote_name
        returning = ", ".join(
            f"r.{qn(HandlerRun._meta.get_field(name).column)}"
            for name in (*self.RUN_FIELDS, "message")
        )
        in_window = "(SELECT COUNT(*) FROM w)" if window else "0"
        sql = (
            f"WITH {''.join(cte + ', ' for cte in ctes)}"
            f"chosen AS MATERIALIZED ({select}), "
            "locked AS MATERIALIZED (SELECT id, status, available_at, claimed_by, "
            "lease_expires_at FROM inspector_handlerrun WHERE id IN (SELECT id FROM chosen) "
            "FOR UPDATE SKIP LOCKED), "
            "l AS (UPDATE inspector_handlerrun r SET status = 'running', claimed_by = %s, "
            "lease_expires_at = %s, updated_at = %s FROM locked WHERE r.id = locked.id "
            f"AND {due('locked')} RETURNING {returning}) "
            f"SELECT n.chosen, n.in_window, {run_columns.sql}, {message_columns.sql}, "
            f"{_followed('l')} FROM (SELECT (SELECT COUNT(*) FROM chosen) AS chosen, "
            f"{in_window} AS in_window) n "
            "LEFT JOIN (l JOIN inspector_message m ON m.id = l.message_id) ON true"
        )
        with connection.cursor() as cursor:
            if window:  # see WINDOW_SCAN
                cursor.execute("SET enable_bitmapscan = off")
            try:
                cursor.execute(sql, [*params, self.worker_id, expires, at, at, at, at])
                rows = cursor.fetchall()
            finally:
                if window:  # after an error: a broken connection is replaced, and an aborted
                    with contextlib.suppress(DatabaseError):  # transaction undoes the SET
                        cursor.execute("RESET enable_bitmapscan")
        chosen, in_window = rows[0][0], rows[0][1]
        if rows[0][2] is None:  # the left join's one row: nothing leased
            return [], chosen, in_window
        return [self._loaded(row, offset=2) for row in rows], chosen, in_window

    def _lease_under_write_lock(self, at, expires, limit, window):
        """SQLite: choose, then lease in an IMMEDIATE transaction, which holds the single
        write lock, with one UPDATE that re-checks the rows are still due; then read them."""
        ctes, select, params = self._candidate_query(at, limit, window=window)
        with connection.cursor() as cursor:
            cursor.execute(f"WITH {', '.join(ctes)} {select}" if ctes else select, params)
            chosen = [row[0] for row in cursor.fetchall()]
        if not chosen:
            return [], 0, window and self._window_count(window)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE inspector_handlerrun SET status = 'running', claimed_by = %s, "
                f"lease_expires_at = %s, updated_at = %s WHERE id IN ({placeholders(len(chosen))}) "
                # `+status`: a plain term for SQLite's planner, so the primary key drives
                # the statement rather than the partial index of every unfinished run
                f"AND {due('inspector_handlerrun', status='+status')} RETURNING id",
                [self.worker_id, expires, at, *chosen, at, at, at],
            )
            ids = [row[0] for row in cursor.fetchall()]
        return (self._load(ids) if ids else []), len(chosen), None

    def _load(self, ids):
        """The leased runs with their messages: one query, no ORM compile."""
        run_columns = Columns(HandlerRun, self.RUN_FIELDS, "r")
        message_columns = Columns(Message, MESSAGE_FIELDS, "m")
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {run_columns.sql}, {message_columns.sql}, {_followed('r')} "
                "FROM inspector_handlerrun r JOIN inspector_message m ON m.id = r.message_id "
                f"WHERE r.id IN ({placeholders(len(ids))})",
                ids,
            )
            return [self._loaded(row) for row in cursor.fetchall()]

    def _loaded(self, row, offset=0):
        """A run and its message from a row of `_load`'s columns, starting at `offset`."""
        run = Columns(HandlerRun, self.RUN_FIELDS, "r").load(row, offset)
        offset += len(self.RUN_FIELDS)
        run.message = Columns(Message, MESSAGE_FIELDS, "m").load(row, offset)
        run.followed = bool(row[offset + len(MESSAGE_FIELDS)])
        return run

    @staticmethod
    def _window_count(window):
        """How many unfinished runs the window holds (at most `window`)."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COUNT(*) FROM (SELECT 1 FROM inspector_handlerrun WHERE {UNFINISHED} "
                "LIMIT %s) w",
                [window],
            )
            return cursor.fetchone()[0]

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
        expires = timezone.now() + self.lease
        if connection.vendor != "postgresql":
            HandlerRun.objects.filter(
                pk__in=ids, claimed_by=self.worker_id, status=RunStatus.RUNNING
            ).update(lease_expires_at=expires)
            return
        # Skip the rows the worker's open group has already written: waiting for them while
        # holding the rows the group writes next is a deadlock (and they need no renewal).
        pk = HandlerRun._meta.pk
        adapt = HandlerRun._meta.get_field("lease_expires_at").get_db_prep_value
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE inspector_handlerrun SET lease_expires_at = %s WHERE id IN ("
                f"SELECT id FROM inspector_handlerrun WHERE id IN ({placeholders(len(ids))}) "
                "AND claimed_by = %s AND status = 'running' FOR UPDATE SKIP LOCKED)",
                [
                    adapt(expires, connection),
                    *(pk.get_db_prep_value(value, connection) for value in ids),
                    self.worker_id,
                ],
            )

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
        close_broken_connections()
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
        their leases, so that they expire and another claim takes them."""
        try:
            self.release(runs)
        except Exception:
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
        """Date the group's outcomes at its commit: the live feed re-reads run changes only
        `feed.RUN_WINDOW` back, so an outcome stamped long before a slow group committed
        would never reach the dashboard."""
        HandlerRun.objects.filter(pk__in=[run.pk for run in runs]).update(updated_at=timezone.now())

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
        wake_local_workers()  # a worker waiting out its poll without LISTEN stops at once
