"""Replay jobs: replay or resolve many runs in the background instead of inside one request.

Making a job freezes its runs (the keys of those failed or dead now) with one INSERT ...
SELECT and returns at once; workers carry it out (inspector/workers/replay_jobs.py).
Pause, resume and cancel change its status, which the worker re-reads under the job's row
lock before each chunk, so a chunk in flight finishes and none starts after.
"""

import logging

from django.db import connections, transaction
from django.utils import timezone

from inspector import conf
from inspector.exceptions import DomainError, ValidationError
from inspector.models import ReplayJob, ReplayJobRun
from inspector.services.runs import REPLAYABLE

logger = logging.getLogger(__name__)

# An admin selection of more runs than this becomes a job; smaller ones are done at once.
BACKGROUND_ABOVE = 100
MAX_RATE = 100_000  # runs per second: more than any database here keeps up with

Status = ReplayJob.Status
ACTIVE = (Status.WAITING, Status.RUNNING)  # a worker may take its next chunk


class NothingToReplay(DomainError):
    """None of the runs a job would cover is failed or dead: no job is made."""


class JobNotChangeable(DomainError):
    """A job cannot be paused, resumed or cancelled from the status it is in."""


def replay_job_create(*, action, runs, covers, user=None, reason="", rate=None):
    """Make a job that replays (or resolves) every run of `runs` failed or dead now, at `rate`
    runs per second (default: the `replay_rate` setting); `covers` says what for people.

    Raises ValidationError naming the field for a bad action, rate or reason, and
    NothingToReplay when no run qualifies; either way nothing is written."""
    errors = {}
    if action not in ReplayJob.Action.values:
        errors["action"] = [f"{action!r} is not one of {', '.join(ReplayJob.Action.values)}."]
    rate = conf.setting("replay_rate") if rate is None else rate
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= MAX_RATE:
        errors["rate"] = [f"The rate is a whole number of runs per second, 1 to {MAX_RATE}."]
    if len(reason) > 1000:
        errors["reason"] = ["The reason has at most 1000 characters."]
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    with transaction.atomic(using=runs.db):
        job = ReplayJob.objects.using(runs.db).create(
            action=action,
            covers=covers,
            reason=reason,
            created_by=user,
            created_at=now,
            updated_at=now,
            next_step_at=now,
            rate=rate,
        )
        job.total = _freeze(job, runs)
        if not job.total:
            transaction.set_rollback(True, using=runs.db)
            raise NothingToReplay(f"None of the runs of {covers} is failed or dead now.")
        ReplayJob.objects.using(runs.db).filter(pk=job.pk).update(total=job.total)
    logger.info(
        "Replay job created job=%s action=%s runs=%s user=%s", job.pk, action, job.total, user
    )
    return job


def _freeze(job, runs):
    """Copy the keys of `runs` failed or dead now into the job's runs in one statement (no
    round trip per run); returns how many it copied."""
    # In key order: each insert then lands on the rightmost page of the job's index, which
    # PostgreSQL's B-tree appends to without a descent per row.
    keys = (
        runs.filter(status__in=REPLAYABLE)
        .order_by("global_position", "handler")
        .values_list("pk", "global_position", "handler")
    )
    select, params = keys.query.sql_with_params()
    connection = connections[runs.db]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in ("job_id", "run_id", "global_position", "handler"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(ReplayJobRun._meta.db_table)} ({columns}) "
            f"SELECT %s, frozen.* FROM ({select}) frozen",
            [job.pk, *params],
        )
        return cursor.rowcount


def replay_job_pause(*, job, user=None):
    """Stop a waiting or running job after the chunk in flight; `replay_job_resume` goes on."""
    return _move(job, user, (Status.WAITING, Status.RUNNING), Status.PAUSED, "pause")


def replay_job_resume(*, job, user=None):
    """Let workers take a paused job's next chunk again, from where it stopped."""
    return _move(job, user, (Status.PAUSED,), Status.WAITING, "resume")


def replay_job_cancel(*, job, user=None):
    """End a job for good: the runs it has not reached stay as they are (failed or dead)."""
    return _move(
        job, user, (Status.WAITING, Status.RUNNING, Status.PAUSED), Status.CANCELLED, "cancel"
    )


def _move(job, user, sources, target, verb):
    now = timezone.now()
    with transaction.atomic():
        current = ReplayJob.objects.select_for_update().get(pk=job.pk)
        if current.status not in sources:
            raise JobNotChangeable(
                f"Cannot {verb} replay job {current.pk}: it is "
                f"{current.get_status_display().lower()}."
            )
        changes = {"status": target, "claimed_by": "", "lease_expires_at": None, "updated_at": now}
        if target == Status.WAITING:
            changes["next_step_at"] = now
        if target == Status.CANCELLED:
            changes["finished_at"] = now
        ReplayJob.objects.filter(pk=current.pk).update(**changes)
    logger.info("Replay job %s job=%s user=%s", target, job.pk, user)
    return ReplayJob.objects.get(pk=job.pk)
