"""The failures page and a failure group's page: groups with their counts, and one group's
runs, keyset-paged.

The counts come from inspector/readmodel/failures.py (the indexer's tallies of dead runs plus
the runs it has not folded in), so the list costs O(groups), not O(failed runs); the group's
key is on every run it covers (`HandlerRun.failure_group`), so acting on "a group" is a filter
on an index: `group_runs(key)`.
"""

from dataclasses import dataclass

from django.db.models import Count
from django.utils import timezone

from inspector.dashboard.drawing.sparkline import sparkline_svg
from inspector.dashboard.selectors.lookups import POSITION_MAX, storable
from inspector.dashboard.selectors.paging import KeysetPage, keyset_page, page_limit
from inspector.models import FailureGroup, HandlerRun, RunStatus
from inspector.readmodel import failures
from inspector.runtime.failures import KEY_LENGTH
from inspector.runtime.names import short_handler

FAILING = (RunStatus.FAILED, RunStatus.DEAD)
SPARK_TITLE = "{total} failed or dead runs last failed in the last day; peak {peak} an hour"
SPARK_COLORS = ("#fee2e2", "#b91c1c")
RUN_FIELDS = (
    "id",
    "message_id",
    "handler",
    "message_type",
    "stream",
    "position",
    "global_position",
    "status",
    "attempts",
    "finished_at",
    "duration_us",
    "error_type",
    "error_message",
)


@dataclass
class FailureGroupRow:
    """One row of the failures page."""

    counts: failures.GroupCounts
    spark_svg: str

    @property
    def short_handler(self):
        return short_handler(self.counts.handler)

    @property
    def short_error(self):
        return short_handler(self.counts.error_type)


def _row(counts, now):
    series = counts.series(now)
    return FailureGroupRow(
        counts=counts, spark_svg=sparkline_svg(series, title=SPARK_TITLE, colors=SPARK_COLORS)
    )


def failure_group_list(*, handler=None, now=None):
    """Every group with failed or dead runs now (one handler's, given `handler`), the most
    recently seen first."""
    now = now or timezone.now()
    if handler is not None and not storable(handler):
        return []
    found = failures.failure_counts(handler=handler, now=now)
    rows = sorted(
        found.values(),
        key=lambda c: (c.last_seen or c.first_seen or now, c.key),
        reverse=True,
    )
    return [_row(counts, now) for counts in rows]


def valid_key(key):
    """Whether `key` could be a group key (hex digits of KEY_LENGTH)."""
    return len(key) == KEY_LENGTH and all(c in "0123456789abcdef" for c in key)


def failure_group(key, *, now=None):
    """One group as the failures page shows it (with zero counts once none of its runs is
    failed or dead), or None when there is no such group."""
    now = now or timezone.now()
    group = FailureGroup.objects.filter(key=key).first() if valid_key(key) else None
    if group is None:
        return None
    counts = failures.failure_counts(handler=group.handler, now=now).get(key)
    if counts is None:
        counts = failures.GroupCounts(
            key=key,
            handler=group.handler,
            error_type=group.error_type,
            message=group.message,
            first_seen=group.first_seen,
        )
    return _row(counts, now)


def group_runs(key):
    """The failed and dead runs of one group: what its actions act on."""
    return HandlerRun.objects.filter(failure_group=key, status__in=FAILING)


def group_run_list(key, *, after=-1, limit=None):
    """One page of the group's failed and dead runs by global position after `after` (a group
    is one handler's, so a run's global position is its key in the list)."""
    limit = page_limit(limit)
    if after >= POSITION_MAX:
        return KeysetPage(items=[])
    rows = list(
        group_runs(key)
        .filter(global_position__gt=after)
        .order_by("global_position", "handler")
        .only(*RUN_FIELDS)[: limit + 1]
    )
    return keyset_page(rows, limit, lambda run: run.global_position)


def group_traceback(key):
    """The newest failed or dead run of the group with its full traceback, or None."""
    return (
        group_runs(key)
        .order_by("-global_position", "-handler")
        .only(*RUN_FIELDS, "traceback")
        .first()
    )


def group_status_counts(key):
    """{status: runs} of the group's failed and dead runs, for a confirmation."""
    rows = group_runs(key).order_by().values("status").annotate(n=Count("pk"))
    return {row["status"]: row["n"] for row in rows}
