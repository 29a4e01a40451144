"""Append messages to streams and read them back: the event store's only writer."""

import uuid
from dataclasses import dataclass, field

from django.db import IntegrityError, connection

from inspector.domain.messages import Metadata
from inspector.exceptions import ConcurrencyError
from inspector.models import Message
from inspector.runtime.databases import database
from inspector.runtime.databases.base import MESSAGES
from inspector.runtime.sql import insert_rows, new_instance


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


def append(entries):
    """Write the entries in order inside the caller's transaction; return the rows."""
    if not entries:
        return []
    streams = list(dict.fromkeys(entry.stream for entry in entries))
    known_empty = {e.stream for e in entries if e.new_stream}
    last = {stream: -1 for stream in known_empty}
    to_look_up = [stream for stream in streams if stream not in known_empty]
    if to_look_up:
        last.update(last_positions(to_look_up))
    for entry in entries:
        if entry.expected_version is not None and entry.expected_version != last[entry.stream]:
            raise ConcurrencyError(
                f"Stream {entry.stream} is at position {last[entry.stream]}, "
                f"expected {entry.expected_version}"
            )
    first_global = _next_global_positions(len(entries))
    rows = []
    for offset, entry in enumerate(entries):
        last[entry.stream] += 1
        message = entry.message
        entry.row = new_instance(
            Message,
            {
                "id": message._id,
                "kind": message.kind,
                "type": message._type,
                "stream": entry.stream,
                "category": category_of(entry.stream),
                "position": last[entry.stream],
                "global_position": first_global + offset,
                "data": message.to_dict(),
                "metadata": entry.metadata,
                "correlation_id": _as_uuid(entry.metadata["correlation_id"]),
                "causation_id": _as_uuid(entry.metadata.get("causation_id")),
                "time": entry.time,
            },
        )
        rows.append(entry.row)
        message._with_metadata(metadata_of(entry.row))
    try:
        insert_rows(Message, rows)
    except IntegrityError as exc:
        raise ConcurrencyError(f"Another writer appended to {', '.join(streams)} first") from exc
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
