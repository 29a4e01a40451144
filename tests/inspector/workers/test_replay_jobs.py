"""Replay jobs carried out by workers: a group's dead runs queued at a rate, in order, with
counters and progress right; pause, resume, cancel; a crashed worker's lease; skipped runs;
resolve jobs; bad input writes nothing."""

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from inspector.exceptions import ValidationError
from inspector.models import HandlerRun, HandlerRunReplay, ReplayJob, ReplayJobRun, RunStatus
from inspector.readmodel.replay_jobs import replay_job_progress
from inspector.runtime.unit_of_work import unit_of_work
from inspector.services import (
    JobNotChangeable,
    NothingToReplay,
    handler_run_replay,
    handler_run_resolve,
    replay_job_cancel,
    replay_job_create,
    replay_job_pause,
    replay_job_resume,
)
from inspector.workers.replay_jobs import ReplayJobRunner
from inspector.workers.worker import Worker
from tests.warehouse.models import Seen, Switch
from tests.warehouse.probe import Ping

pytestmark = pytest.mark.django_db(transaction=True)

SKIPPING = "warehouse.Skipping"


def drain():
    return Worker(worker_id="test-worker").drain()


@pytest.fixture
def dead_group(async_domain):
    """`count` pings over `streams` streams whose Skipping runs all died of one cause (retries
    0); the cause is fixed afterwards. Returns the runs, in global order."""

    def make(count, *, streams=1):
        Switch.objects.bulk_create(Switch(name=f"skipping-{n}", on=True) for n in range(count))
        with unit_of_work(async_domain) as uow:
            for n in range(count):
                uow.append(Ping(n=n), stream=f"probe::skipping-{n % streams}")
        drain()
        runs = list(HandlerRun.objects.filter(handler=SKIPPING).order_by("global_position"))
        assert {run.status for run in runs} == {RunStatus.DEAD}
        assert len({run.failure_group for run in runs}) == 1  # one group
        Switch.objects.all().update(on=False)  # the fix
        return runs

    return make


def job_over(runs, *, action="replay", rate=100, user=None, reason="stock fixed"):
    group = runs[0].failure_group
    return replay_job_create(
        action=action,
        runs=HandlerRun.objects.filter(failure_group=group),
        covers=f"failure group {group}",
        user=user,
        reason=reason,
        rate=rate,
    )


def statuses(runs):
    return [HandlerRun.objects.get(pk=run.pk).status for run in runs]


def test_a_job_over_a_groups_dead_runs_queues_them_all_and_they_succeed(
    dead_group, django_user_model
):
    runs = dead_group(6, streams=2)
    operator = django_user_model.objects.create_user("operator")
    job = job_over(runs, user=operator)

    assert (job.status, job.total, job.applied) == ("waiting", 6, 0)
    assert ReplayJobRun.objects.filter(job=job).count() == 6
    assert statuses(runs) == ["dead"] * 6  # made, not carried out: nothing changed yet
    assert not HandlerRunReplay.objects.exists()

    drain()  # the worker takes the job's chunk, then runs what it queued

    job.refresh_from_db()
    assert (job.status, job.applied, job.skipped) == ("finished", 6, 0)
    assert job.started_at is not None and job.finished_at is not None
    assert statuses(runs) == ["succeeded"] * 6
    assert Seen.objects.filter(handler="Skipping").count() == 6
    lineage = HandlerRunReplay.objects.filter(job=job)
    assert {(r.action, r.user, r.reason, r.previous_status) for r in lineage} == {
        ("replay", operator, "stock fixed", "dead")
    }
    assert sorted(r.run_id for r in lineage) == sorted(run.pk for run in runs)
    progress = replay_job_progress(job)
    assert (progress.done, progress.failed_again, progress.left, progress.percent) == (6, 0, 0, 100)
    assert progress.settled


