"""The live page: the latest messages, then the websocket feed keeps it current."""

from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from inspector.dashboard import selectors
from inspector.models import RunStatus
from inspector.runtime.domain import current_domain


@staff_member_required
@require_GET
def feed_page(request):
    filters = {key: request.GET.get(key, "") for key in ("type", "category", "status")}
    choices = selectors.feed_choices(current_domain.get())
    return render(
        request,
        "inspector/live.html",
        {
            "recent": selectors.recent_messages(filters=filters),
            "filters": filters,
            "types": choices.types,
            "categories": choices.categories,
            "statuses": RunStatus.choices,
            "ws_path": reverse("feed", urlconf="inspector.routing"),
        },
    )
