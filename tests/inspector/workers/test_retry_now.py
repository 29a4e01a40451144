"""Retry now: a failed run waiting out its backoff is made due at once, one, many or a group."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inspector.dashboard.selectors.failures import group_runs
from inspector.models import HandlerAttempt, HandlerRun, HandlerRunReplay, RunStatus
from inspector.runtime.unit_of_work import unit_of_work
from inspector.services import (
    RunNotReplayable,
    handler_run_retry_now,
    handler_runs_retry_now,
)
from inspector.workers.worker import Worker
from tests.warehouse.models import Seen, Switch
from tests.warehouse.probe import Ping

pytestmark = pytest.mark.django_db(transaction=True)


def append_pings(domain, category, numbers):
    with unit_of_work(domain) as uow:
        for n in numbers:
            uow.append(Ping(n=n), stream=f"{category}-{n}")


def step():
    """One worker step: claim what is due and run it; how many runs it ran."""
    return Worker(worker_id="test-worker").run_once()


def failed_flaky_run(domain, n=0, *, backoff=timedelta(hours=1)):
    """A Flaky run that failed its first attempt and waits `backoff` for its next."""
    Switch.objects.get_or_create(name="flaky", defaults={"on": True})
    append_pings(domain, "probe::flaky", [n])
    run = HandlerRun.objects.get(handler="warehouse.Flaky", position=0, stream=f"probe::flaky-{n}")
    assert step() == 1
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("failed", 1)
    HandlerRun.objects.filter(pk=run.pk).update(available_at=timezone.now() + backoff)
    return run


def test_a_run_retried_now_is_claimed_by_the_next_step_not_before(async_domain, admin_user):
    run = failed_flaky_run(async_domain)
    assert step() == 0  # an hour to go
    Switch.objects.filter(name="flaky").update(on=False)

    before = timezone.now()
    retried = handler_run_retry_now(run=run, user=admin_user, reason="gateway is back")
    assert retried.status == "failed" and retried.attempts == 1  # still failed, due now
    assert before <= retried.available_at <= timezone.now()

    assert step() == 1
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("succeeded", 2)
    assert Seen.objects.filter(handler="Flaky").count() == 1
    # The failed attempt stays in the history; the record says who, when and why.
    assert list(HandlerAttempt.objects.filter(run=run).values_list("number", flat=True)) == [1]
    replay = HandlerRunReplay.objects.get(run=run)
    assert (replay.action, replay.user, replay.reason) == ("retry", admin_user, "gateway is back")
    assert (replay.previous_status, replay.attempts_before) == ("failed", 1)


def test_a_run_that_fails_again_after_retry_now_keeps_counting_its_attempts(
    async_domain, admin_user
):
    run = failed_flaky_run(async_domain)
    handler_run_retry_now(run=run, user=admin_user)
    assert step() == 1
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("failed", 2)
    assert list(HandlerAttempt.objects.filter(run=run).values_list("number", flat=True)) == [1, 2]


@pytest.mark.parametrize("status", [RunStatus.DEAD, RunStatus.SUCCEEDED, RunStatus.RESOLVED])
def test_only_failed_runs_can_be_retried_now(async_domain, admin_user, status):
    run = failed_flaky_run(async_domain)
    HandlerRun.objects.filter(pk=run.pk).update(status=status)
    due = HandlerRun.objects.get(pk=run.pk).available_at

    with pytest.raises(RunNotReplayable, match=f"it is {status.label.lower()}; only failed runs"):
        handler_run_retry_now(run=run, user=admin_user)

    run.refresh_from_db()
    assert (run.status, run.available_at) == (status, due)
    assert not HandlerRunReplay.objects.exists()
    assert handler_runs_retry_now(runs=HandlerRun.objects.filter(pk=run.pk), user=admin_user) == 0
    assert not HandlerRunReplay.objects.exists()


def test_retrying_a_group_now_touches_only_its_failed_runs(async_domain, admin_user):
    waiting = failed_flaky_run(async_domain, n=0)
    dead = failed_flaky_run(async_domain, n=1)
    HandlerRun.objects.filter(pk=dead.pk).update(status=RunStatus.DEAD)
    Switch.objects.create(name="skipping-2", on=True)
    append_pings(async_domain, "probe::skipping", [2])
    assert step() == 1
    other = HandlerRun.objects.get(handler="warehouse.Skipping")
    assert other.failure_group and other.failure_group != waiting.failure_group
    later = timezone.now() + timedelta(hours=1)
    HandlerRun.objects.filter(pk=other.pk).update(status=RunStatus.FAILED, available_at=later)
    assert dead.failure_group == waiting.failure_group

    assert handler_runs_retry_now(runs=group_runs(waiting.failure_group), user=admin_user) == 1

    assert HandlerRun.objects.get(pk=waiting.pk).available_at <= timezone.now()
    assert HandlerRun.objects.get(pk=dead.pk).status == "dead"
    assert HandlerRun.objects.get(pk=other.pk).available_at == later
    assert list(HandlerRunReplay.objects.values_list("run_id", "action")) == [(waiting.pk, "retry")]
