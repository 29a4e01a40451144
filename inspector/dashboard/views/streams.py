"""Streams: categories with counts, a category's streams, one stream and its aggregate's history."""

import json

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from inspector.dashboard import selectors
from inspector.dashboard.views.params import int_param
from inspector.runtime.store import category_of

PAYLOAD_CHARS = 400  # a longer payload is cut in the table; the message page has all of it


def compact_json(value, limit=PAYLOAD_CHARS):
    """One line of JSON for a table cell, cut at `limit` characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@staff_member_required
@require_GET
def stream_categories(request):
    """Every category in the store with its message count."""
    categories = selectors.category_list()
    for row in categories:
        aggregate = selectors.aggregate_for_category(row["category"])
        row["aggregate"] = aggregate.__name__ if aggregate else ""
    return render(request, "inspector/streams.html", {"categories": categories})


@staff_member_required
@require_GET
def category_detail(request, category):
    """The streams of one category, by name, fifty at a time."""
    after = request.GET.get("after", "")
    page = selectors.stream_list(category=category, after=after)
    if not page.items and not after:
        raise Http404("No messages in this category")
    context = {
        "category": category,
        "aggregate_name": _name(selectors.aggregate_for_category(category)),
        "page": page,
        "after": after,
    }
    return render(request, "inspector/category.html", context)


@staff_member_required
@require_GET
def stream_detail(request, stream):
    """One stream's messages by position; an aggregate's stream also shows its state history."""
    after = int_param(request, "after", -1)
    page = selectors.stream_message_list(stream=stream, after=after)
    category = category_of(stream)
    if not category or (not page.items and after < 0):  # "-x" has no category: no stream
        raise Http404("No messages in this stream")
    aggregate = selectors.aggregate_for_category(category)
    history, folded_from = None, 0
    can_view = request.user.has_perm("inspector.view_message")
    if can_view:
        for message in page.items:
            message.data_text = compact_json(message.data)
    if aggregate is not None and can_view:
        entries, folded_from = selectors.aggregate_history(
            aggregate=aggregate, stream=stream, messages=page.items
        )
        history = [
            {
                "message": entry.message,
                "changed": [(k, compact_json(v, 120)) for k, v in entry.changed.items()],
                "state": [
                    (k, compact_json(v, 120), k in entry.changed) for k, v in entry.state.items()
                ],
            }
            for entry in entries
        ]
    context = {
        "stream": stream,
        "category": category,
        "aggregate_name": _name(aggregate),
        "page": page,
        "after": after,
        "history": history,
        "folded_from": folded_from,
    }
    return render(request, "inspector/stream.html", context)


def _name(aggregate):
    return aggregate.__name__ if aggregate is not None else ""