def test_progress_counts_runs_that_fail_again_and_those_still_queued(dead_group):
    runs = dead_group(4)
    Switch.objects.filter(name="skipping-1").update(on=True)  # one cause is not fixed
    job = job_over(runs, rate=4)
    ReplayJobRunner(worker_id="jobs").step(job.pk)
    job.refresh_from_db()
    queued = replay_job_progress(job)
    assert (queued.applied, queued.queued, queued.done, queued.left) == (4, 4, 0, 4)
    assert job.status == "running" and not queued.settled  # the chunk came up full

    ReplayJobRunner(worker_id="jobs").step(job.pk, now=timezone.now() + timedelta(seconds=2))
    drain()
    job.refresh_from_db()
    progress = replay_job_progress(job)
    assert job.status == "finished"
    assert (progress.done, progress.failed_again, progress.queued, progress.left) == (3, 1, 0, 0)
    assert statuses(runs) == ["succeeded", "dead", "succeeded", "succeeded"]


def test_a_step_queues_at_most_rate_runs_a_second(dead_group):
    runs = dead_group(7)
    job = job_over(runs, rate=3)
    runner = ReplayJobRunner(worker_id="jobs")
    now = timezone.now()

    assert runner.step(job.pk, now=now) == 3
    assert statuses(runs).count("pending") == 3
    assert runner.step(job.pk, now=now + timedelta(seconds=0.5)) is None  # not due yet
    assert runner.step_due(now=now + timedelta(seconds=0.5)) == 0
    assert statuses(runs).count("pending") == 3

    assert runner.step(job.pk, now=now + timedelta(seconds=1)) == 3
    assert statuses(runs).count("pending") == 6
    assert runner.step(job.pk, now=now + timedelta(seconds=2)) == 1  # the last, short chunk
    job.refresh_from_db()
    assert (job.status, job.applied) == ("finished", 7)
    assert runner.step(job.pk, now=now + timedelta(seconds=3)) is None  # finished


def test_pause_stops_a_job_resume_goes_on_and_cancel_leaves_the_rest_dead(dead_group):
    runs = dead_group(8)
    job = job_over(runs, rate=2)
    runner = ReplayJobRunner(worker_id="jobs")
    later = timezone.now() + timedelta(seconds=5)
    assert runner.step(job.pk) == 2

    job = replay_job_pause(job=job)
    assert (job.status, job.claimed_by) == ("paused", "")
    assert runner.step(job.pk, now=later) is None
    assert runner.step_due(now=later) == 0
    assert statuses(runs).count("pending") == 2
    with pytest.raises(JobNotChangeable, match="Cannot pause replay job .*: it is paused"):
        replay_job_pause(job=job)

    job = replay_job_resume(job=job)
    assert job.status == "waiting"
    assert runner.step(job.pk, now=later) == 2  # from where it stopped
    assert statuses(runs)[:4] == ["pending"] * 4

    job = replay_job_cancel(job=job)
    assert (job.status, job.finished_at is not None) == ("cancelled", True)
    assert runner.step_due(now=later + timedelta(seconds=5)) == 0
    drain()
    assert statuses(runs) == ["succeeded"] * 4 + ["dead"] * 4
    job.refresh_from_db()
    assert (job.applied, replay_job_progress(job).settled) == (4, True)
    with pytest.raises(JobNotChangeable, match="it is cancelled"):
        replay_job_resume(job=job)


def test_a_crashed_workers_job_is_finished_by_another_once_its_lease_expires(dead_group):
    runs = dead_group(6)
    job = job_over(runs, rate=2)
    now = timezone.now()
    crashed = ReplayJobRunner(worker_id="crashed", lease_seconds=30)
    assert crashed.step(job.pk, now=now) == 2  # ... and then its process dies

    other = ReplayJobRunner(worker_id="other", lease_seconds=30)
    assert other.step_due(now=now + timedelta(seconds=5)) == 0  # the lease still holds
    job.refresh_from_db()
    assert job.claimed_by == "crashed"

    after = now + timedelta(seconds=31)
    assert other.step_due(now=after) == 2
    assert other.step_due(now=after + timedelta(seconds=1)) == 2
    assert other.step_due(now=after + timedelta(seconds=2)) == 0  # finished with a short chunk
    job.refresh_from_db()
    assert (job.status, job.applied, job.claimed_by) == ("finished", 6, "")
    assert HandlerRunReplay.objects.filter(job=job).count() == 6  # each run replayed once
    drain()
    assert statuses(runs) == ["succeeded"] * 6


