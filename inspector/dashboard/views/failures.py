"""Failure groups: the failures page, one group's page, and replay or resolve of a group.

New failures appear live over the websocket the message and flow pages use
(dashboard/live_pages.py): a group row is a count over many runs that any failure, retry,
replay or resolve changes, so the page's socket is sent the whole table again (`live_fragment`,
the template the page includes) after runs change, at most once a second and once for every
socket showing the same handler's groups. The read is O(groups)
(inspector/readmodel/failures.py), and a whole-table swap has no out-of-band target that might
be missing.
"""

from django import forms
from django.contrib import messages as notices
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from inspector import conf
from inspector.admin import OPERATIONS, counted
from inspector.dashboard.selectors import failures as selectors
from inspector.dashboard.selectors.runs import with_last_actions
from inspector.dashboard.views.messages import REPLAY_PERMISSION, live_path
from inspector.dashboard.views.params import int_param
from inspector.services import NothingToReplay, handler_runs_retry_now, replay_job_create


class GroupActionForm(forms.Form):
    """A replay or resolve of a whole group: the reason kept with each run's history, and
    whether the operator has seen how many runs it touches."""

    reason = forms.CharField(max_length=500, required=False, label="Reason")
    confirm = forms.ChoiceField(choices=[("", "no"), ("yes", "yes")], required=False)


@staff_member_required
@require_GET
def failure_list(request):
    """One row per failure group, kept current over the page's websocket (htmx asking for the
    table gets it alone)."""
    handler = request.GET.get("handler", "").strip() or None
    context = {**_failures_context(handler), "live_path": live_path(failures=handler or "")}
    if request.htmx:
        return render(request, "inspector/failures-table.html", context)
    return render(request, "inspector/failures.html", context)


def _failures_context(handler):
    return {"groups": selectors.failure_group_list(handler=handler), "handler": handler or ""}


def live_fragment(*, handler=None):
    """The failures table as the page includes it, for the page's websocket."""
    return render_to_string("inspector/failures-table.html", _failures_context(handler))


def _group_or_404(key):
    row = selectors.failure_group(key)
    if row is None:
        raise Http404("No failure group with this key")
    return row


def _group_context(request, row, *, form=None, operation=None):
    after = int_param(request, "after", -1)
    page = selectors.group_run_list(row.counts.key, after=after)
    with_last_actions(page.items)  # "Retried now by …" on a run that failed again
    return {
        "group": row,
        "page": page,
        "after": after,
        "sample": selectors.group_traceback(row.counts.key),
        "can_replay": request.user.has_perm(REPLAY_PERMISSION),
        "form": form or GroupActionForm(),
        "operations": OPERATIONS,
    }


@staff_member_required
@require_GET
def failure_group_detail(request, key):
    """A group: what it is, its runs (keyset-paged), one full traceback, its actions."""
    row = _group_or_404(key)
    return render(request, "inspector/failure-group.html", _group_context(request, row))


@staff_member_required
@require_POST
def failure_group_action(request, key, action):
    """Replay or resolve every failed and dead run of a group, as the admin's actions do:
    first a confirmation that says how many runs it will touch, then a replay job that does
    it in the background, whose page the operator is sent to."""
    operation = OPERATIONS.get(action)
    if operation is None:
        raise Http404("No such action")
    if not request.user.has_perm(REPLAY_PERMISSION):
        return HttpResponse("You may not replay or resolve handler runs.", status=403)
    row = _group_or_404(key)
    form = GroupActionForm(request.POST)
    if not form.is_valid():
        context = _group_context(request, row, form=form)
        return render(request, "inspector/failure-group.html", context, status=400)
    by_status = selectors.group_status_counts(key)
    count = sum(by_status.values())
    if form.cleaned_data["confirm"] != "yes":
        context = {
            **_group_context(request, row, form=form),
            "operation": operation,
            "action": action,
            "count": count,
            "by_status": sorted(by_status.items()),
            "button": operation.button.format(**counted(count)),
            "rate": conf.setting("replay_rate"),
        }
        return render(request, "inspector/failure-confirm.html", context)
    try:  # a replay job does it in the background; this request only freezes the runs
        job = replay_job_create(
            action=action,
            runs=selectors.group_runs(key),
            covers=f"failure group {key}: {row.counts.error_type} in {row.counts.handler}",
            user=request.user,
            reason=form.cleaned_data["reason"],
        )
    except NothingToReplay:
        notices.warning(request, f"No run of this group was failed or dead: none {operation.verb}.")
        return redirect("inspector:failure-group", key=key)
    notices.success(
        request,
        f"Made replay job {job.pk}: {counted(job.total)['handler_runs']} to be {operation.verb}, "
        f"{job.rate} a second.",
    )
    return redirect("inspector:replay-job", job_id=job.pk)


@staff_member_required
@require_POST
def failure_group_retry_now(request, key):
    """Make every failed run of a group due now (its dead runs have no attempt left to bring
    forward). No confirmation: it changes no run's outcome, only when its next attempt is."""
    if not request.user.has_perm(REPLAY_PERMISSION):
        return HttpResponse("You may not retry handler runs.", status=403)
    _group_or_404(key)
    done = handler_runs_retry_now(runs=selectors.group_runs(key), user=request.user)
    if done:
        notices.success(request, f"Made {counted(done)['handler_runs']} of this group due now.")
    else:
        notices.warning(request, "No run of this group is failed and waiting: none retried now.")
    return redirect("inspector:failure-group", key=key)
