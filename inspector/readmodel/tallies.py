"""Whole-history counts read in one statement each: the store indexer's tallies up to its
position, plus a live count of what lies beyond it and of the runs it left open.

Counting a million rows at every page view takes a second; the tallies make it a few small
index reads, and the counts are still exact: the live part covers everything the indexer has
not folded in yet. The statement also returns the indexer's position, so a count read while
the indexer moved on between our two reads is read again rather than counted twice.
"""

import json
from dataclasses import dataclass, field

from django.db import connection

from inspector.models import (
    HandlerAttempt,
    HandlerLastAttempt,
    HandlerRun,
    IndexerPosition,
    Message,
    MessageTally,
    OpenRun,
    RunStatus,
    RunTally,
)
from inspector.readmodel.payload_index import INDEXER
from inspector.runtime.databases import database

# Upper bounds (seconds) of the run-duration histogram.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BOUNDS_US = tuple(round(bound * 1_000_000) for bound in DURATION_BUCKETS)
OVERFLOW = "inf"
# Statuses the indexer folds into its tallies. A succeeded or resolved run stays so; a dead
# one leaves only through services (replay, resolve), which hand it back (indexer.reopen_runs).
SETTLED = (RunStatus.SUCCEEDED.value, RunStatus.RESOLVED.value, RunStatus.DEAD.value)
ATTEMPTS = 3  # reads when the indexer keeps moving between the position and the counts
ATTEMPTS_INDEXER = "attempts"  # the IndexerPosition row of the last failed attempt read
# Attempt ids come from a sequence and may commit out of order on PostgreSQL: the indexer and
# the readers both read the last hundred again (a maximum does not mind being taken twice).
ATTEMPT_OVERLAP = 100


def bucket_of(duration_us):
    """The histogram bucket (its bound in microseconds, as text) a duration falls in."""
    for bound in BOUNDS_US:
        if duration_us <= bound:
            return str(bound)
    return OVERFLOW


def _bucket_case(column):
    """SQL for bucket_of(column), so live runs are bucketed by the database."""
    whens = " ".join(f"WHEN {column} <= {bound} THEN '{bound}'" for bound in BOUNDS_US)
    return f"CASE WHEN {column} IS NULL THEN NULL {whens} ELSE '{OVERFLOW}' END"


def quoted_table(model):
    return connection.ops.quote_name(model._meta.db_table)


def runs_by_id(model, where="1 = 1", alias="r"):
    """`FROM` and `WHERE` of the runs whose ids the `run_id` column of `model`'s rows matching
    `where` (its columns as `k.`) holds, as `alias`, each read through the runs' primary key:
    O(ids) however many runs there are. Add conditions with AND."""
    return database().rows_by_id(
        quoted_table(HandlerRun), alias, keys=quoted_table(model), key="run_id", where=where
    )


def open_runs_from(alias="r"):
    """`FROM` and `WHERE` of the runs the indexer left open (runs_by_id)."""
    return runs_by_id(OpenRun, alias=alias)


def _unindexed(column):
    """A GROUP BY term the planner cannot read from an index: SQLite would otherwise rather
    scan a whole (category, ...) index in group order than read the few rows past the
    position."""
    return database().unindexed(column)


def positions():
    """{row name: (position, steps)} of the indexer's rows, in one query; pass it on to read
    several counts of one page."""
    rows = IndexerPosition.objects.filter(name__in=[INDEXER, ATTEMPTS_INDEXER])
    found = {name: (-1, 0) for name in (INDEXER, ATTEMPTS_INDEXER)}
    found.update({name: (p, s) for name, p, s in rows.values_list("name", "position", "steps")})
    return found


def consistent(sql_for, params_for, known):
    """Rows of a statement built for the indexer's state, read again if the state moved."""
    state = (known or positions())[INDEXER]
    for _ in range(ATTEMPTS):
        with connection.cursor() as cursor:
            cursor.execute(sql_for(), params_for(state))
            rows = cursor.fetchall()
        seen = next(((row[3], row[4]) for row in rows if row[0] == "state"), (-1, 0))
        if seen == tuple(state):
            break
        state = seen
    return [row for row in rows if row[0] != "state"], state


def state_sql(columns):
    """The indexer's state as one more row of a UNION of `columns` columns."""
    nulls = ", NULL" * (columns - 5)
    return (
        f"SELECT 'state', NULL, NULL, position, steps{nulls} "
        f"FROM {quoted_table(IndexerPosition)} WHERE name = %s"
    )


