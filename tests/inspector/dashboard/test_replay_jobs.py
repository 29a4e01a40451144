"""Replay jobs on the dashboard and in the admin: a group's replay makes a job and shows its
page, whose progress the page polls until it settles; pause, resume and cancel need the
replay permission (403 without, and no buttons); the admin makes a job for a big selection
and lists jobs with their progress; reasons are escaped."""

import re
import uuid
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from inspector.models import HandlerRun, HandlerRunReplay, Message, ReplayJob, RunStatus
from inspector.runtime.unit_of_work import unit_of_work
from inspector.services import handler_pause, handler_resume, replay_job_create
from inspector.workers.replay_jobs import ReplayJobRunner
from inspector.workers.worker import Worker
from tests.warehouse.models import Switch
from tests.warehouse.probe import Ping

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = "<script>alert('x')</script>"
HTMX = {"HTTP_HX_REQUEST": "true"}
VIEW = ("view_handlerrun", "view_message", "view_replayjob", "view_handlerrunreplay")


def login(django_user_model, name, *codenames):
    user = django_user_model.objects.create_user(name, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="inspector", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def operator(django_user_model):
    return login(django_user_model, "operator", *VIEW, "replay_handlerrun")


@pytest.fixture
def watcher(django_user_model):
    return login(django_user_model, "watcher", *VIEW)


@pytest.fixture
def dead_group(async_domain):
    """`count` pings whose Skipping runs died of one cause; returns the group's key."""

    def make(count):
        Switch.objects.bulk_create(Switch(name=f"skipping-{n}", on=True) for n in range(count))
        with unit_of_work(async_domain) as uow:
            for n in range(count):
                uow.append(Ping(n=n), stream=f"probe::skipping-{n % 2}")
        Worker(worker_id="test-worker").drain()
        (key,) = set(
            HandlerRun.objects.filter(handler="warehouse.Skipping").values_list(
                "failure_group", flat=True
            )
        )
        return key

    return make


def text_of(html):
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def make_job(key, *, rate=100, reason="fixed", user=None):
    return replay_job_create(
        action="replay",
        runs=HandlerRun.objects.filter(failure_group=key),
        covers=f"failure group {key}",
        reason=reason,
        rate=rate,
        user=user,
    )


def test_replaying_a_group_makes_a_job_whose_page_shows_its_progress_live(operator, dead_group):
    key = dead_group(3)
    replay = reverse("inspector:failure-group-action", args=[key, "replay"])
    confirm = text_of(operator.post(replay, {"reason": "flag fixed"}).content.decode())
    assert "3 handler runs of this group will be replayed: 3 dead." in confirm
    assert "A replay job does it in the background, 100 runs a second" in confirm
    assert not ReplayJob.objects.exists()  # nothing before the confirmation

    done = operator.post(replay, {"reason": "flag fixed", "confirm": "yes"}, follow=True)
    job = ReplayJob.objects.get()
    page = done.content.decode()
    assert done.redirect_chain == [(f"/inspector/jobs/{job.pk}/", 302)]
    assert (job.action, job.total, job.reason, job.created_by) == (
        "replay",
        3,
        "flag fixed",
        operator.user,
    )
    assert f"<h1>Replay job {job.pk}</h1>" in page
    assert f"failure group {key}: builtins.RuntimeError in warehouse.Skipping" in page
    text = text_of(page)
    assert "Status: Waiting" in text
    assert "Runs 3 Done 0 Failed again 0 Left 3 Skipped 0" in text
    assert 'hx-trigger="every 1s"' in page  # polls while it moves
    assert '<button type="submit" class="secondary">Pause</button>' in page
    assert '<button type="submit" class="secondary">Cancel</button>' in page
    assert ">Resume</button>" not in page

    detail = reverse("inspector:replay-job", args=[job.pk])
    ReplayJobRunner(worker_id="jobs").step(job.pk)  # the chunk is queued, not run yet
    fragment = operator.get(detail, **HTMX).content.decode()
    assert fragment.startswith('<section id="job-progress"')
    assert "Left 3 (3 queued, waiting for a worker)" in text_of(fragment)

    Switch.objects.filter(name="skipping-0").update(on=False)  # one of three is fixed
    Worker(worker_id="test-worker").drain()
    fragment = operator.get(detail, **HTMX).content.decode()
    assert "Status: Finished" in text_of(fragment)
    assert "Runs 3 Done 1 Failed again 2 Left 0 Skipped 0" in text_of(fragment)
    assert 'value="100"' in fragment  # the progress bar
    assert "hx-trigger" not in fragment  # settled: the page stops asking


def test_a_job_held_back_by_a_paused_handler_says_so(operator, dead_group):
    """The job's queued runs wait for a paused handler: its page names the handler and where
    to resume it, instead of only "waiting for a worker"."""
    job = make_job(dead_group(3))
    handler_pause(name="warehouse.Skipping")
    ReplayJobRunner(worker_id="jobs").step(job.pk)
    Worker(worker_id="test-worker").drain()  # skips the paused handler's runs
    detail = reverse("inspector:replay-job", args=[job.pk])
    fragment = operator.get(detail, **HTMX).content.decode()
    assert "Left 3 (3 queued, waiting for a worker)" in text_of(fragment)
    assert (
        "Held back warehouse.Skipping is paused: its queued runs wait until it is resumed "
        "on the handlers page"
    ) in text_of(fragment)
    assert f'href="{reverse("inspector:handlers")}"' in fragment

    handler_resume(name="warehouse.Skipping")
    fragment = operator.get(detail, **HTMX).content.decode()
    assert "Held back" not in text_of(fragment)  # resumed: only the workers are awaited
    assert "Left 3 (3 queued, waiting for a worker)" in text_of(fragment)


def test_the_jobs_list_and_the_nav_link(operator, dead_group):
    job = make_job(dead_group(2), rate=5)
    page = operator.get(reverse("inspector:replay-jobs")).content.decode()
    assert "<h1>Replay jobs</h1>" in page
    assert 'href="/inspector/jobs/" aria-current="page">Replay jobs</a>' in page
    row = re.search(rf'<tr id="replay-job-{job.pk}">(.*?)</tr>', page, re.S).group(1)
    assert text_of(row).startswith(f"Job {job.pk} Replay failure group")
    assert "Waiting 0 2" in text_of(row)
    live = operator.get(reverse("inspector:live")).content.decode()
    assert '<a href="/inspector/jobs/">Replay jobs</a>' in live


def test_pause_resume_and_cancel_from_the_jobs_page(operator, dead_group):
    job = make_job(dead_group(4), rate=2)
    url = lambda action: reverse("inspector:replay-job-action", args=[job.pk, action])  # noqa: E731

    paused = operator.post(url("pause"), follow=True)
    assert f"Replay job {job.pk} paused." in paused.content.decode()
    assert ">Resume</button>" in paused.content.decode()
    assert ">Pause</button>" not in paused.content.decode()
    job.refresh_from_db()
    assert job.status == "paused"
    assert ReplayJobRunner(worker_id="jobs").step_due() == 0

    operator.post(url("resume"))
    job.refresh_from_db()
    assert job.status == "waiting"
    assert ReplayJobRunner(worker_id="jobs").step_due() == 2

    cancelled = operator.post(url("cancel"), follow=True).content.decode()
    assert f"Replay job {job.pk} cancelled." in cancelled
    assert "This job has ended" in cancelled
    again = operator.post(url("cancel"), follow=True).content.decode()
    assert f"Cannot cancel replay job {job.pk}: it is cancelled." in again
    assert list(HandlerRun.objects.values_list("status", flat=True).order_by("status")) == [
        "dead",
        "dead",
        "pending",
        "pending",
    ]
    assert operator.post(url("delete")).status_code == 404
    missing = reverse("inspector:replay-job-action", args=[job.pk + 100, "pause"])
    assert operator.post(missing).status_code == 404
    assert operator.get(reverse("inspector:replay-job", args=[job.pk + 100])).status_code == 404


def test_without_the_replay_permission_no_buttons_and_403(client, watcher, dead_group):
    job = make_job(dead_group(2))
    detail = reverse("inspector:replay-job", args=[job.pk])
    assert client.get(detail).status_code == 302  # to the login
    assert client.get(reverse("inspector:replay-jobs")).status_code == 302

    page = watcher.get(detail).content.decode()
    assert f"<h1>Replay job {job.pk}</h1>" in page
    for button in ("Pause", "Resume", "Cancel"):
        assert f">{button}</button>" not in page
    assert "Change this job" not in page
    for action in ("pause", "resume", "cancel"):
        url = reverse("inspector:replay-job-action", args=[job.pk, action])
        assert watcher.post(url).status_code == 403
        assert client.post(url).status_code == 302
    job.refresh_from_db()
    assert job.status == "waiting"


def test_reasons_and_what_a_job_covers_are_escaped(operator, dead_group):
    job = replay_job_create(
        action="resolve",
        runs=HandlerRun.objects.filter(failure_group=dead_group(2)),
        covers=f"a selection {HOSTILE}",
        reason=HOSTILE,
    )
    pages = [
        operator.get(reverse("inspector:replay-job", args=[job.pk])),
        operator.get(reverse("inspector:replay-jobs")),
        operator.get("/admin/inspector/replayjob/"),
        operator.get(f"/admin/inspector/replayjob/{job.pk}/change/"),
    ]
    for response in pages:
        html = response.content.decode()
        assert response.status_code == 200
        assert HOSTILE not in html
        assert "&lt;script&gt;" in html


def bulk_failed_runs(count):
    """`count` failed runs of one message each, written directly (no handler runs them)."""
    now = timezone.now()
    messages = Message.objects.bulk_create(
        Message(
            kind="event",
            type="warehouse.OrderConfirmed.v1",
            stream=f"warehouse::order-{uuid.uuid4()}",
            category="warehouse::order",
            position=0,
            global_position=n,
            data={},
            metadata={},
            correlation_id=uuid.uuid4(),
            time=now,
        )
        for n in range(count)
    )
    HandlerRun.objects.bulk_create(
        HandlerRun(
            message=message,
            handler="bulk.Handler",
            message_type=message.type,
            stream=message.stream,
            position=0,
            global_position=message.global_position,
            status=RunStatus.FAILED,
            attempts=1,
            available_at=now,
            error_type="bulk.Error",
            created_at=now,
            updated_at=now,
        )
        for message in messages
    )


def test_the_admin_makes_a_job_for_a_big_selection_and_lists_jobs_with_progress(operator):
    bulk_failed_runs(101)
    ids = [str(pk) for pk in HandlerRun.objects.values_list("pk", flat=True)]
    data = {"action": "resolve_selected", "_selected_action": ids}
    confirm = text_of(operator.post("/admin/inspector/handlerrun/", data).content.decode())
    assert "101 of the 101 selected handler runs will be marked resolved: 101 failed." in confirm
    assert "a replay job does it in the background, 100 runs a second" in confirm
    assert not ReplayJob.objects.exists()

    done = operator.post("/admin/inspector/handlerrun/", {**data, "confirm": "yes", "reason": "ok"})
    job = ReplayJob.objects.get()
    assert done["Location"] == f"/inspector/jobs/{job.pk}/"
    assert (job.action, job.total, job.reason) == ("resolve", 101, "ok")
    assert not HandlerRun.objects.filter(status="resolved").exists()  # the job will

    ReplayJobRunner(worker_id="jobs").step(job.pk)
    listing = text_of(operator.get("/admin/inspector/replayjob/").content.decode())
    assert "99% · done 100, left 1, skipped 0 of 101" in listing

    paused = operator.post(
        "/admin/inspector/replayjob/", {"action": "pause_jobs", "_selected_action": [job.pk]}
    )
    assert paused.status_code == 302
    job.refresh_from_db()
    assert job.status == "paused"
    refused = operator.post(
        "/admin/inspector/replayjob/",
        {"action": "pause_jobs", "_selected_action": [job.pk]},
        follow=True,
    )
    assert f"Cannot pause replay job {job.pk}: it is paused." in refused.content.decode()
    operator.post(
        "/admin/inspector/replayjob/", {"action": "cancel_jobs", "_selected_action": [job.pk]}
    )
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert HandlerRun.objects.filter(status="failed").count() == 1  # left as it was
    assert HandlerRunReplay.objects.filter(job=job).count() == 100


def test_the_jobs_admin_actions_need_the_replay_permission(watcher, dead_group):
    job = make_job(dead_group(2))
    listing = watcher.get("/admin/inspector/replayjob/").content.decode()
    assert "pause_jobs" not in listing
    watcher.post(
        "/admin/inspector/replayjob/", {"action": "cancel_jobs", "_selected_action": [job.pk]}
    )
    job.refresh_from_db()
    assert job.status == "waiting"


def test_a_finished_jobs_page_keeps_asking_while_a_run_waits_for_its_retry(operator, dead_group):
    key = dead_group(2)
    job = make_job(key)
    Switch.objects.filter(name="skipping-0").update(on=False)
    runner = ReplayJobRunner(worker_id="jobs")
    runner.step(job.pk)
    Worker(worker_id="test-worker").drain()
    runner.step(job.pk, now=timezone.now() + timedelta(seconds=2))  # finishes it
    failed = HandlerRun.objects.filter(failure_group=key, status=RunStatus.DEAD)
    failed.update(status=RunStatus.FAILED)  # as a run with retries left: one more attempt due
    runner.settle_due()

    detail = reverse("inspector:replay-job", args=[job.pk])
    fragment = operator.get(detail, **HTMX).content.decode()
    assert "Status: Finished" in text_of(fragment)
    assert "Done 1 Failed again 1 (1 waiting for a retry) Left 0" in text_of(fragment)
    assert 'hx-trigger="every 1s"' in fragment  # its retry may still succeed

    HandlerRun.objects.filter(failure_group=key, status=RunStatus.FAILED).update(
        status=RunStatus.DEAD
    )
    runner.settle_due()
    fragment = operator.get(detail, **HTMX).content.decode()
    assert "Done 1 Failed again 1 Left 0" in text_of(fragment)
    assert "hx-trigger" not in fragment
    assert ReplayJob.objects.get(pk=job.pk).settled_at is not None
