"""SQLite: one writer at a time, so the next global position is one past the highest; a
worker notices other processes' commits through `PRAGMA data_version`."""

from inspector.runtime.databases.base import MESSAGES, Database


class SQLite(Database):
    vendor = "sqlite"
    watches_commits = True
    worker_poll_interval = 0.1
    datetimes_as_text = True

    def next_global_positions(self, cursor, count):
        """Our transactions take the write lock when they begin (IMMEDIATE), so the highest
        stored position cannot move under us: one index probe."""
        cursor.execute(f"SELECT MAX(global_position) FROM {MESSAGES}")
        (last,) = cursor.fetchone()
        return (-1 if last is None else last) + 1

    def commit_marker(self, cursor):
        cursor.execute("PRAGMA data_version")  # changes when another connection commits
        return cursor.fetchone()[0]

    # rows_by_id: the base class's CROSS JOIN, which SQLite walks in the order written.

    def unindexed(self, column):
        """SQLite would rather scan a whole (category, ...) index in group order than read the
        few rows past the indexer's position; a unary `+` takes the index away."""
        return f"+{column}"
