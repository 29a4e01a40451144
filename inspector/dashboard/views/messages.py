"""One message and one business flow: data, handler runs, and their sequence diagram."""

from django import forms
from django.contrib import messages as notices
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_POST

from inspector.dashboard.drawing.mermaid import render_mermaid
from inspector.dashboard.drawing.sequence import render_svg
from inspector.dashboard.flows import build_flow
from inspector.dashboard.selectors.runs import with_last_actions
from inspector.exceptions import DomainError
from inspector.models import HandlerAttempt, HandlerRun, HandlerRunReplay, Message
from inspector.services import handler_run_replay, handler_run_retry_now

REPLAY_PERMISSION = "inspector.replay_handlerrun"
EDIT_PERMISSION = "inspector.edit_handlerrun"  # edit a run's payload and replay it with that
PAYLOAD_PERMISSION = "inspector.view_message"


class ReplayForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False, label="Why replay?")


class RetryForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False, label="Why retry now?")


def _runs_of(message):
    runs = list(
        HandlerRun.objects.filter(message=message)
        .order_by("created_at", "handler")
        .prefetch_related(
            Prefetch("failed_attempts", queryset=HandlerAttempt.objects.order_by("number")),
            Prefetch(
                "replays", queryset=HandlerRunReplay.objects.select_related("user").order_by("at")
            ),
        )
    )
    for run in runs:  # the badge says what an operator last did (selectors.runs' attribute)
        replays = run.replays.all()
        run.last_action = replays[len(replays) - 1] if replays else None
    return runs


DEPTHS = (0, 1, 2)


def _depth(request):
    """Levels of follow-on events to draw: ?depth=N, or every level."""
    try:
        depth = int(request.GET.get("depth", ""))
    except ValueError:
        return None
    return depth if depth >= 0 else None


def _flow(request, source):
    """The flow to draw for this user: their depth, and message data only if permitted."""
    return build_flow(
        source, depth=_depth(request), payloads=request.user.has_perm(PAYLOAD_PERMISSION)
    )


def _message_context(request, message):
    related = list(
        Message.objects.filter(correlation_id=message.correlation_id)
        .order_by("global_position")
        .only("id", "type", "stream", "position", "global_position", "causation_id", "kind")
    )
    flow = _flow(request, message)
    return {
        "depth": flow.depth,
        "depths": DEPTHS,
        "message": message,
        "runs": _runs_of(message),
        "cause": next((m for m in related if m.id == message.causation_id), None),
        "effects": [m for m in related if m.causation_id == message.id],
        "flow_size": len(related),
        "flow": flow,
        "svg": render_svg(flow),
        "can_view_payload": request.user.has_perm(PAYLOAD_PERMISSION),
        "can_replay": request.user.has_perm(REPLAY_PERMISSION),
        "can_edit": request.user.has_perm(EDIT_PERMISSION),
        "replay_form": ReplayForm(),
        "live_path": live_path(message=message.id, depth=flow.depth),
    }


@staff_member_required
@require_GET
def message_detail(request, message_id):
    message = get_object_or_404(Message, pk=message_id)
    return render(request, "inspector/message-detail.html", _message_context(request, message))


@staff_member_required
@require_GET
def message_diagram(request, message_id):
    """The diagram alone, as the page draws it (the page itself follows its runs over the
    websocket: `live_fragments`)."""
    message = get_object_or_404(Message, pk=message_id)
    flow = _flow(request, message)
    return render(request, "inspector/diagram.html", {"flow": flow, "svg": render_svg(flow)})


