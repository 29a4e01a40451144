"""The live page: the latest messages, then the websocket feed keeps it current."""

from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from inspector.models import HandlerRun, Message, RunStatus
from inspector.runtime.domain import current_domain

INITIAL_ROWS = 50


def recent_messages(*, filters, limit=INITIAL_ROWS):
    """The newest messages matching the feed filters, each with its runs (two queries)."""
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


@staff_member_required
@require_GET
def feed_page(request):
    filters = {key: request.GET.get(key, "") for key in ("type", "category", "status")}
    domain = current_domain.get()
    return render(
        request,
        "inspector/live.html",
        {
            "recent": recent_messages(filters=filters),
            "filters": filters,
            "types": sorted(cls._type for cls in [*domain.commands, *domain.events]),
            "categories": sorted(
                {domain.stream_category(model) for model in domain.aggregates}
                | {f"{domain.stream_category(model)}:command" for model in domain.aggregates}
            ),
            "statuses": RunStatus.choices,
            "ws_path": reverse("feed", urlconf="inspector.routing"),
        },
    )
