"""What /metrics exposes: messages by type, runs by handler and status, run durations,
the oldest unfinished run of each handler, paused handlers and the last global position."""

from dataclasses import dataclass

from django.db.models import Max, Min
from django.utils import timezone

from inspector.dashboard.selectors.handlers import handler_run_counts, paused_handlers
from inspector.models import UNFINISHED_STATUSES, HandlerRun, Message
from inspector.readmodel import tallies
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


def metrics_snapshot(*, now=None):
    """Everything /metrics exposes, read at scrape time in five small queries.

    Message and run counts and the duration histogram are the store indexer's tallies plus
    what it has not folded in yet (inspector/tallies.py); the kind comes from the registry.
    """
    now = now or timezone.now()
    by_type = {}
    for entry in tallies.message_counts():
        by_type[entry.type] = by_type.get(entry.type, 0) + entry.messages
    messages_by_type = [(name, _kind_of(name), by_type[name]) for name in sorted(by_type)]
    totals = tallies.run_totals()
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
    return MetricsSnapshot(
        messages_by_type=messages_by_type,
        runs=handler_run_counts(totals),
        durations=durations,
        oldest_unfinished=oldest,
        paused=paused_handlers(),
        last_global_position=-1 if last is None else last,
    )
