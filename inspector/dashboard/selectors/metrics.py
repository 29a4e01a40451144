"""What /metrics exposes: messages by type, runs by handler and status, run durations,
the oldest unfinished run of each handler, paused handlers, the last global position, and
failed and dead runs by handler and exception type (the failure groups)."""

from dataclasses import dataclass

from django.db.models import Max, Min
from django.utils import timezone

from inspector.dashboard.selectors.handlers import handler_run_counts, paused_handlers
from inspector.models import UNFINISHED_STATUSES, HandlerRun, Message, RunStatus
from inspector.readmodel import failures, tallies
from inspector.runtime.domain import current_domain

DURATION_BUCKETS = tallies.DURATION_BUCKETS  # upper bounds (seconds) of the run histogram


def _kind_of(type_name):
    try:
        return current_domain.message_class(type_name).kind
    except KeyError:
        return "unknown"


@dataclass
class MetricsSnapshot:
    messages_by_type: list  # (type, kind, count)
    runs: dict  # handler -> status -> count
    durations: list  # (handler, [cumulative count per bucket], count, sum seconds)
    oldest_unfinished: dict  # handler -> age seconds
    paused: set
    last_global_position: int
    failures: list = None  # (handler, exception type, status, runs) of the failure groups


def metrics_snapshot(*, now=None):
    """Everything /metrics exposes, read at scrape time in a fixed number of small queries.

    Message and run counts and the duration histogram are the store indexer's tallies plus
    what it has not folded in yet (inspector/tallies.py); the kind comes from the registry.
    """
    now = now or timezone.now()
    known = tallies.positions()  # the indexer's state, read once for every count below
    by_type = {}
    for entry in tallies.message_counts(known):
        by_type[entry.type] = by_type.get(entry.type, 0) + entry.messages
    messages_by_type = [(name, _kind_of(name), by_type[name]) for name in sorted(by_type)]
    totals = tallies.run_totals(known)
    durations = [
        (handler, entry.cumulative(), entry.timed, entry.duration_us_sum / 1_000_000)
        for handler, entry in sorted(totals.items())
        if entry.timed
    ]
    oldest = {
        row["handler"]: max((now - row["oldest"]).total_seconds(), 0.0)
        for row in HandlerRun.objects.filter(status__in=UNFINISHED_STATUSES)
        .order_by()
        .values("handler")
        .annotate(oldest=Min("created_at"))
    }
    last = Message.objects.aggregate(last=Max("global_position"))["last"]
    by_exception = {}
    for group in failures.failure_counts(now=now, known=known, details=False).values():
        for status, runs in ((RunStatus.FAILED, group.failed), (RunStatus.DEAD, group.dead)):
            key = (group.handler, group.error_type, status.value)
            by_exception[key] = by_exception.get(key, 0) + runs
    return MetricsSnapshot(
        messages_by_type=messages_by_type,
        runs=handler_run_counts(totals),
        durations=durations,
        oldest_unfinished=oldest,
        paused=paused_handlers(),
        last_global_position=-1 if last is None else last,
        failures=[(*key, runs) for key, runs in sorted(by_exception.items())],
    )
