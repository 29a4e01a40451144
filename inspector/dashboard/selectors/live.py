"""The live page's first rows and its filters' choices; the websocket feed keeps it current."""

from dataclasses import dataclass

from inspector.dashboard.selectors.lookups import storable
from inspector.models import HandlerRun, Message

INITIAL_ROWS = 50


def recent_messages(*, filters, limit=INITIAL_ROWS):
    """The newest messages matching the feed filters, each with its runs (two queries)."""
    if not all(storable(value) for value in filters.values()):
        return []
    messages = Message.objects.order_by("-global_position").defer("data")
    if filters.get("type"):
        messages = messages.filter(type=filters["type"])
    if filters.get("category"):
        messages = messages.filter(category=filters["category"])
    if filters.get("status"):
        messages = messages.filter(runs__status=filters["status"]).distinct()
    messages = list(messages[:limit])
    runs = {}
    for run in HandlerRun.objects.filter(message__in=messages).order_by("handler"):
        runs.setdefault(run.message_id, []).append(run)
    for message in messages:
        message.feed_runs = runs.get(message.id, [])
    return messages


@dataclass(frozen=True)
class FeedChoices:
    types: list
    categories: list


def feed_choices(domain):
    """What the live page's filters offer: the domain's message types and stream categories
    (each aggregate's, and its commands')."""
    aggregates = [domain.stream_category(model) for model in domain.aggregates]
    return FeedChoices(
        types=sorted(cls._type for cls in [*domain.commands, *domain.events]),
        categories=sorted({*aggregates, *(f"{category}:command" for category in aggregates)}),
    )
