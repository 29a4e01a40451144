"""The runs the store indexer left open are counted live by looking each one up, never by
reading every run: while a replay job reopens dead runs by the thousand, the handlers page,
the failures pages, the indexer's own steps and the job's progress read O(open runs) rows of
the runs table however long the history is, and their counts stay exact.

PostgreSQL only: it is PostgreSQL's planner that joined more than a few open runs by hashing
a sequential scan of all the runs (SQLite walks the open runs in CROSS JOIN order).
"""

import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from inspector.dashboard.selectors import failures as failure_pages
from inspector.models import (
    FailureGroup,
    HandlerRun,
    HandlerRunReplay,
    Message,
    OpenRun,
    ReplayJob,
    RunStatus,
)
from inspector.readmodel import failures, indexer, tallies
from inspector.readmodel.replay_jobs import queued_runs, replay_job_progress
from inspector.services import replay_job_create
from inspector.workers.replay_jobs import ReplayJobRunner

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner: PostgreSQL"),
]

HANDLER = "warehouse.InventoryEventHandler"
GROUP = "c" * 32
RUNS = 2000  # settled history: eighty pages of runs, enough for the planner to scan them
REOPENED = 60  # what a replay job's first chunks reopen


def dead_history(count):
    """`count` messages, each with one dead run of GROUP, folded into the indexer's tallies."""
    now = timezone.now()
    messages = Message.objects.bulk_create(
        Message(
            kind="event",
            type="warehouse.OrderShipped.v1",
            stream=f"warehouse::order-{n}",
            category="warehouse::order",
            position=0,
            global_position=n,
            data={"order_id": str(n)},
            metadata={},
            correlation_id=uuid.uuid4(),
            time=now - timedelta(minutes=1),
        )
        for n in range(count)
    )
    FailureGroup.objects.create(
        key=GROUP,
        handler=HANDLER,
        error_type="warehouse.OutOfStock",
        message="No stock",
        first_seen=now - timedelta(minutes=1),
    )
    HandlerRun.objects.bulk_create(
        HandlerRun(
            message=message,
            handler=HANDLER,
            message_type=message.type,
            stream=message.stream,
            position=0,
            global_position=message.global_position,
            status=RunStatus.DEAD,
            attempts=4,
            available_at=message.time,
            finished_at=message.time,
            error_type="warehouse.OutOfStock",
            error_message="No stock",
            failure_group=GROUP,
            created_at=message.time,
            updated_at=message.time,
        )
        for message in messages
    )
    indexer.catch_up(batch=count)
    assert not OpenRun.objects.exists()


def reopen(count):
    """A replay job over the group takes its first chunk, `count` runs: they are open again.
    Returns the job."""
    job = replay_job_create(
        action="replay", runs=failure_pages.group_runs(GROUP), covers="the group", rate=count
    )
    assert ReplayJobRunner(worker_id="jobs").step(job.pk) == count
    assert OpenRun.objects.count() == count
    with connection.cursor() as cursor:  # as autovacuum would: the planner knows both sizes
        cursor.execute(f"ANALYZE {tallies.quoted_table(HandlerRun)}")
        cursor.execute(f"ANALYZE {tallies.quoted_table(OpenRun)}")
        cursor.execute(f"ANALYZE {tallies.quoted_table(HandlerRunReplay)}")
    return ReplayJob.objects.get(pk=job.pk)


def runs_read(read):
    """(what `read()` returned, rows of the runs table its statements read), counted by the
    server for this transaction (sequential and index scans alike)."""
    sql = (
        "SELECT seq_tup_read + COALESCE(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
        "WHERE relid = %s::regclass"
    )
    table = HandlerRun._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")  # reads in this backend
        cursor.execute(sql, [table])
        before = cursor.fetchone()[0]
        result = read()
        cursor.execute(sql, [table])
        return result, cursor.fetchone()[0] - before


def by_status():
    rows = HandlerRun.objects.order_by().values_list("status").annotate(n=Count("pk"))
    return dict(rows)


def test_live_counts_read_only_the_open_runs_however_long_the_history(domain):
    dead_history(RUNS)
    job = reopen(REOPENED)

    counts, read = runs_read(tallies.run_totals)  # the handlers page, /metrics
    assert counts[HANDLER].counts == by_status()
    assert by_status() == {RunStatus.DEAD: RUNS - REOPENED, RunStatus.PENDING: REOPENED}
    assert read <= 2 * REOPENED  # not the settled history

    reopened = list(OpenRun.objects.order_by("run_id").values_list("run_id", flat=True))
    retrying = reopened[:10]  # replayed, failed again, will retry
    HandlerRun.objects.filter(pk__in=retrying).update(status=RunStatus.FAILED)
    found, read = runs_read(lambda: failures.failure_counts(handler=HANDLER))  # a group's page
    assert (found[GROUP].dead, found[GROUP].failed) == (RUNS - REOPENED, 10)
    assert read <= 2 * REOPENED
    rows, read = runs_read(failure_pages.failure_group_list)  # the failures page
    assert [(row.counts.key, row.counts.total) for row in rows] == [(GROUP, RUNS - REOPENED + 10)]
    assert read <= 2 * REOPENED

    succeeded = reopened[10:50]
    HandlerRun.objects.filter(pk__in=succeeded).update(status=RunStatus.SUCCEEDED, duration_us=900)
    step, read = runs_read(indexer.read_step)  # the indexer folds the runs that have ended
    assert sorted(step.settled) == sorted(succeeded)
    assert read <= 2 * REOPENED
    assert indexer.apply_step(step)
    assert OpenRun.objects.count() == REOPENED - 40
    assert tallies.run_totals()[HANDLER].counts == by_status()

    progress, read = runs_read(lambda: replay_job_progress(job))  # the job's page, every second
    assert (progress.done, progress.failed_again, progress.queued) == (40, 10, REOPENED - 50)
    assert read <= 2 * REOPENED
    queued, read = runs_read(lambda: queued_runs(job, up_to=REOPENED))  # before each chunk
    assert queued == REOPENED - 50
    assert read <= 2 * REOPENED
