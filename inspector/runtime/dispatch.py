"""Deliver stored messages to their handlers and record every handler run."""

import logging
import os
import socket
import time
import traceback
from collections import deque
from contextvars import ContextVar
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from inspector.models import (
    FailureGroup,
    HandlerAttempt,
    HandlerRun,
    HandlerRunReplay,
    HandlerState,
    RunStatus,
)
from inspector.runtime import names, signals
from inspector.runtime.failures import failure_group
from inspector.runtime.sql import Increment, new_instance, update_row, update_statement
from inspector.runtime.store import RowUpdate
from inspector.runtime.unit_of_work import Cause, caused_by, unit_of_work

logger = logging.getLogger(__name__)

SYNC_LEASE = timedelta(minutes=5)
_sync_queue = ContextVar("inspector_sync_queue", default=None)


_owner = {"pid": None, "name": ""}


def process_owner():
    """Who holds a claim made by sync dispatch in this process (named again after a fork)."""
    if _owner["pid"] != os.getpid():
        _owner["name"] = f"sync:{socket.gethostname()}:{os.getpid()}"
        _owner["pid"] = os.getpid()
    return _owner["name"]


_paused = {"at": float("-inf"), "names": frozenset()}
PAUSED_TTL = 1.0


def paused_handlers():
    """Names of paused handlers, read at most once a second per process."""
    if time.monotonic() - _paused["at"] > PAUSED_TTL:
        _paused["names"] = frozenset(
            HandlerState.objects.filter(paused=True).values_list("handler", flat=True)
        )
        _paused["at"] = time.monotonic()
    return _paused["names"]


def forget_paused_handlers():
    """Drop the cached set after a pause or resume in this process."""
    _paused["at"] = float("-inf")


def run_payload(run):
    """The payload `run` runs with now: its edit's (edit and replay: the stored message stays
    as it was), or its message's as stored. A query more only for a run with an edit."""
    if run.edit_id is not None:
        return HandlerRunReplay.objects.values_list("edited_data", flat=True).get(pk=run.edit_id)
    return run.message.data


class ClaimLost(Exception):
    """Another process took the run over (its lease had expired); this attempt is discarded."""


