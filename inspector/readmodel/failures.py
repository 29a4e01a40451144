"""Failure groups counted for a page that stays fast with a million failed runs.

Why tallies and not a GROUP BY: grouping the failed and dead runs by (status, group), even
over an index, reads every one of them at every view, so the page would cost as much as there
are failures, most of them dead runs that no longer change. Instead the store indexer folds
each dead run into its group once (`fold`: FailureGroup's `dead`, `streams` and
`last_dead_at`, the group's FailureHour and FailureStream rows), off the append path, so
failures of one group never queue on a counter's row lock; an operator's replay or resolve
takes it out again in the same transaction (`unfold`, through `indexer.reopen_runs`).

The reader (`failure_counts`) takes those tallies and, in the same statement, the failed and
dead runs the indexer has not folded: the runs it left open (failed runs wait for a retry,
and are open until they settle) and the runs past its position. A page therefore costs
O(groups + runs still retrying), as the handlers page does, and its counts are exact whatever
the indexer's lag.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from inspector.models import (
    FailureGroup,
    FailureHour,
    FailureStream,
    HandlerRun,
    RunStatus,
)
from inspector.readmodel.payload_index import INDEXER
from inspector.readmodel.tallies import consistent, open_runs_from, quoted_table, state_sql

SPARK_HOURS = 24  # the sparkline: failures per hour over the last day
OLDER = -1  # the FailureHour of every hour before the last day and a bit
KEPT_HOURS = SPARK_HOURS + 1
FAILING = (RunStatus.FAILED.value, RunStatus.DEAD.value)


def hour_of(moment):
    """Hours since the epoch of an aware datetime."""
    return int(moment.timestamp() // 3600)


@dataclass(frozen=True)
class DeadRun:
    """What the indexer folds of one dead run into its group."""

    key: str
    handler: str
    error_type: str
    stream: str
    finished_at: datetime | None


# Writing (the indexer) ----------------------------------------------------------------------


def fold(runs, *, now=None):
    """Count dead runs into their groups; inside the indexer's step transaction."""
    runs = [run for run in runs if run.key]
    if not runs:
        return
    keys = {run.key for run in runs}
    known = set(FailureGroup.objects.filter(key__in=keys).values_list("key", flat=True))
    # Dispatch writes a group's row with its first failure; one written by hand may lack it.
    FailureGroup.objects.bulk_create(
        [
            FailureGroup(
                key=run.key,
                handler=run.handler,
                error_type=run.error_type,
                first_seen=run.finished_at or timezone.now(),
            )
            for run in {run.key: run for run in runs if run.key not in known}.values()
        ],
        ignore_conflicts=True,
    )
    _change(runs, +1)
    _compact(now or timezone.now())


def unfold(runs):
    """Take dead runs that an operator moves on (replay, resolve) out of their groups."""
    _change([run for run in runs if run.key], -1)


def _change(runs, sign):
    dead = Counter(run.key for run in runs)
    hours = Counter(
        (run.key, hour_of(run.finished_at) if run.finished_at else OLDER) for run in runs
    )
    streams = Counter((run.key, run.stream) for run in runs)
    last = {}
    for run in runs:
        if run.finished_at and (run.key not in last or run.finished_at > last[run.key]):
            last[run.key] = run.finished_at
    stream_changes = _add_counts(FailureStream, "stream", streams, sign)
    for key in sorted(dead):
        changes = {"dead": F("dead") + sign * dead[key]}
        if stream_changes[key]:
            changes["streams"] = F("streams") + stream_changes[key]
        FailureGroup.objects.filter(key=key).update(**changes)
        if sign > 0 and key in last:
            FailureGroup.objects.filter(key=key).filter(last_dead_at__isnull=True).update(
                last_dead_at=last[key]
            )
            FailureGroup.objects.filter(key=key, last_dead_at__lt=last[key]).update(
                last_dead_at=last[key]
            )
    if sign < 0:  # a run whose hour was folded into the older hours leaves those
        existing = set(
            FailureHour.objects.filter(
                failure_group__in=dead, hour__in={hour for _, hour in hours}
            ).values_list("failure_group", "hour")
        )
        moved = Counter()
        for (key, hour), runs_of_hour in hours.items():
            moved[(key, hour) if (key, hour) in existing else (key, OLDER)] += runs_of_hour
        hours = moved
    _add_counts(FailureHour, "hour", hours, sign)


def _add_counts(model, column, counts, sign):
    """Add sign × count to each (group, value) row, creating and deleting rows as they
    appear and empty; returns {group: rows created − rows deleted}."""
    rows = {
        (row.failure_group, getattr(row, column)): row
        for row in model.objects.filter(
            failure_group__in={key for key, _ in counts},
            **{f"{column}__in": {value for _, value in counts}},
        )
    }
    created, changed, emptied = [], [], []
    balance = Counter()
    for (key, value), count in sorted(counts.items()):
        row = rows.get((key, value))
        if row is None:
            if sign < 0:
                continue  # nothing of it was counted
            created.append(model(failure_group=key, runs=count, **{column: value}))
            balance[key] += 1
            continue
        row.runs += sign * count
        if row.runs <= 0:
            emptied.append(row.pk)
            balance[key] -= 1
        else:
            changed.append(row)
    model.objects.bulk_create(created)
    model.objects.bulk_update(changed, ["runs"])
    model.objects.filter(pk__in=emptied).delete()
    return balance


