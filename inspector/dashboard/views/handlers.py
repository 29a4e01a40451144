"""Handler health: counts, lag, speed, throughput and last error; pause and resume."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from inspector import services
from inspector.dashboard import selectors
from inspector.dashboard.drawing.sequence import _num
from inspector.runtime.domain import current_domain

SPARK_WIDTH = 120
SPARK_HEIGHT = 28


@staff_member_required
@require_GET
def handler_list(request):
    """Every handler's health; htmx polls just the table."""
    return _render(request)


@staff_member_required
@require_POST
def handler_pause(request, name):
    """Hold back a handler's runs: workers skip it until it is resumed."""
    return _switch(request, name, services.handler_pause, "paused")


@staff_member_required
@require_POST
def handler_resume(request, name):
    """Let workers run a paused handler's waiting runs again, in order."""
    return _switch(request, name, services.handler_resume, "resumed")


def _switch(request, name, service, verb):
    if not request.user.has_perm("inspector.replay_handlerrun"):
        raise PermissionDenied("You may not pause or resume handlers.")
    if not selectors.handler_known(name):
        raise Http404("No such handler")
    service(name=name, user=request.user)
    text = f"{name} {verb}."
    if request.htmx:
        return _render(request, notice=text)
    messages.success(request, text)
    return redirect("inspector:handlers")


def _render(request, notice=""):
    handlers = selectors.handler_stats_list()
    can_view = request.user.has_perm("inspector.view_message")
    for entry in handlers:
        entry.lag_text = age(entry.lag_seconds) if entry.lag_seconds is not None else ""
        entry.spark_svg = sparkline_svg(entry.sparkline)
        entry.spark_total = sum(entry.sparkline)
        entry.show_error_message = can_view
    context = {
        "handlers": handlers,
        "notice": notice,
        "sync": current_domain.config.get("event_processing") == "sync",
    }
    template = "inspector/handlers-table.html" if request.htmx else "inspector/handlers.html"
    return render(request, template, context)


def age(seconds):
    """12 s, 4 min, 3 h, 2 d: how long the oldest unfinished run has waited."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def sparkline_svg(series, *, width=SPARK_WIDTH, height=SPARK_HEIGHT):
    """Succeeded runs per minute as a small inline SVG line; only numbers go into it."""
    peak = max(series, default=0)
    total = sum(series)
    step = width / max(len(series) - 1, 1)
    scale = (height - 4) / peak if peak else 0

    def point(i, value):
        return f"{_num(i * step)},{_num(height - 2 - value * scale)}"

    line = " ".join(point(i, v) for i, v in enumerate(series))
    area = f"0,{height} {line} {_num(width)},{height}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sparkline" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">'
        f"<title>{total} runs succeeded in the last hour; peak {peak} a minute</title>"
        f'<polygon points="{area}" fill="#dcfce7"/>'
        f'<polyline points="{line}" fill="none" stroke="#15803d" stroke-width="1.5"/></svg>'
    )
