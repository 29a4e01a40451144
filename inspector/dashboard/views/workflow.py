"""The workflow map: the registry drawn as SVG, with live counts on every handler."""

from urllib.parse import urlencode

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from inspector.dashboard import selectors
from inspector.dashboard.drawing.workflow_map import build_graph, render_map_svg
from inspector.runtime.domain import current_domain


def map_svg():
    """The map as an SVG string, from the registry, run counts and where handlers wrote."""
    domain = current_domain
    names = [spec.name for spec in domain.handlers()]
    handlers_url = reverse("inspector:handlers")
    search_url = reverse("inspector:search")

    def link(kind, value):
        if kind == "handler":
            return f"{handlers_url}#handler-{value}"
        if kind == "category":
            return reverse("inspector:category", args=[value])
        if kind == "type":
            return f"{search_url}?{urlencode({'type': value})}"
        return ""

    graph = build_graph(
        domain,
        counts=selectors.handler_run_counts(),
        written=selectors.handler_written_categories(names),
        paused=selectors.paused_handlers(),
        link=link,
    )
    return render_map_svg(graph, title=f"Workflow map of {domain.name}")


@staff_member_required
@require_GET
def workflow_map(request):
    """The map page; htmx polls just the SVG so the counts stay live."""
    svg = map_svg()
    if request.htmx:
        return HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")
    return render(request, "inspector/map.html", {"svg": svg})


@staff_member_required
@require_GET
def workflow_map_svg(request):
    """The map as a file to download."""
    response = HttpResponse(map_svg(), content_type="image/svg+xml; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="workflow-map.svg"'
    return response
