"""SQLite: one writer at a time, so a claim chooses, then leases under the write lock."""

from django.db import connection, transaction

from inspector.models import HandlerRun, RunStatus
from inspector.runtime.sql import placeholders
from inspector.workers.claims.base import RUNS, UNFINISHED, Claim, due


class WriteLockClaim(Claim):
    # SQLite would rather sort a status range than walk the partial index; tell it.
    window_hint = " INDEXED BY run_unfinished_order"

    def lease(self, at, expires, limit, window):
        """Choose, then lease in an IMMEDIATE transaction, which holds the single write lock,
        with one UPDATE that re-checks the rows are still due; then read them."""
        ctes, select, params = self.candidates(at, limit, window=window)
        with connection.cursor() as cursor:
            cursor.execute(f"WITH {', '.join(ctes)} {select}" if ctes else select, params)
            chosen = [row[0] for row in cursor.fetchall()]
        if not chosen:
            return [], 0, window and self._window_count(window)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {RUNS} SET status = 'running', claimed_by = %s, "
                f"lease_expires_at = %s, updated_at = %s WHERE id IN ({placeholders(len(chosen))}) "
                # `+status`: a plain term for SQLite's planner, so the primary key drives
                # the statement rather than the partial index of every unfinished run
                f"AND {due(RUNS, status='+status')} RETURNING id",
                [self.worker.worker_id, expires, at, *chosen, at, at, at],
            )
            ids = [row[0] for row in cursor.fetchall()]
        return (self.load(ids) if ids else []), len(chosen), None

    @staticmethod
    def _window_count(window):
        """How many unfinished runs the window holds (at most `window`)."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COUNT(*) FROM (SELECT 1 FROM {RUNS} WHERE {UNFINISHED} LIMIT %s) w",
                [window],
            )
            return cursor.fetchone()[0]

    def renew(self, ids, expires):
        """The single writer cannot deadlock with the worker's open group."""
        HandlerRun.objects.filter(
            pk__in=ids, claimed_by=self.worker.worker_id, status=RunStatus.RUNNING
        ).update(lease_expires_at=expires)