def _compact(now):
    """Fold the hours before the sparkline's day into each group's row of older hours, so a
    group keeps at most a day's rows however long it has failed."""
    cutoff = hour_of(now) - KEPT_HOURS
    old = FailureHour.objects.filter(hour__gt=OLDER, hour__lt=cutoff)
    totals = Counter()
    for key, runs in old.values_list("failure_group", "runs"):
        totals[(key, OLDER)] += runs
    if not totals:
        return
    old.delete()
    _add_counts(FailureHour, "hour", totals, +1)


def forget():
    """Drop what was folded, for the indexer's rebuild (the groups themselves stay)."""
    FailureHour.objects.all().delete()
    FailureStream.objects.all().delete()
    FailureGroup.objects.update(dead=0, streams=0, last_dead_at=None)


# Reading ------------------------------------------------------------------------------------


@dataclass
class GroupCounts:
    """One group's failed and dead runs now, with when and where they failed."""

    key: str
    handler: str = ""
    error_type: str = ""
    message: str = ""
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    failed: int = 0
    dead: int = 0
    streams: int = 0
    hours: dict = field(default_factory=dict)  # hour since the epoch -> failed and dead runs

    @property
    def total(self):
        return self.failed + self.dead

    def series(self, now, hours=SPARK_HOURS):
        """Failures per hour, oldest first, over the `hours` up to now."""
        last = hour_of(now)
        return [self.hours.get(hour, 0) for hour in range(last - hours + 1, last + 1)]


def as_moment(value):
    """A datetime read by a raw statement, aware (SQLite hands over text or naive UTC)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else parse_datetime(str(value))
    if moment is not None and timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    return moment


def failure_counts(*, handler=None, now=None, known=None, details=True):
    """{group key: GroupCounts} of every group with a failed or dead run now, exact.

    `handler` keeps one handler's groups. One consistent statement for the counts (pass
    `known`, tallies.positions(), to share its read of the indexer's state with other counts)
    and, with `details`, one read of the groups' sample message and first failure.
    """
    now = now or timezone.now()
    group, run, hour, stream = (
        quoted_table(FailureGroup),
        quoted_table(HandlerRun),
        quoted_table(FailureHour),
        quoted_table(FailureStream),
    )
    failing = ", ".join(["%s"] * len(FAILING))
    member = (
        f"CASE WHEN EXISTS (SELECT 1 FROM {stream} s WHERE s.failure_group = r.failure_group "
        "AND s.stream = r.stream) THEN 1 ELSE 0 END"
    )
    live = (
        f"r.failure_group, r.status, NULL, 1, r.finished_at, r.stream, {member}, "
        "r.handler, r.error_type"
    )
    where = f"r.status IN ({failing}) AND r.failure_group <> ''"
    by_handler = " AND r.handler = %s" if handler is not None else ""
    group_handler = " AND handler = %s" if handler is not None else ""

    def sql():
        return (
            f"SELECT 'group', key, NULL, NULL, dead, last_dead_at, NULL, streams, handler, "
            "error_type "
            f"FROM {group} WHERE dead > 0{group_handler} "
            f"UNION ALL SELECT 'hour', h.failure_group, NULL, h.hour, h.runs, NULL, NULL, NULL, "
            f"NULL, NULL FROM {hour} h WHERE h.hour > %s"
            + (
                f" AND h.failure_group IN (SELECT key FROM {group} WHERE handler = %s)"
                if handler is not None
                else ""
            )
            + f" UNION ALL SELECT 'live', {live} FROM {open_runs_from('r')} "
            f"AND {where}{by_handler} "
            f"UNION ALL SELECT 'live', {live} FROM {run} r "
            f"WHERE r.global_position > %s AND {where}{by_handler} "
            f"UNION ALL {state_sql(10)}"
        )

    def params(state):
        with_handler = [handler] if handler is not None else []
        return [
            *with_handler,
            hour_of(now) - SPARK_HOURS,
            *with_handler,
            *FAILING,
            *with_handler,
            state[0],
            *FAILING,
            *with_handler,
            INDEXER,
        ]

    rows, _ = consistent(sql, params, known)
    found = {}
    live_streams = {}
    for source, key, status, hour_number, runs, at, stream_name, extra, name, error in rows:
        entry = found.setdefault(key, GroupCounts(key=key))
        at = as_moment(at)
        entry.handler, entry.error_type = entry.handler or name, entry.error_type or error
        if source == "group":
            entry.dead += runs
            entry.streams += extra or 0
            entry.last_seen = _later(entry.last_seen, at)
        elif source == "hour":
            entry.hours[hour_number] = entry.hours.get(hour_number, 0) + runs
        else:
            if status == RunStatus.DEAD:
                entry.dead += 1
            else:
                entry.failed += 1
            entry.last_seen = _later(entry.last_seen, at)
            if at is not None:
                entry.hours[hour_of(at)] = entry.hours.get(hour_of(at), 0) + 1
            if not extra:
                live_streams.setdefault(key, set()).add(stream_name)
    for key, names in live_streams.items():
        found[key].streams += len(names)
    found = {key: entry for key, entry in found.items() if entry.total}
    if not details:
        return found
    for row in FailureGroup.objects.filter(key__in=found).only(
        "key", "handler", "error_type", "message", "first_seen"
    ):
        entry = found[row.key]
        entry.handler, entry.error_type = row.handler, row.error_type
        entry.message, entry.first_seen = row.message, row.first_seen
    return found


def _later(current, candidate):
    if candidate is None:
        return current
    return candidate if current is None or candidate > current else current
