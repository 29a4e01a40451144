"""The handlers page and the workflow map: each handler's counts, lag, speed, throughput,
last error and pause switch, and where its runs write."""

import json
import math
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection
from django.db.models import Count, Min
from django.db.models.functions import TruncMinute
from django.utils import timezone

from inspector.dashboard.selectors.lookups import storable
from inspector.models import (
    UNFINISHED,
    HandlerAttempt,
    HandlerRun,
    HandlerState,
    Message,
    RunStatus,
)
from inspector.readmodel import tallies
from inspector.runtime.domain import current_domain
from inspector.runtime.names import short_handler

RECENT_RUNS = 200  # runs per handler behind the duration percentiles
SPARK_MINUTES = 60
WRITES_SAMPLE = 1000  # raised message ids looked up to learn where handlers write


@dataclass
class LastError:
    error_type: str
    error_message: str
    at: object
    message_id: object
    run_status: str
    attempt: int


@dataclass
class HandlerStats:
    """One handler's health: what it handles, its counts, lag, speed and last error."""

    name: str
    kind: str = ""
    registered: bool = False
    handles: list = field(default_factory=list)  # (short name, message type)
    stream_category: str = ""
    part_of: str = ""
    counts: dict = field(default_factory=dict)  # status -> runs
    lag: int = 0  # unfinished runs: pending, running, failed and waiting to retry
    oldest_unfinished_at: object = None
    lag_seconds: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    samples: int = 0
    sparkline: list = field(default_factory=list)  # succeeded runs per minute, oldest first
    last_error: LastError | None = None
    paused: bool = False

    @property
    def short_name(self):
        return short_handler(self.name)

    @property
    def processed(self):
        return self.counts.get(RunStatus.SUCCEEDED, 0)

    @property
    def failed(self):
        return self.counts.get(RunStatus.FAILED, 0)

    @property
    def dead(self):
        return self.counts.get(RunStatus.DEAD, 0)

    @property
    def pending(self):
        return self.counts.get(RunStatus.PENDING, 0) + self.counts.get(RunStatus.RUNNING, 0)

    @property
    def total(self):
        return sum(self.counts.values())


def handler_known(name):
    """Whether `name` is a registered handler or one that has runs."""
    registered = {spec.name for spec in current_domain.handlers()}
    return name in registered or (
        storable(name) and HandlerRun.objects.filter(handler=name).exists()
    )


def handler_run_counts(totals=None):
    """{handler: {status: runs}}: the indexer's tallies plus live counts, in one statement."""
    totals = tallies.run_totals() if totals is None else totals
    return {
        handler: {status: runs for status, runs in entry.counts.items() if runs}
        for handler, entry in totals.items()
    }


def handler_stats_list(*, now=None):
    """Every handler's health, in a fixed handful of queries whatever the history's size."""
    now = now or timezone.now()
    specs = {spec.name: spec for spec in current_domain.handlers()}
    known = tallies.positions()
    counts = handler_run_counts(tallies.run_totals(known))
    names = list(specs) + sorted(name for name in counts if name not in specs)
    stats = {name: _stats_for(name, specs.get(name)) for name in names}
    for name, by_status in counts.items():
        stats[name].counts = by_status

    unfinished = (
        HandlerRun.objects.filter(UNFINISHED)
        .order_by()
        .values("handler")
        .annotate(runs=Count("*"), oldest=Min("created_at"))
    )
    for row in unfinished:
        entry = stats[row["handler"]]
        entry.lag = row["runs"]
        entry.oldest_unfinished_at = row["oldest"]
        entry.lag_seconds = max((now - row["oldest"]).total_seconds(), 0.0)

    for name, runs in recent_runs(names, raised=False).items():
        durations = sorted(d for d, _ in runs if d is not None)
        stats[name].samples = len(durations)
        if durations:
            stats[name].p50_ms = percentile(durations, 50) / 1000
            stats[name].p95_ms = percentile(durations, 95) / 1000

    for name, series in throughput(names, now=now).items():
        if name in stats:
            stats[name].sparkline = series
    for entry in stats.values():
        entry.sparkline = entry.sparkline or [0] * SPARK_MINUTES

    for name, error in last_errors(known).items():
        if name in stats:
            stats[name].last_error = error

    for name in paused_handlers():
        if name in stats:
            stats[name].paused = True
    return list(stats.values())


