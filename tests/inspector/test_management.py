"""The inspector's management commands (run_handlers and index_store have their own tests,
beside the worker and the indexer)."""

from io import StringIO

import pytest
from django.core.management import call_command

from inspector.models import HandlerRun, HandlerRunReplay
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
