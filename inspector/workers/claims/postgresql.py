"""PostgreSQL: workers claim concurrently, each skipping the rows another has locked."""

import contextlib

from django.db import DatabaseError, connection

from inspector.models import HandlerRun, Message
from inspector.runtime.sql import Columns, placeholders
from inspector.workers.claims.base import (
    MESSAGE_FIELDS,
    MESSAGES,
    RUN_FIELDS,
    RUNS,
    Claim,
    due,
    followed,
)

# WINDOW_SCAN. Every run that finishes leaves a dead entry in the partial index of unfinished
# runs until VACUUM. A plain index scan marks the entries it finds dead, so the next scan
# skips them; a bitmap scan, which the planner prefers whenever few runs are unfinished, reads
# them all again at every claim (0.7 ms at 12,000 finished runs, growing until autovacuum
# comes by). The windowed claim turns bitmap scans off for its statement.


class SkipLockedClaim(Claim):
    def lease(self, at, expires, limit, window):
        """One statement: choose the candidates, lock those no one else holds, re-check on
        the locked (latest) versions that they are still due, lease them, and read them with
        their messages.

        One statement instead of four (choose, lease, load, count the window) because an
        idle worker's claim pays them all for the one or two runs a notification announces.
        The due test reads the locked rows, not the table, so the plan stays a primary-key
        lookup whatever the planner believes about the status indexes.
        """
        ctes, select, params = self.candidates(at, limit, window=window)
        run_columns = Columns(HandlerRun, RUN_FIELDS, "l")
        message_columns = Columns(Message, MESSAGE_FIELDS, "m")
        qn = connection.ops.quote_name
        returning = ", ".join(
            f"r.{qn(HandlerRun._meta.get_field(name).column)}" for name in (*RUN_FIELDS, "message")
        )
        in_window = "(SELECT COUNT(*) FROM w)" if window else "0"
        sql = (
            f"WITH {''.join(cte + ', ' for cte in ctes)}"
            f"chosen AS MATERIALIZED ({select}), "
            "locked AS MATERIALIZED (SELECT id, status, available_at, claimed_by, "
            f"lease_expires_at FROM {RUNS} WHERE id IN (SELECT id FROM chosen) "
            "FOR UPDATE SKIP LOCKED), "
            f"l AS (UPDATE {RUNS} r SET status = 'running', claimed_by = %s, "
            "lease_expires_at = %s, updated_at = %s FROM locked WHERE r.id = locked.id "
            f"AND {due('locked')} RETURNING {returning}) "
            f"SELECT n.chosen, n.in_window, {run_columns.sql}, {message_columns.sql}, "
            f"{followed('l')} FROM (SELECT (SELECT COUNT(*) FROM chosen) AS chosen, "
            f"{in_window} AS in_window) n "
            f"LEFT JOIN (l JOIN {MESSAGES} m ON m.id = l.message_id) ON true"
        )
        with connection.cursor() as cursor:
            if window:  # see WINDOW_SCAN
                cursor.execute("SET enable_bitmapscan = off")
            try:
                cursor.execute(sql, [*params, self.worker.worker_id, expires, at, at, at, at])
                rows = cursor.fetchall()
            finally:
                if window:  # after an error: a broken connection is replaced, and an aborted
                    with contextlib.suppress(DatabaseError):  # transaction undoes the SET
                        cursor.execute("RESET enable_bitmapscan")
        chosen, in_window = rows[0][0], rows[0][1]
        if rows[0][2] is None:  # the left join's one row: nothing leased
            return [], chosen, in_window
        return [self.loaded(row, offset=2) for row in rows], chosen, in_window

    def renew(self, ids, expires):
        """Skip the rows the worker's open group has already written: waiting for them while
        holding the rows the group writes next is a deadlock (and they need no renewal)."""
        pk = HandlerRun._meta.pk
        adapt = HandlerRun._meta.get_field("lease_expires_at").get_db_prep_value
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {RUNS} SET lease_expires_at = %s WHERE id IN ("
                f"SELECT id FROM {RUNS} WHERE id IN ({placeholders(len(ids))}) "
                "AND claimed_by = %s AND status = 'running' FOR UPDATE SKIP LOCKED)",
                [
                    adapt(expires, connection),
                    *(pk.get_db_prep_value(value, connection) for value in ids),
                    self.worker.worker_id,
                ],
            )
