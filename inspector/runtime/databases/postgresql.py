"""PostgreSQL: a counter row orders the writers' global positions; LISTEN/NOTIFY wakes workers."""

from inspector.runtime.databases.base import (
    GLOBAL_SEQUENCE,
    MESSAGES,
    SEQUENCES,
    WORKER_CHANNEL,
    Database,
)


class PostgreSQL(Database):
    vendor = "postgresql"
    listens = True
    # PostgreSQL can misjudge how rare a payload match is and walk the whole global-position
    # index backwards; ordering on an expression leaves it the GIN index.
    orders_payload_scan_by_expression = True

    def next_global_positions(self, cursor, count):
        """Writers run concurrently: the counter row's lock, held to commit, orders them."""
        cursor.execute(
            f"UPDATE {SEQUENCES} SET value = value + %s WHERE name = %s RETURNING value",
            [count, GLOBAL_SEQUENCE],
        )
        row = cursor.fetchone()
        if row is None:  # the counter row was flushed away (TransactionTestCase): rebuild it
            cursor.execute(
                f"INSERT INTO {SEQUENCES} (name, value) "
                f"SELECT %s, COALESCE(MAX(global_position), -1) + %s FROM {MESSAGES}",
                [GLOBAL_SEQUENCE, count],
            )
            cursor.execute(f"SELECT value FROM {SEQUENCES} WHERE name = %s", [GLOBAL_SEQUENCE])
            row = cursor.fetchone()
        (last,) = row
        return last - count + 1

    def notify_workers(self, cursor):
        cursor.execute("SELECT pg_notify(%s, '')", [WORKER_CHANNEL])

    def listen(self, connection):
        import psycopg  # only PostgreSQL projects have it

        params = connection.get_connection_params()
        for name in ("cursor_factory", "context", "prepare_threshold", "pool"):
            params.pop(name, None)
        listener = psycopg.connect(**params, autocommit=True)
        try:
            listener.execute(f"LISTEN {WORKER_CHANNEL}")
        except psycopg.Error:
            listener.close()
            raise
        return listener
