"""The search page: messages by type, category, stream, correlation, time, handler run and
payload field, newest first, from the store or the payload index."""

from dataclasses import dataclass, field, replace
from datetime import timedelta

from django.db import connection
from django.db.models import F
from django.db.models.fields.json import KeyTransform

from inspector.dashboard.selectors.paging import keyset_page, page_limit, with_listed_runs
from inspector.models import HandlerRun, Message, RunStatus
from inspector.readmodel import payload_index
from inspector.runtime.databases import database
from inspector.runtime.domain import current_domain

TIME_SKEW = timedelta(hours=1)  # the longest a unit of work may hold messages before commit
SEARCH_ROUND_CANDIDATES = 8000  # payload-index positions checked at most per round of a search


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
    limit = page_limit(limit)
    if _uses_payload_index(filters):
        rows = _indexed_payload_search(filters, after=after, want=limit + 1)
    else:
        rows = with_listed_runs(_scan(filters, after=after).defer("metadata")[: limit + 1])
    return keyset_page(rows, limit, lambda message: message.global_position)


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
    return with_listed_runs(rows)


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
    since, until = _skewed(since, -TIME_SKEW), _skewed(until, TIME_SKEW)
    if since is not None:
        low = (
            Message.objects.filter(time__lt=since)
            .order_by("-time")
            .values_list("global_position", flat=True)
            .first()
        )
    if until is not None:
        high = (
            Message.objects.filter(time__gt=until)
            .order_by("time")
            .values_list("global_position", flat=True)
            .first()
        )
    return low, high


def _skewed(moment, skew):
    """`moment` moved by `skew`, or None (no bound) where that leaves datetime's range: no
    message is older than year 1 or newer than year 9999."""
    try:
        return None if moment is None else moment + skew
    except OverflowError:
        return None


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
