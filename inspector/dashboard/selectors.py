"""Read queries behind the inspector's streams, handlers, map, search and metrics pages.

Every list is keyset-paginated (by stream name, position or global position), never by
OFFSET, and every page reads a fixed number of queries however much history there is.
"""

import json
import math
from dataclasses import dataclass, field, replace
from datetime import timedelta

from django.db import connection
from django.db.models import Count, F, Max, Min
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import TruncMinute
from django.utils import timezone

from inspector.models import (
    UNFINISHED,
    UNFINISHED_STATUSES,
    HandlerAttempt,
    HandlerRun,
    HandlerState,
    Message,
    RunStatus,
)
from inspector.readmodel import payload_index, tallies
from inspector.runtime.databases import database
from inspector.runtime.domain import current_domain

PAGE_SIZE = 50
RECENT_RUNS = 200  # runs per handler behind the duration percentiles
SPARK_MINUTES = 60
HISTORY_PREFIX_LIMIT = 5000  # earlier messages folded into an aggregate's history page
TIME_SKEW = timedelta(hours=1)  # the longest a unit of work may hold messages before commit
WRITES_SAMPLE = 1000  # raised message ids looked up to learn where handlers write
DURATION_BUCKETS = tallies.DURATION_BUCKETS  # upper bounds (seconds) of the run histogram
SEARCH_ROUND_CANDIDATES = 8000  # payload-index positions checked at most per round of a search


@dataclass
class KeysetPage:
    """One page of a list and the key to ask for the next one (None on the last page)."""

    items: list
    next_after: object = None

    @property
    def has_next(self):
        return self.next_after is not None


def _page(rows, limit, key):
    if len(rows) > limit:
        return KeysetPage(items=rows[:limit], next_after=key(rows[limit - 1]))
    return KeysetPage(items=rows)


def _with_listed_runs(messages):
    """Each message with its runs as `listed_runs`, in one query and only what a run badge
    shows: a prefetch would clone a queryset per message and load every traceback."""
    messages = list(messages)
    fields = ("id", "message", "handler", "status", "attempts", "duration_us", "error_type")
    runs = {}
    for run in (
        HandlerRun.objects.filter(message__in=[m.pk for m in messages])
        .only(*fields)
        .order_by("handler")
    ):
        runs.setdefault(run.message_id, []).append(run)
    for message in messages:
        message.listed_runs = runs.get(message.pk, [])
    return messages


# Streams ------------------------------------------------------------------------------------


def category_list():
    """Every stream category with its message count and latest message time.

    The counts are the store indexer's tallies plus the messages beyond its position, read in
    one statement (inspector/tallies.py); the times of the few last messages come from a second
    query by global position.
    """
    by_category = {}
    for entry in tallies.message_counts():
        row = by_category.setdefault(
            entry.category,
            {"category": entry.category, "messages": 0, "last_global_position": -1},
        )
        row["messages"] += entry.messages
        row["last_global_position"] = max(row["last_global_position"], entry.last_global_position)
    rows = [by_category[category] for category in sorted(by_category)]
    times = dict(
        Message.objects.filter(
            global_position__in=[row["last_global_position"] for row in rows]
        ).values_list("global_position", "time")
    )
    for row in rows:
        row["last_time"] = times.get(row["last_global_position"])
    return rows


def stream_list(*, category, after="", limit=None):
    """The streams of one category by name, each with its last position and time."""
    limit = limit or PAGE_SIZE
    rows = Message.objects.filter(category=category)
    if after:
        rows = rows.filter(stream__gt=after)
    rows = list(
        rows.order_by()
        .values("stream")
        .annotate(messages=Count("*"), last_position=Max("position"), last_time=Max("time"))
        .order_by("stream")[: limit + 1]
    )
    return _page(rows, limit, lambda row: row["stream"])


def stream_message_list(*, stream, after=-1, limit=None):
    """One stream's messages by position after `after`, with their handler runs."""
    limit = limit or PAGE_SIZE
    rows = _with_listed_runs(
        Message.objects.filter(stream=stream, position__gt=after).order_by("position")[: limit + 1]
    )
    return _page(rows, limit, lambda message: message.position)


def aggregate_for_category(category):
    """The registered aggregate whose streams make up `category`, or None."""
    for aggregate in current_domain.aggregates:
        if current_domain.stream_category(aggregate) == category:
            return aggregate
    return None


@dataclass
class HistoryEntry:
    """The aggregate's state after one message: every field so far, and those it changed."""

    message: Message
    state: dict
    changed: dict


def aggregate_history(*, aggregate, stream, messages):
    """Fold each event's data into a running state; choice fields (status) follow event names.

    The page may start mid-stream: the messages before it are folded first (up to
    HISTORY_PREFIX_LIMIT of them), so the state shown is the state at that position.
    Returns (entries, folded_from): folded_from is the first position folded.
    """
    state, folded_from = {}, 0
    if messages and messages[0].position > 0:
        first = messages[0].position
        prefix = list(
            Message.objects.filter(stream=stream, position__lt=first)
            .order_by("-position")
            .values_list("position", "type", "data")[:HISTORY_PREFIX_LIMIT]
        )
        prefix.reverse()
        folded_from = prefix[0][0] if prefix else first
        for position, type_name, data in prefix:
            _fold(aggregate, state, position, type_name, data)
    entries = []
    for message in messages:
        changed = _fold(aggregate, state, message.position, message.type, message.data)
        entries.append(HistoryEntry(message=message, state=dict(state), changed=changed))
    return entries, folded_from


