"""The inspector's management commands (run_handlers and index_store have their own tests,
beside the worker and the indexer)."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from inspector.models import HandlerRun, HandlerRunReplay, ReplayJob
from inspector.runtime.unit_of_work import unit_of_work
from inspector.workers.worker import Worker
from tests.warehouse.models import Switch
from tests.warehouse.probe import Ping

pytestmark = pytest.mark.django_db(transaction=True)


def append_pings(domain, category, count, *, streams=1):
    with unit_of_work(domain) as uow:
        for n in range(count):
            uow.append(Ping(n=n), stream=f"{category}-{n % streams}")


def drain():
    return Worker(worker_id="test-worker").drain()


def test_replay_runs_command_previews_then_replays(async_domain):
    Switch.objects.create(name="skipping-0", on=True)
    Switch.objects.create(name="skipping-1", on=True)
    append_pings(async_domain, "probe::skipping", 3, streams=3)
    drain()
    Switch.objects.all().update(on=False)

    out = StringIO()
    call_command(
        "replay_runs", handler="warehouse.Skipping", status="dead", dry_run=True, stdout=out
    )
    assert "2 runs would be replayed" in out.getvalue()
    assert HandlerRun.objects.filter(status="dead").count() == 2
    out = StringIO()
    call_command(
        "replay_runs",
        handler="warehouse.Skipping",
        status="dead",
        since="2026-01-01",
        yes=True,
        reason="flag fixed",
        stdout=out,
    )
    assert "Replayed 2 runs" in out.getvalue()
    assert HandlerRunReplay.objects.filter(reason="flag fixed").count() == 2
    drain()
    assert set(HandlerRun.objects.values_list("status", flat=True)) == {"succeeded"}


def test_replay_runs_makes_a_replay_job_and_waits_printing_its_progress(async_domain):
    Switch.objects.bulk_create(Switch(name=f"skipping-{n}", on=True) for n in range(5))
    append_pings(async_domain, "probe::skipping", 5, streams=2)
    drain()
    Switch.objects.all().update(on=False)

    out = StringIO()
    call_command(
        "replay_runs", handler="warehouse.Skipping", rate=2, yes=True, reason="fixed", stdout=out
    )
    job = ReplayJob.objects.get()
    text = out.getvalue()
    assert f"Made replay job {job.pk}: 5 runs at 2 a second" in text
    assert "[############------------------] 2/5" in text  # one chunk a second
    assert "[##############################] 5/5" in text
    assert "Replayed 5 runs." in text
    assert (job.status, job.rate, job.applied, job.reason) == ("finished", 2, 5, "fixed")
    assert job.covers == "manage.py replay_runs --handler=warehouse.Skipping"
    assert HandlerRunReplay.objects.filter(job=job).count() == 5
    drain()
    assert set(HandlerRun.objects.values_list("status", flat=True)) == {"succeeded"}


def test_replay_runs_no_wait_leaves_the_job_to_the_workers(async_domain):
    Switch.objects.create(name="skipping-0", on=True)
    append_pings(async_domain, "probe::skipping", 1)
    drain()

    out = StringIO()
    call_command("replay_runs", status="dead", yes=True, no_wait=True, stdout=out)
    job = ReplayJob.objects.get()
    assert "Not waiting: the workers carry it out." in out.getvalue()
    assert (job.status, job.total, job.applied) == ("waiting", 1, 0)
    assert HandlerRun.objects.get(handler="warehouse.Skipping").status == "dead"
    with pytest.raises(CommandError, match="rate: The rate is a whole number"):
        call_command("replay_runs", yes=True, rate=0, stdout=StringIO())
    assert ReplayJob.objects.count() == 1  # the refused one wrote nothing
    Switch.objects.all().update(on=False)
    drain()  # a worker takes the job's chunk and runs it
    job.refresh_from_db()
    assert job.status == "finished"
    assert HandlerRun.objects.get(handler="warehouse.Skipping").status == "succeeded"
