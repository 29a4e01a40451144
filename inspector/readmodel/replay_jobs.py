"""How far a replay job has got: done, failed again, left.

Read from the job's counters plus one count over the replay records the job wrote, grouped by
their runs' status now (the records' `job` index), so it costs the same whatever else is in
the store; resolve jobs need only the counters.
"""

from dataclasses import dataclass

from django.db.models import Count

from inspector.models import HandlerRunReplay, ReplayJob, RunStatus

DONE = (RunStatus.SUCCEEDED, RunStatus.RESOLVED)
FAILED_AGAIN = (RunStatus.FAILED, RunStatus.DEAD)


@dataclass(frozen=True)
class JobProgress:
    total: int
    applied: int  # queued again or resolved so far
    skipped: int  # no longer failed or dead when the job reached them
    done: int  # replayed and succeeded since (or resolved)
    failed_again: int  # replayed and failed (or dead) again
    queued: int  # replayed and not run yet (pending or running)
    settled: bool  # the job ended and none of its runs is still queued: nothing will change

    @property
    def left(self):
        """Runs not reached yet, plus those queued and still waiting for a worker."""
        return self.total - self.applied - self.skipped + self.queued

    @property
    def percent(self):
        """How much of the job is behind it, 0 to 100."""
        return 100 if not self.total else round(100 * (self.total - self.left) / self.total)


def replay_job_progress(job):
    """The progress of `job` (a ReplayJob read just now)."""
    done = failed_again = queued = 0
    if job.action == ReplayJob.Action.RESOLVE:
        done = job.applied
    elif job.applied:
        by_status = dict(
            HandlerRunReplay.objects.filter(job=job)
            .order_by()
            .values_list("run__status")
            .annotate(n=Count("pk"))
        )
        done = sum(by_status.get(status, 0) for status in DONE)
        failed_again = sum(by_status.get(status, 0) for status in FAILED_AGAIN)
        queued = by_status.get(RunStatus.PENDING, 0) + by_status.get(RunStatus.RUNNING, 0)
    ended = job.status in (ReplayJob.Status.FINISHED, ReplayJob.Status.CANCELLED)
    return JobProgress(
        total=job.total,
        applied=job.applied,
        skipped=job.skipped,
        done=done,
        failed_again=failed_again,
        queued=queued,
        settled=ended and not queued,
    )
