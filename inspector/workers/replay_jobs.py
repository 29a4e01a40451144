"""Carry out replay jobs (inspector/services/jobs.py makes them) a chunk at a time.

Each step is one transaction: lock a due job whose lease is free, expired or this worker's;
take the next `min(rate, CHUNK)` of its runs after its cursor in (global position, handler)
order; replay or resolve those still failed or dead as an operator's replay does
(`services.handler_runs_apply`, the same records and read-model bookkeeping); move the
cursor, the counters, the lease and the time of the next chunk (`size / rate` seconds on),
and finish the job when the chunk came up short. A job is queued in global order, so each
stream's earlier runs are pending before its later ones, and the workers' claims run a
stream's runs in position order among the unfinished ones.

A job's rate is a ceiling: it takes its next chunk only while no more than `QUEUED_AHEAD`
chunks of the runs it queued still wait for the workers, so when they fall behind (a busy
machine, a slow handler, a paused one) it waits for them instead of piling up pending runs.
Every run it queued is open for the store indexer until it ends, and the dashboard's live
counts, a job's progress and a group's run list each read the open or unfinished runs: with a
pile of pending runs they grew with it, and the pages slowed while the job ran.

Each step, and each turn of the runner's loop for jobs that have ended or are paused, also
moves the job's settled mark past the runs that have ended since (readmodel/replay_jobs.py),
so reading a job's progress costs the runs in flight, not the job; a job is settled (and
left alone) once it has ended and all its runs have.

Every worker (`run_handlers`, the embedded one) runs a ReplayJobRunner in a thread of its
own; the lease lets one of them at a time carry a job out, and when that worker dies the
lease runs out and another one goes on from the cursor. A worker that stops gives its
leases back at once, so a restart resumes without waiting for them.
"""

import logging
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from inspector.models import ReplayJob, ReplayJobRun
from inspector.readmodel.replay_jobs import queued_runs, settle
from inspector.runtime.connections import close_broken_connections, lost_database
from inspector.services import CHUNK, handler_runs_apply

logger = logging.getLogger(__name__)

Status = ReplayJob.Status
ACTIVE = (Status.WAITING, Status.RUNNING)
POLL_SECONDS = 1.0  # how often an idle runner looks for a job made or resumed meanwhile
QUEUED_AHEAD = 2  # chunks of a job's runs that may wait for the workers when it takes another


class ReplayJobRunner:
    """Steps the replay jobs that are due, under a lease per job held by `worker_id`."""

    def __init__(self, *, worker_id, lease_seconds=30.0, poll_interval=POLL_SECONDS):
        self.worker_id = worker_id
        self.lease = timedelta(seconds=lease_seconds)
        self.poll_interval = poll_interval

    def _takeable(self, now):
        """Jobs this runner may step now: active, due, and not leased to another worker."""
        return ReplayJob.objects.filter(status__in=ACTIVE, next_step_at__lte=now).filter(
            Q(claimed_by="") | Q(claimed_by=self.worker_id) | Q(lease_expires_at__lt=now)
        )

    def step_due(self, now=None):
        """One chunk of every job that is due; returns how many runs they took in all."""
        now = now or timezone.now()
        taken = 0
        for pk in self._takeable(now).order_by("next_step_at").values_list("pk", flat=True):
            taken += self.step(pk, now=now) or 0
        return taken

    def step(self, job_id, *, now=None):
        """One chunk of one job; returns how many of its runs it took (replayed, resolved or
        skipped), or None when the job is not this runner's to step now."""
        now = now or timezone.now()
        with transaction.atomic():
            job = self._takeable(now).select_for_update(skip_locked=True).filter(pk=job_id).first()
            if job is None:
                return None
            settle(job, now)
            size = min(job.rate, CHUNK)
            keys = list(
                ReplayJobRun.objects.filter(job=job)
                .filter(
                    Q(global_position__gt=job.after_position)
                    | Q(global_position=job.after_position, handler__gt=job.after_handler)
                )
                .order_by("global_position", "handler")
                .values_list("run_id", "global_position", "handler")[:size]
            )
            held = {  # the job stays this runner's until its next step
                "next_step_at": now + timedelta(seconds=size / job.rate),
                "claimed_by": self.worker_id,
                "lease_expires_at": now + self.lease,
                "updated_at": now,
            }
            ahead = QUEUED_AHEAD * size
            if keys and queued_runs(job, up_to=ahead + 1) > ahead:  # the workers are behind
                ReplayJob.objects.filter(pk=job.pk).update(**held)
                return 0
            applied = handler_runs_apply(
                [run_id for run_id, _, _ in keys],
                user=job.created_by,
                reason=job.reason,
                action=job.action,
                job=job,
            )
            finished = len(keys) < size
            changes = {
                **held,
                "applied": job.applied + applied,
                "skipped": job.skipped + len(keys) - applied,
                "started_at": Coalesce("started_at", now),
            }
            if keys:
                changes.update(after_position=keys[-1][1], after_handler=keys[-1][2])
            if finished:
                changes.update(
                    status=Status.FINISHED, finished_at=now, claimed_by="", lease_expires_at=None
                )
            else:
                changes.update(status=Status.RUNNING)
            ReplayJob.objects.filter(pk=job.pk).update(**changes)
        if finished:
            logger.info("Replay job finished job=%s worker_id=%s", job.pk, self.worker_id)
        return len(keys)

    def settle_due(self, now=None):
        """Move the settled mark of every job not settled yet (ended, paused or between two
        steps); returns how many records the marks passed in all."""
        now = now or timezone.now()
        passed = 0
        for pk in ReplayJob.objects.filter(settled_at=None).values_list("pk", flat=True):
            with transaction.atomic():
                job = ReplayJob.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
                if job is not None:
                    passed += settle(job, now)
        return passed

    def seconds_to_next(self, now=None):
        """How long until a job is due, at most the poll interval (jobs made meanwhile)."""
        now = now or timezone.now()
        due = ReplayJob.objects.filter(status__in=ACTIVE).aggregate(due=Min("next_step_at"))["due"]
        if due is None:
            return self.poll_interval
        return min(self.poll_interval, max(0.0, (due - now).total_seconds()))

    def release(self):
        """Give back this runner's leases, so that another worker goes on at once."""
        ReplayJob.objects.filter(claimed_by=self.worker_id).update(
            claimed_by="", lease_expires_at=None, updated_at=timezone.now()
        )

    def run(self, stopping):
        """Step jobs as they fall due until `stopping` (a threading.Event) is set."""
        try:
            while not stopping.is_set():
                try:
                    close_broken_connections()
                    self.step_due()
                    self.settle_due()
                    wait = self.seconds_to_next()
                except Exception as error:
                    if not lost_database(error):
                        logger.exception("Replay job step failed worker_id=%s", self.worker_id)
                    wait = self.poll_interval
                stopping.wait(max(wait, 0.01))
            try:
                self.release()
            except Exception as error:  # the lease runs out instead
                if not lost_database(error):
                    logger.exception("Could not release replay jobs worker_id=%s", self.worker_id)
        finally:
            connection.close()
