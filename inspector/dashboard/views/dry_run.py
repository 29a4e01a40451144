"""Dry run of a failed or dead run, or of a failure group's oldest one: what a replay would do
now, shown and rolled back (inspector/runtime/dry_run.py).

GET shows what will be dry-run and a button; the dry run itself is a POST, with CSRF, because
it runs the handler's code (and holds its locks until it rolls back). The admin's run page
links to the GET page.
"""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_http_methods

from inspector.dashboard.selectors import failures as selectors
from inspector.dashboard.views.messages import PAYLOAD_PERMISSION, REPLAY_PERMISSION
from inspector.exceptions import DomainError, ValidationError
from inspector.models import HandlerRun
from inspector.runtime.dry_run import dry_run
from inspector.services import REPLAYABLE

FORBIDDEN = "You may not dry run handler runs."


def _page(request, run, *, group=None):
    """The confirmation on GET; on POST the dry run and what it found (409 or 400 if refused)."""
    if not request.user.has_perm(REPLAY_PERMISSION):
        return HttpResponse(FORBIDDEN, status=403)
    context = {
        "run": run,
        "group": group,
        "result": None,
        "problem": "",
        "can_view_payload": request.user.has_perm(PAYLOAD_PERMISSION),
    }
    status = 200
    if run.status not in REPLAYABLE:
        status = 409
        context["problem"] = (
            f"This run is {run.get_status_display().lower()}: only failed or dead runs can be "
            "dry run, as only they can be replayed."
        )
    elif request.method == "POST":
        try:
            context["result"] = dry_run(run)
        except ValidationError as exc:  # an edited payload the message class refuses now
            status = 400
            context["problem"] = "The payload this run would replay with is invalid: " + "; ".join(
                f"{field}: {' '.join(messages)}" for field, messages in exc.errors.items()
            )
        except DomainError as exc:
            status = 409
            context["problem"] = str(exc)
    return render(request, "inspector/dry-run.html", context, status=status)


@staff_member_required
@require_http_methods(["GET", "POST"])
def run_dry_run(request, run_id):
    run = get_object_or_404(HandlerRun.objects.select_related("message", "edit"), pk=run_id)
    return _page(request, run)


@staff_member_required
@require_http_methods(["GET", "POST"])
def group_dry_run(request, key):
    """The group's oldest failed or dead run (by global position), as its page lists them."""
    group = selectors.failure_group(key)
    if group is None:
        raise Http404("No failure group with this key")
    run = (
        selectors.group_runs(key)
        .select_related("message", "edit")
        .order_by("global_position", "handler")
        .first()
    )
    if run is None:
        raise Http404("No run of this group is failed or dead now")
    return _page(request, run, group=group)
