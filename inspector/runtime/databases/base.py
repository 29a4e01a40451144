"""The interface each database module implements."""

from inspector.models import Message, StoreSequence

MESSAGES = Message._meta.db_table
SEQUENCES = StoreSequence._meta.db_table

# The name of the counter row of global positions in `StoreSequence`.
GLOBAL_SEQUENCE = "global"

# The LISTEN/NOTIFY channel of workers (PostgreSQL).
WORKER_CHANNEL = "inspector_runs"


class Database:
    """One database's SQL and abilities, for the store, the wake-up and the read model."""

    vendor = ""
    # Whether a notification sent inside a transaction reaches waiting workers in every
    # process at its commit (LISTEN/NOTIFY). Without it, commits in this process wake its
    # workers directly and other processes' commits are noticed by `watches_commits`.
    listens = False
    # Whether a waiting worker can cheaply tell that another connection committed.
    watches_commits = False
    # How long an idle worker waits between looks when nothing wakes it, in seconds.
    worker_poll_interval = 1.0
    # Whether a payload scan is ordered on an expression of the global position, so that
    # the planner keeps the payload index rather than walking the position index.
    orders_payload_scan_by_expression = False
    # Whether a datetime parameter is sent as text (the ORM's own adaptation on SQLite).
    datetimes_as_text = False

    def next_global_positions(self, cursor, count):
        """Reserve `count` global positions, in commit order; return the first."""
        raise NotImplementedError

    # Whether `append` writes a batch of messages in one statement (positions included);
    # otherwise the store reads the positions, reserves global ones and then inserts.
    appends_in_one_statement = False

    def append(self, cursor, *, tables, streams, notify, update=None):
        """INSERT a unit of work's rows in one statement: `tables` is a list of (table,
        columns, rows of parameters), the messages first, each row's `position` and
        `global_position` a `Slot`; with `notify`, wake the workers at the commit; `update`, a
        `store.RowUpdate` of a row no INSERT writes, in the same statement (set its `matched`).
        Return (the first global position given, {stream: its last position before} for
        `streams`)."""
        raise NotImplementedError

    def notify_workers(self, cursor):
        """Wake waiting workers in every process when the current transaction commits
        (databases that `listen`; the others' workers are woken in-process or watch commits)."""
        raise NotImplementedError

    def listen(self, connection):
        """A new autocommit connection that receives the workers' notifications."""
        raise NotImplementedError

    def commit_marker(self, cursor):
        """A value that changes whenever another connection commits (`watches_commits`)."""
        raise NotImplementedError

    def unindexed(self, column):
        """A term for `column` that the planner cannot read from an index (a GROUP BY hint)."""
        return column

    def rows_by_id(self, table, alias, *, keys, key, where):
        """`FROM` and `WHERE` of `table`'s rows (as `alias`) whose ids the `key` column of
        `keys`' rows matching `where` (its columns as `k.`) holds, each read through the
        primary key whatever their number (the runs the store indexer left open, a replay
        job's runs after its mark). Add conditions with AND."""
        return f"{keys} k CROSS JOIN {table} {alias} WHERE {alias}.id = k.{key} AND {where}"


class Slot:
    """Where a row's stream position or global position goes, worked out by the statement:
    the `number`-th new message of `stream` (counted from the stream's last position; from
    -1 when `stream` is None, a stream known to be empty), or the batch's `number`-th
    global position."""

    __slots__ = ("stream", "number")

    def __init__(self, stream, number):
        self.stream = stream
        self.number = number