def _fold(aggregate, state, position, type_name, data):
    changed = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if key not in state or state[key] != value:
                changed[key] = value
    for name, value in _choice_fields_after(aggregate, position, type_name).items():
        if state.get(name) != value:
            changed[name] = value
    state.update(changed)
    return changed


def _choice_fields_after(aggregate, position, type_name):
    """What an event says about the aggregate's choice fields (an Order's status).

    The stream's first event creates the aggregate: its fields start at their defaults.
    A later event whose name ends in a choice's label or value (OrderShipped → SHIPPED)
    moves the field to that choice. Anything else leaves the field as it was.
    """
    short = type_name.split(".")[-2] if type_name.count(".") >= 2 else type_name
    found = {}
    for model_field in aggregate._meta.concrete_fields:
        if not model_field.choices:
            continue
        if position == 0 and model_field.has_default():
            found[model_field.name] = model_field.get_default()
        for value, label in model_field.flatchoices:
            if any(
                short.lower().endswith(str(name).lower()) for name in (value, label) if name != ""
            ):
                found[model_field.name] = value
                break
    return found


# Handlers -----------------------------------------------------------------------------------


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
        return self.name.rsplit(".", 1)[-1]

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
    return name in registered or HandlerRun.objects.filter(handler=name).exists()


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


# Search -------------------------------------------------------------------------------------


@dataclass
class MessageFilters:
    """What the search form asks for; empty values filter nothing."""

    types: list = field(default_factory=list)
    category: str = ""
    stream: str = ""
    correlation_id: object = None
    since: object = None
    until: object = None
    run_status: str = ""
    handler: str = ""  # with run_status: a run of this handler; alone: any run of it
    payload_path: list = field(default_factory=list)  # keys into `data`
    payload_value: object = None


def message_search(*, filters, after=None, limit=None):
    """Messages matching `filters`, newest first, older than global position `after`."""
    limit = limit or PAGE_SIZE
    if _uses_payload_index(filters):
        rows = _indexed_payload_search(filters, after=after, want=limit + 1)
    else:
        rows = _with_listed_runs(_scan(filters, after=after).defer("metadata")[: limit + 1])
    return _page(rows, limit, lambda message: message.global_position)


def _matching(filters, bounds):
    """Every filter but the payload field, as a queryset of messages."""
    rows = Message.objects.all()
    if filters.types:
        rows = rows.filter(type__in=filters.types)
    if filters.category:
        rows = rows.filter(category=filters.category)
    if filters.stream:
        rows = rows.filter(stream=filters.stream)
    if filters.correlation_id:
        rows = rows.filter(correlation_id=filters.correlation_id)
    if filters.since:
        rows = rows.filter(time__gte=filters.since)
    if filters.until:
        rows = rows.filter(time__lte=filters.until)
    low, high = bounds
    if low is not None:
        rows = rows.filter(global_position__gt=low)
    if high is not None:
        rows = rows.filter(global_position__lt=high)
    if filters.run_status or filters.handler:
        # Runs carry their message's global position: a semi-join on it merges with the
        # newest-first scan instead of probing every message's runs.
        rows = rows.filter(global_position__in=_runs_matching(filters).values("global_position"))
    return rows


def _runs_matching(filters):
    runs = HandlerRun.objects.all()
    if filters.run_status:
        runs = runs.filter(status=filters.run_status)
    if filters.handler:
        runs = runs.filter(handler=filters.handler)
    return runs


def _scan(filters, *, after=None, above=None, bounds=None):
    """Matching messages newest first, read from the store itself (payload by JSON)."""
    bounds = bounds or _time_window_bounds(filters.since, filters.until)
    rows = _matching(filters, bounds)
    if filters.payload_path:
        rows = _payload_match(rows, filters.payload_path, filters.payload_value)
    if after is not None:
        rows = rows.filter(global_position__lt=after)
    if above is not None:
        rows = rows.filter(global_position__gt=above)
    ordering = "-global_position"
    if filters.payload_path and database().orders_payload_scan_by_expression:
        rows = rows.alias(newest=F("global_position") + 0)
        ordering = "-newest"
    return rows.order_by(ordering)


def _uses_payload_index(filters):
    """A top-level scalar field, unless a narrower index leads: a stream, a correlation, or a
    run status other than succeeded (few runs are failed, dead or waiting; the scan starts
    from them)."""
    path = filters.payload_path
    return (
        len(path) == 1
        and payload_index.indexable_key(path[0])
        and payload_index.canonical(filters.payload_value) is not None
        and not filters.stream
        and not filters.correlation_id
        and filters.run_status in ("", RunStatus.SUCCEEDED)
    )


