"""Replay jobs: the list, one job's page with its progress (htmx polls a fragment every
PROGRESS_SECONDS until nothing will change any more), and pause, resume, cancel."""

from django.contrib import messages as notices
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from inspector import services
from inspector.dashboard.selectors import jobs as selectors
from inspector.dashboard.views.messages import REPLAY_PERMISSION
from inspector.models import ReplayJob

PROGRESS_SECONDS = 1  # how often a job's page asks for its progress while it moves

ACTIONS = {  # the URL's action: (service, what the notice says happened)
    "pause": (services.replay_job_pause, "paused"),
    "resume": (services.replay_job_resume, "resumed"),
    "cancel": (services.replay_job_cancel, "cancelled"),
}


@staff_member_required
@require_GET
def replay_job_list(request):
    """The newest replay jobs with their status and how far each has got."""
    return render(request, "inspector/replay-jobs.html", {"jobs": selectors.replay_job_list()})


def _job_or_404(job_id):
    job, progress = selectors.replay_job(job_id)
    if job is None:
        raise Http404("No replay job with this number")
    return job, progress


@staff_member_required
@require_GET
def replay_job_detail(request, job_id):
    """One job: what it covers, its progress (the fragment htmx polls) and its buttons."""
    job, progress = _job_or_404(job_id)
    context = {
        "job": job,
        "progress": progress,
        "progress_seconds": PROGRESS_SECONDS,
        "can_change": request.user.has_perm(REPLAY_PERMISSION),
        "active": job.status in (ReplayJob.Status.WAITING, ReplayJob.Status.RUNNING),
        "paused": job.status == ReplayJob.Status.PAUSED,
    }
    if request.htmx:
        return render(request, "inspector/replay-job-progress.html", context)
    return render(request, "inspector/replay-job.html", context)


@staff_member_required
@require_POST
def replay_job_action(request, job_id, action):
    """Pause, resume or cancel a job; needs the replay permission."""
    if action not in ACTIONS:
        raise Http404("No such action")
    if not request.user.has_perm(REPLAY_PERMISSION):
        return HttpResponse("You may not pause, resume or cancel replay jobs.", status=403)
    job, _ = _job_or_404(job_id)
    service, done = ACTIONS[action]
    try:
        service(job=job, user=request.user)
    except services.JobNotChangeable as refused:
        notices.warning(request, str(refused))
    else:
        notices.success(request, f"Replay job {job.pk} {done}.")
    return redirect("inspector:replay-job", job_id=job.pk)
