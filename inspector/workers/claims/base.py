"""What every database's claim shares: which runs are due, in what order, and how a leased
run is read back with its message.

Raw SQL on purpose: the status list is written literally (the partial indexes' condition) so
SQLite uses those indexes, a window bounds the scan to the oldest unfinished runs (an index
walk whatever the planner's statistics say), and a claim must be one or two statements.
"""

from django.db import connection

from inspector.models import HandlerRun, HandlerState, Message
from inspector.runtime.sql import Columns, placeholders

RUNS = HandlerRun._meta.db_table
MESSAGES = Message._meta.db_table
HANDLER_STATES = HandlerState._meta.db_table

# What executing a run reads of its message: all of it but the category and causation column.
MESSAGE_FIELDS = (
    "id",
    "kind",
    "type",
    "stream",
    "position",
    "global_position",
    "data",
    "metadata",
    "correlation_id",
    "time",
)

# What executing a claimed run reads of it (its message is read whole): converting the other
# columns of every claimed row was a tenth of a run's cost. `edit`: the edited replay whose
# payload it runs with, if any.
RUN_FIELDS = (
    "id",
    "handler",
    "status",
    "attempts",
    "stream",
    "position",
    "global_position",
    "edit",
)

# A run that may still change; written literally (= the partial indexes' condition) so that
# SQLite uses those indexes.
UNFINISHED = "status IN ('pending', 'running', 'failed')"


def due(alias, *, status=None):
    """SQL: the run `alias` may be claimed now (three `%s` for the time). A run is due when it
    is pending or failed, its retry time has come and no live lease holds it, or when it is
    running on a lease that expired (its worker died)."""
    status = status or f"{alias}.status"
    return (
        f"(({status} IN ('pending', 'failed') AND {alias}.available_at <= %s "
        f"AND ({alias}.claimed_by = '' OR {alias}.lease_expires_at < %s)) "
        f"OR ({status} = 'running' AND {alias}.lease_expires_at < %s))"
    )


def followed(alias):
    """SQL: a later unfinished run of the same handler and stream waits for run `alias`."""
    return (
        f"EXISTS (SELECT 1 FROM {RUNS} e WHERE e.handler = "
        f"{alias}.handler AND e.stream = {alias}.stream AND e.position > {alias}.position "
        f"AND e.{UNFINISHED})"
    )


class Claim:
    """Leases due runs for one worker; a subclass per database says how."""

    # Added after the table name of the windowed scan (SQLite's `INDEXED BY`).
    window_hint = ""

    def __init__(self, worker):
        self.worker = worker

    def lease(self, at, expires, limit, window):
        """Lease up to `limit` due runs among the `window` oldest unfinished ones (all when
        None). Returns the leased runs (with `.message` and `.followed`), how many runs were
        chosen, and how many unfinished runs the window held (None when not counted)."""
        raise NotImplementedError

    def renew(self, ids, expires):
        """Extend the lease of the runs `ids` that this worker still runs."""
        raise NotImplementedError

    def candidates(self, at, limit, *, window):
        """The due runs whose stream has no earlier unfinished run, oldest first, as
        `(ctes, select, params)`: `select` reads their ids as `id`; the CTE `w` holds the
        window. The caller retries without the window when a full one held nothing to claim.
        """
        earlier_unfinished = (
            f"AND NOT EXISTS (SELECT 1 FROM {RUNS} e WHERE e.handler = r.handler "
            f"AND e.stream = r.stream AND e.position < r.position AND e.{UNFINISHED})"
        )
        ctes, source = [], RUNS
        if window:
            # An earlier unfinished run of the same stream has a lower global position, so it
            # is in the window too: ranking the window's runs per stream is the ordering test.
            ctes = [
                "w AS MATERIALIZED (SELECT id, handler, stream, position, global_position, "
                "status, available_at, claimed_by, lease_expires_at "
                f"FROM {RUNS}{self.window_hint} WHERE {UNFINISHED} "
                f"ORDER BY global_position LIMIT {int(window)})",
                "ranked AS (SELECT w.*, ROW_NUMBER() OVER "
                "(PARTITION BY handler, stream ORDER BY position) AS nth FROM w)",
            ]
            source, earlier_unfinished = "ranked", "AND r.nth = 1"
        sql = [
            f"SELECT r.id FROM {source} r WHERE r.{UNFINISHED}",
            f"AND {due('r')}",
            earlier_unfinished,
        ]
        params = [at, at, at]
        worker = self.worker
        parked = [spec.name for spec in worker.domain.handlers() if spec.park_on_failure]
        if parked:
            sql.append(
                f"AND NOT (r.handler IN ({placeholders(len(parked))}) AND EXISTS ("
                f"SELECT 1 FROM {RUNS} d WHERE d.handler = r.handler "
                "AND d.stream = r.stream AND d.position < r.position AND d.status = 'dead'))"
            )
            params.extend(parked)
        sql.append(
            f"AND NOT EXISTS (SELECT 1 FROM {HANDLER_STATES} s "
            "WHERE s.handler = r.handler AND s.paused)"
        )
        if worker.handlers is not None:
            sql.append(f"AND r.handler IN ({placeholders(len(worker.handlers))})")
            params.extend(sorted(worker.handlers))
        sql.append("ORDER BY r.global_position LIMIT %s")
        params.append(limit)
        return ctes, "\n".join(sql), params

    def load(self, ids):
        """The leased runs with their messages: one query, no ORM compile."""
        run_columns = Columns(HandlerRun, RUN_FIELDS, "r")
        message_columns = Columns(Message, MESSAGE_FIELDS, "m")
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {run_columns.sql}, {message_columns.sql}, {followed('r')} "
                f"FROM {RUNS} r JOIN {MESSAGES} m ON m.id = r.message_id "
                f"WHERE r.id IN ({placeholders(len(ids))})",
                ids,
            )
            return [self.loaded(row) for row in cursor.fetchall()]

    @staticmethod
    def loaded(row, offset=0):
        """A run and its message from a row of `load`'s columns, starting at `offset`."""
        run = Columns(HandlerRun, RUN_FIELDS, "r").load(row, offset)
        offset += len(RUN_FIELDS)
        run.message = Columns(Message, MESSAGE_FIELDS, "m").load(row, offset)
        run.followed = bool(row[offset + len(MESSAGE_FIELDS)])
        return run