def _indexed_payload_search(filters, *, after, want):
    """Up to `want` messages with the payload field, newest first, from two sources.

    Beyond the store indexer's position (a second's worth of messages while it keeps up) the
    store is scanned as before; up to it, the payload index gives each (category, type)'s
    matches newest first. Type and category are part of each digest, so with only those
    filters the first round is the answer; time and run filters are checked on each round's
    candidates, in rounds eight times larger, until the page is full or the index runs out.
    """
    key, value = filters.payload_path[0], filters.payload_value
    position = payload_index.indexed_position()
    bounds = _time_window_bounds(filters.since, filters.until)
    low, high = bounds
    above = -1 if low is None else low
    top = min((b for b in (after, high) if b is not None), default=None)
    positions = []
    if top is None or top > position + 1:
        tail = dict(below=top, above=max(above, position), bounds=bounds)
        positions = _tail_positions(filters, want=want, **tail)
    below = position + 1 if top is None else min(top, position + 1)
    digests = payload_index.digests_for(key, value, types=filters.types, category=filters.category)
    per_digest = want
    while len(positions) < want and digests and below > above + 1:
        candidates, floor = payload_index.newest(
            digests, below=below, above=above, per_digest=per_digest
        )
        candidates = _kept(filters, candidates)
        positions.extend(candidates[: want - len(positions)])
        if floor is None:
            break
        below = floor
        per_digest = min(per_digest * 8, max(want, SEARCH_ROUND_CANDIDATES // len(digests)))
    rows = Message.objects.filter(global_position__in=positions).defer("metadata")
    # A 64-bit digest could collide; the payload itself decides.
    rows = [
        row
        for row in rows.order_by("-global_position")
        if row.global_position > position or payload_index.holds(row.data, key, value)
    ]
    return _with_listed_runs(rows)


def _tail_positions(filters, *, below, above, bounds, want):
    """Matches the indexer has not read yet, newest first, scanned with the JSON lookup.

    A run filter is checked on each round's rows rather than joined: joined, SQLite would
    gather every succeeded run's position first.
    """
    runs = bool(filters.run_status or filters.handler)
    others = replace(filters, run_status="", handler="")
    scan = _scan(others, after=below, above=above, bounds=bounds)
    scan = scan.values_list("global_position", flat=True)
    positions, size = [], want
    while len(positions) < want:
        chunk = list(scan[:size])
        positions += _kept(filters, chunk, times=False)[: want - len(positions)] if runs else chunk
        if len(chunk) < size or not runs:
            break
        scan, size = scan.filter(global_position__lt=chunk[-1]), size * 8
    return positions[:want]


def _kept(filters, candidates, *, times=True):
    """The candidates (newest first) that also pass the time and run filters."""
    if not candidates:
        return candidates
    kept = set(candidates)
    if times and (filters.since or filters.until):
        rows = Message.objects.filter(global_position__in=candidates)
        if filters.since:
            rows = rows.filter(time__gte=filters.since)
        if filters.until:
            rows = rows.filter(time__lte=filters.until)
        kept &= set(rows.values_list("global_position", flat=True))
    if filters.run_status or filters.handler:
        runs = _runs_matching(filters).filter(global_position__in=candidates)
        kept &= set(runs.values_list("global_position", flat=True))
    return [p for p in candidates if p in kept]


def _time_window_bounds(since, until):
    """Global positions bounding a time window (exclusive; None: unbounded), from one probe
    of the time index per bound.

    Without them a newest-first scan of an old window reads every newer message first. A
    message's time is stamped when it is recorded and its global position when its unit of
    work commits, so both orders agree except within one transaction's lifetime: bounds
    taken TIME_SKEW beyond the window never cut off a message that is inside it.
    """
    low = high = None
    if since is not None:
        low = (
            Message.objects.filter(time__lt=since - TIME_SKEW)
            .order_by("-time")
            .values_list("global_position", flat=True)
            .first()
        )
    if until is not None:
        high = (
            Message.objects.filter(time__gt=until + TIME_SKEW)
            .order_by("time")
            .values_list("global_position", flat=True)
            .first()
        )
    return low, high


def _payload_match(rows, path, value):
    """Rows whose `data` holds `value` at `path`.

    Containment where the database can index it (a GIN index on PostgreSQL); elsewhere, or
    with a list index in the path, a key lookup built from transforms rather than a
    `data__a__b` string, so a key named like a lookup ("contains") is still a key.
    """
    if connection.features.supports_json_field_contains and not any(k.isdigit() for k in path):
        document = value
        for key in reversed(path):
            document = {key: document}
        return rows.filter(data__contains=document)
    expression = KeyTransform(path[0], "data")
    for key in path[1:]:
        expression = KeyTransform(key, expression)
    return rows.alias(payload_field=expression).filter(payload_field=value)


def message_types():
    """Registered message types as (short name, full type), events then commands."""
    return [(cls.__name__, cls._type) for cls in [*current_domain.events, *current_domain.commands]]


def types_named(name):
    """Full message types for a class name (`OrderPlaced`) or a full type."""
    matches = [full for short, full in message_types() if name in (short, full)]
    return matches or [name]


# Metrics ------------------------------------------------------------------------------------


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
