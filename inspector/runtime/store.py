"""Append messages to streams and read them back: the event store's only writer."""

import uuid
from dataclasses import dataclass, field

from django.db import IntegrityError, connection

from inspector.domain.messages import Metadata
from inspector.exceptions import ConcurrencyError
from inspector.models import HandlerRun, Message
from inspector.runtime.databases import database
from inspector.runtime.databases.base import MESSAGES, Slot
from inspector.runtime.sql import adapters, insert_rows, new_instance
from inspector.runtime.wakeup import notify_workers


@dataclass
class NewMessage:
    """A message waiting to be appended at the end of the unit of work."""

    message: object  # a BaseMessage instance; its _id is the row id
    stream: str
    metadata: dict
    expected_version: int | None = None  # last position the writer saw; -1 for a new stream
    new_stream: bool = False  # the writer knows the stream is empty (a just-inserted aggregate)
    time: object = None  # when the message was recorded
    row: Message | None = field(default=None)


@dataclass
class RowUpdate:
    """An UPDATE of one row that goes with the outbox (a handler run's outcome): inside its
    statement where the outbox is one, else right after it. `matched`: it found its row."""

    sql: str
    params: list
    matched: bool | None = None

    def run(self):
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            self.matched = cursor.rowcount == 1


# A unit of work with more rows than this (a bulk append) writes them in several statements:
# a statement takes at most 65,535 parameters, and the round trips saved matter less there.
ONE_STATEMENT_ROWS = 200


def category_of(stream):
    """`warehouse::order-<id>` → `warehouse::order`; a category is its own category."""
    head, sep, _ = stream.partition("-")
    return head if sep else stream


def _next_global_positions(count):
    """Reserve `count` global positions, in commit order (how depends on the database)."""
    with connection.cursor() as cursor:
        return database().next_global_positions(cursor, count)


def last_positions(streams):
    """The last position of each stream (-1 for an empty one): one index probe per stream."""
    found = {}
    with connection.cursor() as cursor:
        for stream in streams:
            cursor.execute(
                f"SELECT position FROM {MESSAGES} WHERE stream = %s ORDER BY position DESC LIMIT 1",
                [stream],
            )
            row = cursor.fetchone()
            found[stream] = row[0] if row else -1
    return found


def append(entries, *, runs=(), wake_workers=False, update=None):
    """Write the entries in order inside the caller's transaction, with `runs` (handler runs
    of these entries, each with its `_entry`: the outbox); return the rows. `wake_workers`:
    some of the runs are left for the workers, who hear of them at the commit. `update`: a
    `RowUpdate` to send with them."""
    if not entries:
        if runs:
            raise ValueError("handler runs need the messages they handle")
        if update is not None:
            update.run()
        return []
    for run in runs:  # known now; the positions once the messages have theirs
        run.message_type, run.stream = run._entry.message._type, run._entry.stream
    streams = list(dict.fromkeys(entry.stream for entry in entries))
    known_empty = {e.stream for e in entries if e.new_stream}
    to_look_up = [stream for stream in streams if stream not in known_empty]
    db = database()
    if (
        db.appends_in_one_statement
        and len(entries) + len(runs) <= ONE_STATEMENT_ROWS
        and all(e.expected_version is None for e in entries)
    ):
        rows = _append_in_one_statement(
            db, entries, streams, known_empty, to_look_up, runs, wake_workers, update
        )
        _place(runs)
        return rows
    last = {stream: -1 for stream in known_empty}
    if to_look_up:
        last.update(last_positions(to_look_up))
    for entry in entries:
        if entry.expected_version is not None and entry.expected_version != last[entry.stream]:
            raise ConcurrencyError(
                f"Stream {entry.stream} is at position {last[entry.stream]}, "
                f"expected {entry.expected_version}"
            )
    rows = _rows(entries, [_values(e) for e in entries], last, _next_global_positions(len(entries)))
    try:
        insert_rows(Message, rows)
    except IntegrityError as exc:
        raise ConcurrencyError(f"Another writer appended to {', '.join(streams)} first") from exc
    if runs:
        _place(runs)
        insert_rows(HandlerRun, runs)
    if update is not None:
        update.run()
    if wake_workers:
        notify_workers()
    return rows


def _place(runs):
    """Give each run its message's positions, now that they are known."""
    for run in runs:
        row = run._entry.row
        run.position, run.global_position = row.position, row.global_position


