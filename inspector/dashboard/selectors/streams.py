"""The streams pages: stream categories, a category's streams, a stream's messages, and an
aggregate's history folded from its events."""

from dataclasses import dataclass

from django.db.models import Count, Max

from inspector.dashboard.selectors.lookups import POSITION_MAX, storable
from inspector.dashboard.selectors.paging import (
    KeysetPage,
    keyset_page,
    page_limit,
    with_listed_runs,
)
from inspector.models import Message
from inspector.readmodel import tallies
from inspector.runtime.domain import current_domain
from inspector.runtime.names import short_type

HISTORY_PREFIX_LIMIT = 5000  # earlier messages folded into an aggregate's history page


def category_list():
    """Every stream category with its message count and latest message time.

    The counts are the store indexer's tallies plus the messages beyond its position, read in
    one statement (inspector/tallies.py); the times of the few last messages come from a second
    query by global position.
    """
    by_category = {}
    for entry in tallies.message_counts():
        row = by_category.setdefault(
            entry.category,
            {"category": entry.category, "messages": 0, "last_global_position": -1},
        )
        row["messages"] += entry.messages
        row["last_global_position"] = max(row["last_global_position"], entry.last_global_position)
    rows = [by_category[category] for category in sorted(by_category)]
    times = dict(
        Message.objects.filter(
            global_position__in=[row["last_global_position"] for row in rows]
        ).values_list("global_position", "time")
    )
    for row in rows:
        row["last_time"] = times.get(row["last_global_position"])
    return rows


def stream_list(*, category, after="", limit=None):
    """The streams of one category by name, each with its last position and time."""
    limit = page_limit(limit)
    if not (storable(category) and storable(after)):
        return KeysetPage(items=[])
    rows = Message.objects.filter(category=category)
    if after:
        rows = rows.filter(stream__gt=after)
    rows = list(
        rows.order_by()
        .values("stream")
        .annotate(messages=Count("*"), last_position=Max("position"), last_time=Max("time"))
        .order_by("stream")[: limit + 1]
    )
    return keyset_page(rows, limit, lambda row: row["stream"])


def stream_message_list(*, stream, after=-1, limit=None):
    """One stream's messages by position after `after`, with their handler runs."""
    limit = page_limit(limit)
    if not storable(stream) or after >= POSITION_MAX:
        return KeysetPage(items=[])
    rows = with_listed_runs(
        Message.objects.filter(stream=stream, position__gt=after).order_by("position")[: limit + 1]
    )
    return keyset_page(rows, limit, lambda message: message.position)


def aggregate_for_category(category):
    """The registered aggregate whose streams make up `category`, or None."""
    for aggregate in current_domain.aggregates:
        if current_domain.stream_category(aggregate) == category:
            return aggregate
    return None


@dataclass
class HistoryEntry:
    """The aggregate's state after one message: every field so far, and those it changed."""

    message: Message
    state: dict
    changed: dict


def aggregate_history(*, aggregate, stream, messages):
    """Fold each event's data into a running state; choice fields (status) follow event names.

    The page may start mid-stream: the messages before it are folded first (up to
    HISTORY_PREFIX_LIMIT of them), so the state shown is the state at that position.
    Returns (entries, folded_from): folded_from is the first position folded.
    """
    state, folded_from = {}, 0
    if messages and messages[0].position > 0:
        first = messages[0].position
        prefix = list(
            Message.objects.filter(stream=stream, position__lt=first)
            .order_by("-position")
            .values_list("position", "type", "data")[:HISTORY_PREFIX_LIMIT]
        )
        prefix.reverse()
        folded_from = prefix[0][0] if prefix else first
        for position, type_name, data in prefix:
            _fold(aggregate, state, position, type_name, data)
    entries = []
    for message in messages:
        changed = _fold(aggregate, state, message.position, message.type, message.data)
        entries.append(HistoryEntry(message=message, state=dict(state), changed=changed))
    return entries, folded_from


def _fold(aggregate, state, position, type_name, data):
    changed = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if key not in state or state[key] != value:
                changed[key] = value
    for name, value in _choice_fields_after(aggregate, position, type_name).items():
        if state.get(name) != value:
            changed[name] = value
    state.update(changed)
    return changed


def _choice_fields_after(aggregate, position, type_name):
    """What an event says about the aggregate's choice fields (an Order's status).

    The stream's first event creates the aggregate: its fields start at their defaults.
    A later event whose name ends in a choice's label or value (OrderShipped → SHIPPED)
    moves the field to that choice. Anything else leaves the field as it was.
    """
    short = short_type(type_name, whole=True)
    found = {}
    for model_field in aggregate._meta.concrete_fields:
        if not model_field.choices:
            continue
        if position == 0 and model_field.has_default():
            found[model_field.name] = model_field.get_default()
        for value, label in model_field.flatchoices:
            if any(
                short.lower().endswith(str(name).lower()) for name in (value, label) if name != ""
            ):
                found[model_field.name] = value
                break
    return found
