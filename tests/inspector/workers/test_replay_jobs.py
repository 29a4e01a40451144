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


def test_a_job_waits_for_the_workers_when_they_fall_behind_and_goes_on_once_they_catch_up(
    dead_group,
):
    """Its rate is a ceiling: runs it queued pile up as open, unfinished runs that every live
    count and progress read pays for, so it takes no chunk while more than two wait."""
    runs = dead_group(10)
    job = job_over(runs, rate=2)
    runner = ReplayJobRunner(worker_id="jobs")
    now = timezone.now() + timedelta(minutes=1)  # the test's clock: no worker's step is due

    for second in range(3):  # no worker runs them meanwhile
        assert runner.step(job.pk, now=now + timedelta(seconds=second)) == 2
    assert statuses(runs).count("pending") == 6  # three chunks queued
    assert runner.step(job.pk, now=now + timedelta(seconds=3)) == 0  # it waits
    job.refresh_from_db()
    assert (job.status, job.applied, job.claimed_by) == ("running", 6, "jobs")
    assert statuses(runs).count("pending") == 6 and statuses(runs).count("dead") == 4
    assert replay_job_progress(job).queued == 6

    drain()  # the workers catch up
    assert runner.step(job.pk, now=now + timedelta(seconds=4)) == 2
    assert runner.step(job.pk, now=now + timedelta(seconds=5)) == 2
    assert runner.step(job.pk, now=now + timedelta(seconds=6)) == 0  # the last, empty chunk
    drain()
    job.refresh_from_db()
    assert (job.status, job.applied) == ("finished", 10)
    assert statuses(runs) == ["succeeded"] * 10


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


# The settled mark: a progress read counts only the runs after it ---------------------------


def recount(job):
    """The job's progress counted from scratch: every replay record it wrote, by its run's
    status now (what a read cost before the mark; the oracle for the mark's bookkeeping)."""
    statuses = list(HandlerRunReplay.objects.filter(job=job).values_list("run__status", flat=True))
    return {
        "done": sum(s in ("succeeded", "resolved") for s in statuses),
        "failed_again": sum(s in ("failed", "dead") for s in statuses),
        "queued": sum(s in ("pending", "running") for s in statuses),
    }


def counted(job):
    job.refresh_from_db()
    progress = replay_job_progress(job)
    return {"done": progress.done, "failed_again": progress.failed_again, "queued": progress.queued}


def hold(runs):
    """Keep `runs` queued: no worker takes a run before it is available."""
    later = timezone.now() + timedelta(days=1)
    HandlerRun.objects.filter(pk__in=[run.pk for run in runs]).update(available_at=later)


