"""Handler health: counts, lag, speed, throughput and last error; pause and resume."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from inspector import services
from inspector.dashboard import selectors
from inspector.dashboard.drawing.sparkline import sparkline_svg
from inspector.dashboard.formatting import format_age
from inspector.runtime.domain import current_domain


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
        entry.lag_text = format_age(entry.lag_seconds) if entry.lag_seconds is not None else ""
        entry.spark_svg = sparkline_svg(entry.sparkline)
        entry.spark_total = sum(entry.sparkline)
        entry.show_error_message = can_view
        # Reversed here, once a row: the template's {% url %} tags (seven a row) were about a
        # tenth of the page's profiled time.
        switch = "inspector:handler-resume" if entry.paused else "inspector:handler-pause"
        entry.switch_url = reverse(switch, args=[entry.name])
    context = {
        "handlers": handlers,
        "notice": notice,
        "sync": current_domain.config.get("event_processing") == "sync",
        "search_url": reverse("inspector:search"),
        "failures_url": reverse("inspector:failures"),
    }
    template = "inspector/handlers-table.html" if request.htmx else "inspector/handlers.html"
    return render(request, template, context)
