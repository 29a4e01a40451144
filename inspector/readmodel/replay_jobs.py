"""How far a replay job has got: done, failed again, left; and the settled mark that keeps
reading it cheap however many runs the job covers.

A replay job writes one replay record per run it queues again, in chunks, so the records' ids
grow as the job moves. Workers (`settle`, each runner's step) walk the job's records forward
from its mark (`ReplayJob.settled_through`) in id order, adding those whose runs have ended
to the job's settled counters, and stop at the first one whose run has not ended. A progress
read is then the counters plus one count over the records after the mark, grouped by their
runs' status now (the (job, id) index): it costs the runs in flight, not the job.

Ended, for the mark: succeeded or resolved (done), or dead (failed again). A failed run is
not: it waits for a retry that may still succeed, so it holds the mark (it is counted as
failed again while it waits, and the job is not settled). A run the mark has passed keeps the
outcome it had then: if someone replays it again by hand later, the job still reports what
its replay came to (the later replay is that person's, on the run's own page), so a job's
"done" never moves back. A run that does not end soon (a paused handler's, or one waiting
for a long retry) holds the mark, and until it ends a read counts every record after it,
ended or not: O(runs replayed since), the price of one mark instead of a set of runs.
"""

from dataclasses import dataclass

from django.db import connection

from inspector.models import HandlerRunReplay, HandlerState, ReplayJob, RunStatus
from inspector.readmodel.tallies import quoted_table, runs_by_id
from inspector.runtime.sql import placeholders

DONE = (RunStatus.SUCCEEDED, RunStatus.RESOLVED)
FAILED_AGAIN = (RunStatus.FAILED, RunStatus.DEAD)
QUEUED = (RunStatus.PENDING, RunStatus.RUNNING)
ENDED = {**dict.fromkeys(DONE, "done"), RunStatus.DEAD: "failed"}  # what passes the mark
SETTLE_PAGE = 500  # records one read of the walk takes
ENDS = (ReplayJob.Status.FINISHED, ReplayJob.Status.CANCELLED)


@dataclass(frozen=True)
class JobProgress:
    total: int
    applied: int  # queued again or resolved so far
    skipped: int  # no longer failed or dead when the job reached them
    done: int  # replayed and succeeded since (or resolved)
    failed_again: int  # replayed and failed (or dead) again
    queued: int  # replayed and not run yet (pending or running)
    retrying: int  # of failed_again: failed and waiting for a retry
    settled: bool  # the job ended and none of its runs will change any more
    paused_handlers: tuple = ()  # paused handlers that hold back some of the queued runs

    @property
    def left(self):
        """Runs not reached yet, plus those queued and still waiting for a worker."""
        return self.total - self.applied - self.skipped + self.queued

    @property
    def percent(self):
        """How much of the job is behind it, 0 to 100."""
        return 100 if not self.total else round(100 * (self.total - self.left) / self.total)


def replay_job_progress(job):
    """The progress of `job` (a ReplayJob read just now): its settled counters plus the
    records after its mark, in one query (none for a resolve job or a settled one)."""
    ended = job.status in ENDS
    if job.action == ReplayJob.Action.RESOLVE:
        return _progress(job, done=job.applied, settled=ended)
    by_status, paused = {}, set()
    if job.settled_at is None and job.applied:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT r.status, r.handler, COUNT(*), EXISTS(SELECT 1 FROM "
                f"{quoted_table(HandlerState)} h WHERE h.handler = r.handler AND h.paused) "
                f"FROM {_after_mark()} "
                "GROUP BY r.status, r.handler",
                [job.pk, job.settled_through],
            )
            for status, handler, count, handler_paused in cursor.fetchall():
                by_status[status] = by_status.get(status, 0) + count
                if status in QUEUED and handler_paused:
                    paused.add(handler)
    queued = sum(by_status.get(status, 0) for status in QUEUED)
    retrying = by_status.get(RunStatus.FAILED, 0)
    return _progress(
        job,
        done=job.settled_done + sum(by_status.get(status, 0) for status in DONE),
        failed_again=job.settled_failed + sum(by_status.get(s, 0) for s in FAILED_AGAIN),
        queued=queued,
        retrying=retrying,
        settled=ended and not queued and not retrying,
        # Their queued runs wait until they are resumed, and the job with them once it has
        # QUEUED_AHEAD chunks waiting (workers/replay_jobs.py): the page says why.
        paused_handlers=tuple(sorted(paused)),
    )


def queued_runs(job, *, up_to):
    """How many of `job`'s replayed runs still wait for a worker (pending or running), counted
    up to `up_to`: the records after its mark (the (job, id) index), as a progress read."""
    if job.action == ReplayJob.Action.RESOLVE or job.settled_at is not None:
        return 0
    sql = (
        f"SELECT COUNT(*) FROM (SELECT 1 FROM {_after_mark()} "
        f"AND r.status IN ({placeholders(len(QUEUED))}) LIMIT %s) waiting"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [job.pk, job.settled_through, *QUEUED, up_to])
        return cursor.fetchone()[0]


def _after_mark():
    """The runs of a job's records after its mark (parameters: the job's id, the mark), each
    looked up by its id (the (job, id) index, then the runs' primary key)."""
    return runs_by_id(HandlerRunReplay, "k.job_id = %s AND k.id > %s")


def _progress(job, *, done, settled, failed_again=0, queued=0, retrying=0, paused_handlers=()):
    return JobProgress(
        total=job.total,
        applied=job.applied,
        skipped=job.skipped,
        done=done,
        failed_again=failed_again,
        queued=queued,
        retrying=retrying,
        settled=settled,
        paused_handlers=paused_handlers,
    )


def settle(job, now):
    """Move `job`'s mark past its records whose runs have ended, adding them to its settled
    counters, and mark the job settled once it has ended and all its runs have. The caller
    holds the job's row lock (select_for_update) in a transaction and passes the row it read;
    returns how many records the mark passed."""
    if job.settled_at is not None:
        return 0
    mark, done, failed, passed = job.settled_through, 0, 0, 0
    caught_up = job.action == ReplayJob.Action.RESOLVE  # its outcomes are its counters
    while not caught_up:
        page = list(
            HandlerRunReplay.objects.filter(job=job, pk__gt=mark)
            .order_by("pk")
            .values_list("pk", "run__status")[:SETTLE_PAGE]
        )
        for pk, status in page:
            outcome = ENDED.get(status)
            if outcome is None:
                break
            mark, passed = pk, passed + 1
            done += outcome == "done"
            failed += outcome == "failed"
        else:
            caught_up = len(page) < SETTLE_PAGE
            continue
        break
    changes = {}
    if passed:
        changes.update(
            settled_through=mark,
            settled_done=job.settled_done + done,
            settled_failed=job.settled_failed + failed,
        )
    if caught_up and job.status in ENDS:
        changes["settled_at"] = now
    if changes:
        ReplayJob.objects.filter(pk=job.pk).update(**changes)
        for name, value in changes.items():
            setattr(job, name, value)
    return passed