def _append_in_one_statement(
    db, entries, streams, known_empty, to_look_up, runs, wake_workers, update
):
    """The database works out the positions as it inserts the messages and their runs (one
    round trip; no expected versions to check first), and tells which ones it gave."""
    counts = dict.fromkeys(streams, 0)
    slots = {}  # id(entry) → (its position's slot, its global position's slot)
    for number, entry in enumerate(entries, start=1):
        counts[entry.stream] += 1
        stream = None if entry.stream in known_empty else entry.stream
        slots[id(entry)] = (Slot(stream, counts[entry.stream]), Slot(None, number))
    values = [_values(e) for e in entries]
    tables = [_slotted(Message, values, [slots[id(e)] for e in entries])]
    if runs:
        run_values = [run.__dict__ for run in runs]
        tables.append(_slotted(HandlerRun, run_values, [slots[id(r._entry)] for r in runs]))
    try:
        with connection.cursor() as cursor:
            first_global, last = db.append(
                cursor, tables=tables, streams=to_look_up, notify=wake_workers, update=update
            )
    except IntegrityError as exc:
        raise ConcurrencyError(f"Another writer appended to {', '.join(streams)} first") from exc
    last.update(dict.fromkeys(known_empty, -1))
    rows = _rows(entries, values, last, first_global)
    for obj in (*rows, *runs):
        obj._state.adding = False
        obj._state.db = connection.alias
    return rows


def _slotted(model, values_list, slots):
    """(table, columns, rows of parameters) for `model`'s rows, with `Slot`s where the
    statement works out their position and global position."""
    fields = model._meta.concrete_fields
    adapt = adapters(model, [f.name for f in fields], connection)
    rows = []
    for values, (position, global_position) in zip(values_list, slots, strict=True):
        row = []
        for field_, adapt_one in zip(fields, adapt, strict=True):
            if field_.name == "position":
                row.append(position)
            elif field_.name == "global_position":
                row.append(global_position)
            else:
                row.append(adapt_one(values[field_.attname]))
        rows.append(row)
    return model._meta.db_table, [f.column for f in fields], rows


def _values(entry):
    """A message row's field values, without its positions."""
    message = entry.message
    return {
        "id": message._id,
        "kind": message.kind,
        "type": message._type,
        "stream": entry.stream,
        "category": category_of(entry.stream),
        "data": message.to_dict(),
        "metadata": entry.metadata,
        "correlation_id": _as_uuid(entry.metadata["correlation_id"]),
        "causation_id": _as_uuid(entry.metadata.get("causation_id")),
        "time": entry.time,
    }


def _rows(entries, values_list, last, first_global):
    """The entries' rows at the positions that follow `last` and `first_global`."""
    rows = []
    for offset, (entry, values) in enumerate(zip(entries, values_list, strict=True)):
        last[entry.stream] += 1
        values["position"] = last[entry.stream]
        values["global_position"] = first_global + offset
        entry.row = new_instance(Message, values)
        rows.append(entry.row)
        entry.message._with_metadata(metadata_of(entry.row))
    return rows


def _as_uuid(value):
    return value if value is None or isinstance(value, uuid.UUID) else uuid.UUID(value)


def metadata_of(row):
    meta = row.metadata
    return Metadata(
        id=row.id,
        type=row.type,
        kind=row.kind,
        stream=row.stream,
        position=row.position,
        global_position=row.global_position,
        time=row.time,
        correlation_id=str(row.correlation_id),
        causation_id=meta.get("causation_id"),
        origin_stream=meta.get("origin_stream"),
        handler_run_id=meta.get("handler_run_id"),
        aggregate_version=meta.get("aggregate_version"),
    )


def read_stream(stream, *, from_position=0, limit=None):
    rows = Message.objects.in_stream(stream).filter(position__gte=from_position)
    return list(rows[:limit] if limit else rows)


def read_category(category, *, after_global_position=-1, limit=None):
    rows = Message.objects.in_category(category).filter(global_position__gt=after_global_position)
    return list(rows[:limit] if limit else rows)


def read_all(*, after_global_position=-1, limit=None):
    rows = Message.objects.after(after_global_position)
    return list(rows[:limit] if limit else rows)


def last_message(stream):
    return Message.objects.filter(stream=stream).order_by("-position").first()
