"""One page of a list: its size, the page and the key of the next, the runs each row shows.

Every list is keyset-paginated (by stream name, position or global position), never by
OFFSET, so a page costs the same however deep into the history it is.
"""

from dataclasses import dataclass

from inspector.models import HandlerRun


def page_limit(limit):
    """`limit`, or the page size: `inspector.dashboard.selectors.PAGE_SIZE`, read on every call
    so that setting it on the package (as the tests do) changes every list."""
    if limit:
        return limit
    from inspector.dashboard import selectors  # the package, long imported by now

    return selectors.PAGE_SIZE


@dataclass
class KeysetPage:
    """One page of a list and the key to ask for the next one (None on the last page)."""

    items: list
    next_after: object = None

    @property
    def has_next(self):
        return self.next_after is not None


def keyset_page(rows, limit, key):
    """The first `limit` of `rows` (read one past the page) as a KeysetPage; `key(row)` is the
    key a next page starts after."""
    if len(rows) > limit:
        return KeysetPage(items=rows[:limit], next_after=key(rows[limit - 1]))
    return KeysetPage(items=rows)


def with_listed_runs(messages):
    """Each message with its runs as `listed_runs`, in one query and only what a run badge
    shows: a prefetch would clone a queryset per message and load every traceback."""
    messages = list(messages)
    fields = ("id", "message", "handler", "status", "attempts", "duration_us", "error_type")
    runs = {}
    for run in (
        HandlerRun.objects.filter(message__in=[m.pk for m in messages])
        .only(*fields)
        .order_by("handler")
    ):
        runs.setdefault(run.message_id, []).append(run)
    for message in messages:
        message.listed_runs = runs.get(message.pk, [])
    return messages
