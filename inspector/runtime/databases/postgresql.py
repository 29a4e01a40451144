"""PostgreSQL: a counter row orders the writers' global positions; LISTEN/NOTIFY wakes workers."""

import functools

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

    appends_in_one_statement = True

    def append(self, cursor, *, tables, streams, notify, update=None):
        """One round trip for a unit of work's outbox: the counter row (created from the
        highest stored position if a test flushed it away), the streams' last positions, the
        INSERTs and the workers' notification are one statement, whose parts share one
        snapshot (so the positions read are those before the insert). A concurrent writer to
        the same stream still meets the (stream, position) unique constraint, as it did with
        separate statements, and the counter row's lock still orders the commits. `update`
        (a handler run's outcome, a row none of the INSERTs writes) is one more part."""
        count = len(tables[0][2])
        params = [GLOBAL_SEQUENCE, count, count, *streams]
        shapes = []
        for table, columns, rows in tables:
            shape = []
            for row in rows:
                kinds = []
                for column, value in zip(columns, row, strict=True):
                    if column == "position":
                        if value.stream is None:  # a stream known to be empty
                            kinds.append("value")
                            params.append(value.number - 1)
                        else:
                            kinds.append("stream")
                            params.extend([value.stream, value.number])
                    elif column == "global_position":
                        kinds.append("global")
                        params.append(count - value.number)
                    else:
                        kinds.append("value")
                        params.append(value)
                shape.append(tuple(kinds))
            shapes.append((table, tuple(columns), tuple(shape)))
        if update is not None:
            params.extend(update.params)
        if notify:
            params.append(WORKER_CHANNEL)
        sql = _append_sql(tuple(shapes), len(streams), notify, update and update.sql)
        cursor.execute(sql, params)
        found = cursor.fetchall()
        last = found[0][0]
        positions = {row[1]: row[2] for row in found if row[1] is not None}
        if update is not None:
            update.matched = found[0][3] == 1
        return last - count + 1, positions

    def rows_by_id(self, table, alias, *, keys, key, where):
        """An array of the ids, read first. PostgreSQL's planner prices an index probe at four
        random reads, so beyond about a thousand ids (fewer as a small table's pages bloat
        between two vacuums, which raises its row estimate) it joined them by hashing a
        sequential scan of the whole table instead: 100-300 ms a statement at 200,000 runs, at
        every page view, indexer step and job progress read while a replay job reopened runs,
        growing with the history. An array leaves it nothing to hash."""
        ids = f"ARRAY(SELECT k.{key} FROM {keys} k WHERE {where})"
        return f"{table} {alias} WHERE {alias}.id = ANY({ids})"

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


@functools.lru_cache(maxsize=256)  # one per shape of unit of work; few in practice
def _append_sql(shapes, streams, notify, update):
    """The outbox statement for this shape of unit of work, looking up `streams` streams.

    The streams are a VALUES list, not an array parameter: PostgreSQL plans a prepared
    statement again at every execution while the plan for any parameters looks dearer than
    the ones for the values given, and an array of unknown length did (planning was 0.5 ms of
    each execution's 1.1 ms)."""
    slots = {
        "value": "%s",
        "stream": "(SELECT l.position FROM last l WHERE l.stream = %s) + %s",
        "global": "(SELECT value FROM seq) - %s",
    }
    updated = f", updated AS ({update} RETURNING 1)" if update else ""
    note = ", note AS (SELECT pg_notify(%s, ''))" if notify else ""
    if streams:
        looked_up = f"(VALUES {', '.join(['(%s::varchar)'] * streams)})"
    else:
        looked_up = "(SELECT NULL::varchar WHERE false)"
    inserts = []
    for number, (table, columns, shape) in enumerate(shapes):
        values = ", ".join(f"({', '.join(slots[kind] for kind in row)})" for row in shape)
        quoted = ", ".join(f'"{column}"' for column in columns)
        inserts.append(f"insert_{number} AS (INSERT INTO {table} ({quoted}) VALUES {values})")
    return (
        f"WITH seq AS ("
        f"INSERT INTO {SEQUENCES} (name, value) "
        f"SELECT %s, COALESCE(MAX(global_position), -1) + %s FROM {MESSAGES} "
        f"ON CONFLICT (name) DO UPDATE SET value = {SEQUENCES}.value + %s RETURNING value), "
        f"last AS (SELECT s.stream, COALESCE((SELECT m.position FROM {MESSAGES} m "
        f"WHERE m.stream = s.stream ORDER BY m.position DESC LIMIT 1), -1) AS position "
        f"FROM {looked_up} AS s(stream)), "
        f"{', '.join(inserts)}"
        f"{updated}{note} "
        f"SELECT seq.value, last.stream, last.position"
        f"{', (SELECT count(*) FROM updated)' if update else ''} FROM seq LEFT JOIN last ON true"
        f"{' CROSS JOIN note' if notify else ''}"
    )
