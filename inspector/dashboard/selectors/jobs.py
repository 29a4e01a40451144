"""Replay jobs for their pages: the newest jobs with their counters, one job with its progress."""

from inspector.models import ReplayJob
from inspector.readmodel.replay_jobs import replay_job_progress

JOBS_LISTED = 50  # the newest jobs the list shows


def replay_job_list(limit=JOBS_LISTED):
    """The newest jobs, each read from its own row only (its counters): one query."""
    return list(
        ReplayJob.objects.select_related("created_by").order_by("-created_at", "-id")[:limit]
    )


def replay_job(job_id):
    """One job and its progress (None, None when there is no such job)."""
    job = ReplayJob.objects.select_related("created_by").filter(pk=job_id).first()
    if job is None:
        return None, None
    return job, replay_job_progress(job)