def test_a_stopping_worker_gives_its_job_back_at_once(dead_group):
    runs = dead_group(4)
    job = job_over(runs, rate=2)
    stopping = ReplayJobRunner(worker_id="stopping")
    assert stopping.step(job.pk) == 2
    stopping.release()  # what a worker does when it stops
    later = timezone.now() + timedelta(seconds=2)
    assert ReplayJobRunner(worker_id="restarted").step_due(now=later) == 2


def test_a_running_worker_carries_out_a_job_made_while_it_runs(dead_group):
    runs = dead_group(5, streams=2)
    worker = Worker(worker_id="running-worker", poll_interval=0.2)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        job = job_over(runs, rate=2)  # three chunks, a second apart
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and statuses(runs) != ["succeeded"] * 5:
            time.sleep(0.1)
        assert statuses(runs) == ["succeeded"] * 5
    finally:
        worker.stop()
        thread.join(15)
    assert not thread.is_alive()
    job.refresh_from_db()
    assert (job.status, job.applied, job.claimed_by) == ("finished", 5, "")


def test_a_streams_runs_are_queued_and_succeed_in_position_order(dead_group):
    runs = dead_group(6)  # one stream
    job = job_over(runs, rate=2)
    runner = ReplayJobRunner(worker_id="jobs")
    now = timezone.now()
    for second in range(4):
        runner.step(job.pk, now=now + timedelta(seconds=second))
        drain()  # runs what this chunk queued before the next chunk is taken
    assert list(
        Seen.objects.filter(handler="Skipping").order_by("pk").values_list("position", flat=True)
    ) == [run.position for run in runs]
    assert [run.position for run in runs] == sorted(run.position for run in runs)
    order = list(
        HandlerRun.objects.filter(pk__in=[r.pk for r in runs])
        .order_by("finished_at", "global_position")
        .values_list("position", flat=True)
    )
    assert order == sorted(order)


def test_runs_replayed_or_resolved_by_hand_meanwhile_are_skipped_and_counted(dead_group):
    runs = dead_group(5)
    job = job_over(runs)
    handler_run_replay(run=runs[1], reason="by hand")
    handler_run_resolve(run=runs[3], reason="by hand")

    assert ReplayJobRunner(worker_id="jobs").step(job.pk) == 5
    job.refresh_from_db()
    assert (job.status, job.applied, job.skipped) == ("finished", 3, 2)
    assert sorted(HandlerRunReplay.objects.filter(job=job).values_list("run_id", flat=True)) == (
        sorted(run.pk for run in (runs[0], runs[2], runs[4]))
    )
    drain()
    assert statuses(runs) == ["succeeded", "succeeded", "succeeded", "resolved", "succeeded"]
    progress = replay_job_progress(job)
    assert (progress.done, progress.skipped, progress.left) == (3, 2, 0)


def test_a_resolve_job_closes_the_runs_without_running_them(dead_group):
    runs = dead_group(3)
    job = job_over(runs, action="resolve", reason="refunded by hand")
    drain()
    job.refresh_from_db()
    assert (job.status, job.applied) == ("finished", 3)
    assert statuses(runs) == ["resolved"] * 3
    assert not Seen.objects.filter(handler="Skipping").exists()
    assert set(HandlerRunReplay.objects.values_list("action", "reason", "job")) == {
        ("resolve", "refunded by hand", job.pk)
    }
    progress = replay_job_progress(job)
    assert (progress.done, progress.left, progress.settled) == (3, 0, True)


def test_a_bad_rate_or_nothing_to_replay_writes_no_job(dead_group, settings):
    runs = dead_group(2)
    for rate in (0, -3, 2.5, "fast", 10**9):
        with pytest.raises(ValidationError) as raised:
            job_over(runs, rate=rate)
        assert list(raised.value.errors) == ["rate"]
    with pytest.raises(ValidationError) as raised:
        job_over(runs, action="delete")
    assert list(raised.value.errors) == ["action"]
    with pytest.raises(NothingToReplay, match="None of the runs of nothing"):
        replay_job_create(
            action="replay",
            runs=HandlerRun.objects.filter(status="succeeded"),
            covers="nothing",
        )
    assert not ReplayJob.objects.exists() and not ReplayJobRun.objects.exists()

    settings.INSPECTOR = {**getattr(settings, "INSPECTOR", {}), "replay_rate": 7}
    assert job_over(runs, rate=None).rate == 7  # the setting's rate