def _svg_response(flow, filename):
    response = HttpResponse(render_svg(flow), content_type="image/svg+xml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _mermaid_response(flow):
    return HttpResponse(render_mermaid(flow), content_type="text/plain; charset=utf-8")


@staff_member_required
@require_GET
def message_svg(request, message_id):
    message = get_object_or_404(Message, pk=message_id)
    return _svg_response(_flow(request, message), f"message-{message.global_position}.svg")


@staff_member_required
@require_GET
def message_mermaid(request, message_id):
    message = get_object_or_404(Message, pk=message_id)
    return _mermaid_response(_flow(request, message))


@staff_member_required
@require_POST
def run_replay(request, run_id):
    return _run_operation(
        request, run_id, ReplayForm, handler_run_replay, "Replay of {handler} queued."
    )


@staff_member_required
@require_POST
def run_retry_now(request, run_id):
    """Make a failed run's next attempt due now; back to the page it was asked from (`next`:
    the admin's change page) or the message page."""
    return _run_operation(
        request, run_id, RetryForm, handler_run_retry_now, "Retry of {handler} is due now."
    )


def _run_operation(request, run_id, form_class, service, done):
    """One operator write on one run from the message page: the run list again over htmx, the
    page (or `next`) otherwise; 403 without the permission, 400 for a bad form, 409 when the
    run's status does not allow it."""
    run = get_object_or_404(HandlerRun, pk=run_id)
    if not request.user.has_perm(REPLAY_PERMISSION):
        return HttpResponse("You may not replay or retry handler runs.", status=403)
    form = form_class(request.POST)
    status = 200
    if not form.is_valid():
        status = 400
        notices.error(
            request,
            "; ".join(
                f"{form[name].label} {e}" for name, errors in form.errors.items() for e in errors
            ),
        )
    else:
        try:
            service(run=run, user=request.user, reason=form.cleaned_data["reason"])
            notices.success(request, done.format(handler=run.handler))
        except DomainError as exc:
            status = 409
            notices.error(request, str(exc))
    if request.htmx:
        message = run.message
        context = _message_context(request, message)
        return render(request, "inspector/message-runs.html", context, status=status)
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(back)
    if status != 200:  # the page again, saying why not, with the refusal's status
        context = _message_context(request, run.message)
        return render(request, "inspector/message-detail.html", context, status=status)
    return redirect("inspector:message", message_id=run.message_id)


def _flow_or_404(request, correlation_id):
    if not Message.objects.filter(correlation_id=correlation_id).exists():
        raise Http404("No messages with this correlation id")
    return _flow(request, correlation_id)


def causation_tree(correlation_id):
    """The correlation's messages as (depth, message) in causation order, roots first; each
    run with what an operator last did to it (`last_action`)."""
    rows = list(
        Message.objects.filter(correlation_id=correlation_id)
        .order_by("global_position")
        .prefetch_related(Prefetch("runs", queryset=HandlerRun.objects.order_by("handler")))
    )
    with_last_actions(run for message in rows for run in message.runs.all())
    known = {m.id for m in rows}
    children = {}
    for message in rows:
        parent = message.causation_id if message.causation_id in known else None
        children.setdefault(parent, []).append(message)
    tree, stack = [], [(0, m) for m in reversed(children.get(None, []))]
    while stack:
        depth, message = stack.pop()
        tree.append((depth, message))
        stack.extend((depth + 1, child) for child in reversed(children.get(message.id, [])))
    return tree


@staff_member_required
@require_GET
def flow_detail(request, correlation_id):
    flow = _flow_or_404(request, correlation_id)
    return render(request, "inspector/flow-detail.html", _flow_context(request, flow))


def _flow_context(request, flow):
    return {
        "correlation_id": flow.correlation_id,
        "flow": flow,
        "svg": render_svg(flow),
        "tree": causation_tree(flow.correlation_id),
        "live_path": live_path(correlation=flow.correlation_id),
    }


@staff_member_required
@require_GET
def flow_svg(request, correlation_id):
    return _svg_response(_flow_or_404(request, correlation_id), f"flow-{correlation_id}.svg")


@staff_member_required
@require_GET
def flow_mermaid(request, correlation_id):
    return _mermaid_response(_flow_or_404(request, correlation_id))


# Live pages: the fragments the message and flow pages swap in over the websocket -----------

# What a user may see or do changes the fragments: sockets whose users share these share one
# render (dashboard/live_pages.py).
LIVE_PERMISSIONS = (
    PAYLOAD_PERMISSION,
    REPLAY_PERMISSION,
    "inspector.edit_handlerrun",
    "inspector.view_handlerrun",
)
MESSAGE_FRAGMENTS = (
    "inspector/diagram.html",
    "inspector/message-runs.html",
    "inspector/message-effects.html",
)
FLOW_FRAGMENTS = ("inspector/diagram.html", "inspector/flow-tree.html")
# What a shared render's forms carry instead of a CSRF token: each socket puts its own user's
# token in (dashboard/live_pages.py, `csrf_token_for`), so no user's token reaches another.
LIVE_CSRF_TOKEN = "inspectorlivepagecsrftoken"


def live_path(*, message=None, depth=None, correlation=None, failures=None):
    """The websocket a message page (its message, at its depth), a flow page (its
    correlation) or the failures page (`failures`: its handler, or "") follows runs with."""
    path = reverse("page-feed", urlconf="inspector.routing")
    if failures is not None:
        return f"{path}?{urlencode({'failures': failures})}"
    if correlation is not None:
        return f"{path}?{urlencode({'correlation': correlation})}"
    query = {"message": message} if depth is None else {"message": message, "depth": depth}
    return f"{path}?{urlencode(query)}"


def live_fragments(*, user, message=None, depth=None, correlation=None):
    """The page's parts that follow its runs, rendered by the templates the page includes, for
    `user`: the diagram, the run list and what the message caused (a message page), or the
    diagram and the causation tree (a flow page). Returns (html, the correlation's message ids);
    ("", ...) when the message is gone."""
    query = QueryDict(mutable=True)
    if depth is not None:
        query["depth"] = str(depth)
    request = HttpRequest()
    request.method = "GET"
    request.user = user
    request.GET = query
    if correlation is None:
        source = Message.objects.filter(pk=message).first()
        if source is None:
            return "", set()
        correlation = source.correlation_id
        context, templates = _message_context(request, source), MESSAGE_FRAGMENTS
    else:
        context, templates = _flow_context(request, _flow(request, correlation)), FLOW_FRAGMENTS
    context.update(csrf_token=LIVE_CSRF_TOKEN, live=True)
    html = "".join(render_to_string(name, context, request=request) for name in templates)
    ids = set(Message.objects.filter(correlation_id=correlation).values_list("id", flat=True))
    return html, ids