class Dispatcher:
    """Works out which handlers a message goes to, and runs them."""

    def __init__(self, domain):
        self.domain = domain

    @property
    def synchronous(self):
        return self.domain.config["event_processing"] == "sync"

    def runs_for(self, entries):
        """Pending runs for every handler subscribed to the appended events."""
        now = timezone.now()
        sync = self.synchronous
        owner = process_owner() if sync else ""
        runs = []
        for entry in entries:
            if entry.message.kind != "event":
                continue
            for spec in self.domain.subscribers(entry.message, entry.stream, entry.metadata):
                run = new_instance(
                    HandlerRun,
                    {
                        "message_id": entry.message._id,
                        "handler": spec.name,
                        "message_type": entry.message._type,
                        "stream": entry.stream,
                        "status": RunStatus.PENDING,
                        "available_at": now,
                        "claimed_by": owner,
                        "lease_expires_at": now + SYNC_LEASE if sync else None,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
                run._entry = entry  # positions are filled in when it is written
                run._message_instance = entry.message
                runs.append(run)
        return runs

    def command_run(self, run_id, entry, spec, started_at, duration_us):
        """The record of a command handler that already ran inside the command's transaction."""
        now = timezone.now()
        run = new_instance(
            HandlerRun,
            {
                "id": run_id,
                "message_id": entry.message._id,
                "handler": spec.name,
                "status": RunStatus.SUCCEEDED,
                "attempts": 1,
                "available_at": started_at,
                "started_at": started_at,
                "finished_at": now,
                "duration_us": duration_us,
                "created_at": now,
                "updated_at": now,
            },
        )
        run._entry = entry  # stream position and global position are filled in at flush
        return run

    @staticmethod
    def wakes_workers(runs):
        """Whether a run is left for the workers (a command handler's record is done)."""
        return any(run.status == RunStatus.PENDING and not run.claimed_by for run in runs)

    def after_commit(self, runs):
        """Run this transaction's pending runs now when processing is sync (breadth-first)."""
        owner = process_owner()
        jobs = [r for r in runs if r.status == RunStatus.PENDING and r.claimed_by == owner]
        if not jobs:
            return
        paused = paused_handlers()
        held = [run for run in jobs if run.handler in paused]
        if held:  # a paused handler's runs wait for a worker after it is resumed
            HandlerRun.objects.filter(pk__in=[run.pk for run in held]).update(
                claimed_by="", lease_expires_at=None, updated_at=timezone.now()
            )
            jobs = [run for run in jobs if run.handler not in paused]
        queue = _sync_queue.get()
        if queue is not None:  # already draining: runs raised by a handler go to the back
            queue.extend(jobs)
            return
        queue = deque(jobs)
        token = _sync_queue.set(queue)
        try:
            while queue:
                run = queue.popleft()
                self.execute(run, run._message_instance, run._entry.row, owner=owner)
        finally:
            _sync_queue.reset(token)

    def pending_command_run(self, entry, spec):
        """A queued run of a command handler, for a worker to pick up (async commands)."""
        now = timezone.now()
        run = new_instance(
            HandlerRun,
            {
                "message_id": entry.message._id,
                "handler": spec.name,
                "status": RunStatus.PENDING,
                "available_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )
        run._entry = entry
        return run

    def execute(self, run, message, row, *, owner):
        """Run one handler for one message in its own transaction and record the outcome."""
        spec = self.domain.handler_named(run.handler)
        method = spec.method_for(type(message))
        cause = Cause.of_run(run, row)
        started_at = timezone.now()
        started = time.perf_counter()

        finished = {}

        def outcome(entries):
            """The run's success, written in the statement that appends what it raised."""
            finished["duration_us"] = int((time.perf_counter() - started) * 1_000_000)
            run_id = str(run.id)
            raised = [str(e.message._id) for e in entries if e.metadata["handler_run_id"] == run_id]
            finished_at = timezone.now()
            sql, params = update_statement(
                HandlerRun,
                run.pk,
                {
                    "status": RunStatus.SUCCEEDED,
                    "attempts": Increment(),
                    "started_at": started_at,
                    "finished_at": finished_at,
                    "duration_us": finished["duration_us"],
                    "raised_message_ids": raised,
                    "error_type": "",
                    "error_message": "",
                    "traceback": "",
                    "failure_group": "",
                    "claimed_by": "",
                    "lease_expires_at": None,
                    "updated_at": finished_at,
                },
                where={"claimed_by": owner, "status": [RunStatus.PENDING, RunStatus.RUNNING]},
            )
            finished["update"] = RowUpdate(sql, params)
            return finished["update"]

        def finish(uow, flushed):
            if not finished["update"].matched:
                raise ClaimLost(run.pk)
            run.status = RunStatus.SUCCEEDED
            run.duration_us = finished["duration_us"]
            signals.announce_after_commit(run_ids=[run.pk])

        try:
            with caused_by(cause), unit_of_work(self.domain, outcome=outcome, finalize=finish):
                method(spec.handler_cls(), message)
        except ClaimLost:
            logger.warning("Handler run lost its claim run=%s handler=%s", run.pk, run.handler)
        except Exception as exc:
            self.record_failure(run, spec, exc, started_at, started, owner=owner)
        return run

    def record_unreadable(self, run, exc, *, owner):
        """Record that the run's message could not be read into its class (call it while
        handling `exc`): a failed attempt of the run, retried and then dead like any other."""
        spec = self.domain.handler_named(run.handler)
        self.record_failure(run, spec, exc, timezone.now(), time.perf_counter(), owner=owner)

    def record_failure(self, run, spec, exc, started_at, started, *, owner):
        """Keep the failed attempt and schedule a retry, or declare the run dead."""
        finished_at = timezone.now()
        duration_us = int((time.perf_counter() - started) * 1_000_000)
        error_type = names.error_type(exc)
        formatted = traceback.format_exc()
        message = str(exc)
        group = failure_group(
            handler=run.handler, error_type=error_type, message=message, traceback_text=formatted
        )
        with transaction.atomic():
            attempts = (
                HandlerRun.objects.filter(pk=run.pk, claimed_by=owner)
                .values_list("attempts", flat=True)
                .first()
            )
            if attempts is None:
                logger.warning("Handler run lost its claim run=%s handler=%s", run.pk, run.handler)
                return
            number = attempts + 1
            if number > spec.retries:
                status, available_at = RunStatus.DEAD, finished_at
            else:
                status = RunStatus.FAILED
                available_at = finished_at + timedelta(seconds=spec.retry_delay(number))
            update_row(
                HandlerRun,
                run.pk,
                {
                    "status": status,
                    "attempts": number,
                    "available_at": available_at,
                    "started_at": started_at,
                    "finished_at": finished_at,
                    "duration_us": duration_us,
                    "error_type": error_type,
                    "error_message": message,
                    "traceback": formatted,
                    "failure_group": group,
                    "claimed_by": "",
                    "lease_expires_at": None,
                    "updated_at": finished_at,
                },
            )
            _note_group(group, run.handler, error_type, message, finished_at)
            HandlerAttempt.objects.create(
                run_id=run.pk,
                number=number,
                worker=owner,
                started_at=started_at,
                finished_at=finished_at,
                duration_us=duration_us,
                error_type=error_type,
                error_message=message,
                traceback=formatted,
            )
            # at the commit: a worker may commit a group of runs at once
            signals.announce_after_commit(run_ids=[run.pk])
        logger.warning(
            "Handler run failed run=%s handler=%s attempt=%s status=%s error=%s",
            run.pk,
            run.handler,
            number,
            status,
            error_type,
        )
        run.status = status
        run.attempts = number
        run.error_type = error_type
        run.error_message = message
        run.failure_group = group


def _note_group(key, handler, error_type, message, at):
    """Write the group's row with its first failure. An existing row is left alone: an
    insert that conflicts takes no row lock, so failures of one group never wait on each
    other (only two first failures of one new group at once do, until the first commits)."""
    FailureGroup.objects.bulk_create(
        [
            FailureGroup(
                key=key, handler=handler, error_type=error_type, message=message, first_seen=at
            )
        ],
        ignore_conflicts=True,
    )