@pytest.mark.parametrize(
    "outcomes",
    [
        "ok ok ok ok",
        "again again again",
        "ok again queued ok retrying again ok",
        "queued ok ok again ok",
        "retrying retrying ok",
    ],
)
def test_progress_read_past_the_mark_equals_a_full_recount_after_any_mix(dead_group, outcomes):
    outcomes = outcomes.split()
    runs = dead_group(len(outcomes), streams=len(outcomes))  # a stream each: any order
    for n, outcome in enumerate(outcomes):
        Switch.objects.filter(name=f"skipping-{n}").update(on=outcome == "again")
    job = job_over(runs, rate=2)  # two runs a step: the mark moves between steps
    runner = ReplayJobRunner(worker_id="jobs")
    held = [
        run
        for run, outcome in zip(runs, outcomes, strict=True)
        if outcome in ("queued", "retrying")
    ]
    now = timezone.now()
    for step in range(len(outcomes) // 2 + 2):
        runner.step(job.pk, now=now + timedelta(seconds=step))
        hold(held)
        drain()
        assert counted(job) == recount(job)
        runner.settle_due()
        assert counted(job) == recount(job)
    retrying = [run for run, outcome in zip(runs, outcomes, strict=True) if outcome == "retrying"]
    HandlerRun.objects.filter(pk__in=[run.pk for run in retrying]).update(status="failed")
    runner.settle_due()
    job.refresh_from_db()
    expected = {
        "done": outcomes.count("ok"),
        "failed_again": outcomes.count("again") + outcomes.count("retrying"),
        "queued": outcomes.count("queued"),
    }
    assert job.status == "finished"
    assert counted(job) == recount(job) == expected
    held_records = HandlerRunReplay.objects.filter(job=job, run__in=[run.pk for run in held])
    if held:  # the mark stops before the first held run's record, and the job is not settled
        assert job.settled_through < min(held_records.values_list("pk", flat=True))
        assert job.settled_done + job.settled_failed < len(outcomes)
        assert not replay_job_progress(job).settled
    else:
        assert (job.settled_done, job.settled_failed) == (
            expected["done"],
            expected["failed_again"],
        )

    # The held runs run now (the retrying ones' retry succeeds): everything settles.
    HandlerRun.objects.filter(pk__in=[run.pk for run in held]).update(
        status="pending", available_at=timezone.now()
    )
    drain()
    runner.settle_due()
    job.refresh_from_db()
    final = {
        "done": len(outcomes) - outcomes.count("again"),
        "failed_again": outcomes.count("again"),
        "queued": 0,
    }
    assert counted(job) == recount(job) == final
    assert (job.settled_done, job.settled_failed) == (final["done"], final["failed_again"])
    assert job.settled_at is not None and replay_job_progress(job).settled


def test_a_read_counts_only_the_runs_after_the_mark_and_a_settled_job_none(
    dead_group, django_assert_num_queries
):
    runs = dead_group(5, streams=5)
    Switch.objects.filter(name="skipping-1").update(on=True)  # fails again: dead
    job = job_over(runs, rate=100)
    runner = ReplayJobRunner(worker_id="jobs")
    runner.step(job.pk)
    hold(runs[3:4])
    drain()
    runner.settle_due()
    job.refresh_from_db()
    assert (job.settled_done, job.settled_failed) >= (2, 1)  # the first three, at least
    with django_assert_num_queries(1):
        progress = replay_job_progress(job)
    assert (progress.done, progress.failed_again, progress.queued) == (3, 1, 1)

    # Runs the mark passed are not read again: rewritten behind its back, nothing moves.
    before = counted(job)
    settled = HandlerRunReplay.objects.filter(job=job, pk__lte=job.settled_through)
    HandlerRun.objects.filter(pk__in=settled.values("run_id")).update(status="pending")
    assert counted(job) == before
    assert before == {"done": 3, "failed_again": 1, "queued": 1}

    # Once the job has ended and all its runs have, a read needs no query at all.
    HandlerRun.objects.filter(pk__in=settled.values("run_id")).update(status="succeeded")
    HandlerRun.objects.filter(pk=runs[3].pk).update(available_at=timezone.now())
    drain()
    runner.settle_due()
    job.refresh_from_db()
    assert job.settled_at is not None
    with django_assert_num_queries(0):
        progress = replay_job_progress(job)
    assert (progress.done, progress.failed_again, progress.queued, progress.settled) == (
        4,
        1,
        0,
        True,
    )


def test_a_run_replayed_again_by_hand_after_it_settled_keeps_the_jobs_outcome(dead_group):
    runs = dead_group(2, streams=2)
    Switch.objects.filter(name="skipping-0").update(on=True)
    job = job_over(runs, rate=100)
    runner = ReplayJobRunner(worker_id="jobs")
    runner.step(job.pk)
    drain()
    runner.step(job.pk, now=timezone.now() + timedelta(seconds=2))  # finishes the job
    runner.settle_due()
    assert statuses(runs) == ["dead", "succeeded"]

    Switch.objects.all().update(on=False)
    handler_run_replay(run=HandlerRun.objects.get(pk=runs[0].pk), reason="by hand")
    drain()
    assert statuses(runs) == ["succeeded", "succeeded"]
    assert counted(job) == {"done": 1, "failed_again": 1, "queued": 0}  # what its replay came to
    assert recount(job) == {"done": 2, "failed_again": 0, "queued": 0}


def test_the_store_indexer_reads_again_at_once_when_runs_are_reopened_under_it(
    dead_group, monkeypatch
):
    """A replay reopens dead runs (a job every second), which fails an indexer step that read
    them before; the indexer reads again at once rather than backing off for another indexer
    that is not there, so the index keeps up while a job runs."""
    from inspector.models import OpenRun
    from inspector.readmodel import indexer as store_indexer

    runs = dead_group(3, streams=3)
    idx = store_indexer.Indexer(backoff=10.0)
    while not store_indexer.read_step().empty:
        assert idx.step_once() in (0, idx.poll)
    handler_run_replay(run=HandlerRun.objects.get(pk=runs[0].pk), reason="first")
    drain()  # runs[0] succeeds: the indexer has an open run to settle

    read_step = store_indexer.read_step

    def read_then_replay(**kwargs):
        step = read_step(**kwargs)
        monkeypatch.setattr(store_indexer, "read_step", read_step)
        handler_run_replay(run=HandlerRun.objects.get(pk=runs[1].pk), reason="meanwhile")
        return step

    monkeypatch.setattr(store_indexer, "read_step", read_then_replay)
    assert idx.step_once() == 0  # overtaken by the reopen: again now, not in 10 s
    assert idx._following is None
    assert OpenRun.objects.filter(run_id=runs[0].pk).exists()  # the stale step wrote nothing
    idx.step_once()
    assert not OpenRun.objects.filter(run_id=runs[0].pk).exists()  # settled into the tallies
    assert OpenRun.objects.filter(run_id=runs[1].pk).exists()  # reopened, pending