# Messages -----------------------------------------------------------------------------------


@dataclass
class TypeCount:
    category: str
    type: str
    messages: int
    last_global_position: int


def message_counts(known=None):
    """Messages per (category, type) with the last global position of each, exact."""

    def sql():
        return (
            f"SELECT 'tally', category, type, messages, last_global_position "
            f"FROM {quoted_table(MessageTally)} "
            "UNION ALL "
            f"SELECT 'live', category, type, COUNT(*), MAX(global_position) "
            f"FROM {quoted_table(Message)} WHERE global_position > %s "
            f"GROUP BY {_unindexed('category')}, {_unindexed('type')} "
            f"UNION ALL {state_sql(5)}"
        )

    rows, _ = consistent(sql, lambda state: [state[0], INDEXER], known)
    found = {}
    for _, category, type_name, messages, last in rows:
        entry = found.setdefault((category, type_name), TypeCount(category, type_name, 0, -1))
        entry.messages += messages
        entry.last_global_position = max(entry.last_global_position, last)
    return [found[key] for key in sorted(found)]


# Runs ---------------------------------------------------------------------------------------


@dataclass
class HandlerTotals:
    """One handler's runs by status, and the duration histogram of its succeeded runs."""

    counts: dict = field(default_factory=dict)  # status -> runs
    timed: int = 0  # succeeded runs with a duration
    duration_us_sum: int = 0
    buckets: dict = field(default_factory=dict)  # bound in µs as text, or "inf" -> runs

    def cumulative(self):
        """Succeeded runs at or under each bound of DURATION_BUCKETS."""
        counts, running = [], 0
        for bound in BOUNDS_US:
            running += self.buckets.get(str(bound), 0)
            counts.append(running)
        return counts


def run_totals(known=None):
    """{handler: HandlerTotals} for every run ever created, exact."""
    run = quoted_table(HandlerRun)
    bucket = _bucket_case("r.duration_us")
    live = (
        f"r.handler, r.status, COUNT(*), SUM(r.duration_us), {bucket} AS bucket, "
        "COUNT(r.duration_us)"
    )
    group = f"GROUP BY {_unindexed('r.handler')}, {_unindexed('r.status')}, bucket"

    def sql():
        return (
            f"SELECT 'tally', handler, status, runs, duration_us_sum, CAST(buckets AS TEXT), timed "
            f"FROM {quoted_table(RunTally)} "
            f"UNION ALL SELECT 'live', {live} FROM {open_runs_from('r')} {group} "
            f"UNION ALL SELECT 'live', {live} FROM {run} r WHERE r.global_position > %s {group} "
            f"UNION ALL {state_sql(7)}"
        )

    rows, _ = consistent(sql, lambda state: [state[0], INDEXER], known)
    totals = {}
    for source, handler, status, runs, duration_sum, buckets, timed in rows:
        entry = totals.setdefault(handler, HandlerTotals())
        entry.counts[status] = entry.counts.get(status, 0) + runs
        if status != RunStatus.SUCCEEDED:
            continue
        entry.duration_us_sum += int(duration_sum or 0)
        entry.timed += timed or 0
        if source == "tally":
            for bound, count in json.loads(buckets or "{}").items():
                entry.buckets[bound] = entry.buckets.get(bound, 0) + count
        elif buckets is not None:
            entry.buckets[buckets] = entry.buckets.get(buckets, 0) + timed
    return totals


# Failed attempts ----------------------------------------------------------------------------


def last_attempt_ids(known=None):
    """{handler: id of its newest failed attempt}: the indexer's record plus newer attempts.

    A maximum, so reading the record after the indexer moved on can only find the same answer.
    """
    seen, _ = (known or positions())[ATTEMPTS_INDEXER]
    # CROSS JOIN: SQLite walks the few newer attempts, never every run.
    sql = (
        f"SELECT handler, attempt_id FROM {quoted_table(HandlerLastAttempt)} "
        f"UNION ALL SELECT r.handler, MAX(a.id) FROM {quoted_table(HandlerAttempt)} a "
        f"CROSS JOIN {quoted_table(HandlerRun)} r WHERE r.id = a.run_id AND a.id > %s "
        "GROUP BY r.handler"
    )
    found = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [seen - ATTEMPT_OVERLAP])
        for handler, attempt_id in cursor.fetchall():
            found[handler] = max(found.get(handler, attempt_id), attempt_id)
    return found