def _stats_for(name, spec):
    if spec is None:
        return HandlerStats(name=name)
    return HandlerStats(
        name=name,
        kind=spec.kind,
        registered=True,
        handles=[(cls.__name__, cls._type) for cls in spec.methods],
        stream_category=spec.stream_category or "",
        part_of=(
            current_domain.stream_category(spec.part_of) if isinstance(spec.part_of, type) else ""
        ),
    )


def percentile(values, pct):
    """Nearest-rank percentile of sorted `values`."""
    rank = max(math.ceil(pct / 100 * len(values)), 1)
    return values[rank - 1]


def recent_runs(names, *, limit=RECENT_RUNS, raised=True):
    """{handler: [(duration_us, raised ids), ...]} of each handler's latest succeeded runs;
    with `raised=False` the ids are left out (decoding them was most of the handlers page).

    One query: a UNION ALL of one LIMITed subquery per handler, each an index range scan on
    (handler, status, finished_at), so a busy handler never crowds out a quiet one.
    """
    if not names:
        return {}
    q = connection.ops.quote_name
    table = q(HandlerRun._meta.db_table)
    raised_column = q("raised_message_ids") if raised else "NULL"
    parts, params = [], []
    for i, name in enumerate(names):
        parts.append(
            f"SELECT * FROM (SELECT {q('handler')}, {q('duration_us')}, "
            f"{raised_column} FROM {table} WHERE {q('handler')} = %s "
            f"AND {q('status')} = %s AND {q('finished_at')} IS NOT NULL "
            f"ORDER BY {q('finished_at')} DESC LIMIT %s) {q(f'r{i}')}"
        )
        params += [name, RunStatus.SUCCEEDED.value, limit]
    found = {name: [] for name in names}
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        for handler, duration_us, raised in cursor.fetchall():
            if isinstance(raised, (str, bytes)):
                raised = json.loads(raised)
            found[handler].append((duration_us, raised or []))
    return found


def throughput(names, *, now=None, minutes=SPARK_MINUTES):
    """{handler: [succeeded runs per minute]} over the last `minutes`, oldest minute first."""
    now = now or timezone.now()
    end = now.replace(second=0, microsecond=0)
    start = end - timedelta(minutes=minutes - 1)
    rows = (
        HandlerRun.objects.filter(
            handler__in=names, status=RunStatus.SUCCEEDED, finished_at__gte=start
        )
        .annotate(minute=TruncMinute("finished_at"))
        .order_by()
        .values("handler", "minute")
        .annotate(runs=Count("*"))
    )
    series = {}
    for row in rows:
        index = int((row["minute"] - start).total_seconds() // 60)
        if 0 <= index < minutes:
            series.setdefault(row["handler"], [0] * minutes)[index] += row["runs"]
    return series


def last_errors(known=None):
    """{handler: LastError}: each handler's most recent failed attempt, in two queries."""
    latest = tallies.last_attempt_ids(known).values()
    attempts = HandlerAttempt.objects.filter(pk__in=latest).select_related("run")
    return {
        attempt.run.handler: LastError(
            error_type=attempt.error_type,
            error_message=attempt.error_message,
            at=attempt.finished_at,
            message_id=attempt.run.message_id,
            run_status=attempt.run.status,
            attempt=attempt.number,
        )
        for attempt in attempts
    }


def paused_handlers():
    return set(HandlerState.objects.filter(paused=True).values_list("handler", flat=True))


def handler_written_categories(names):
    """{handler: {stream category}} its recent runs raised messages into."""
    ids, owner = [], {}
    for name, runs in recent_runs(names).items():
        for _, raised in runs:
            for message_id in raised:
                if message_id not in owner:
                    owner[message_id] = name
                    ids.append(message_id)
    ids = ids[:WRITES_SAMPLE]
    written = {}
    if ids:
        for message_id, category in Message.objects.filter(pk__in=ids).values_list(
            "pk", "category"
        ):
            written.setdefault(owner[str(message_id)], set()).add(category)
    return written
