"""Edit and replay: a form built from the message class's fields, the diff against the
stored payload, a dry run of the edit, then the replay with it (inspector/services/edits.py).

Scalar fields are edited with the form field their domain field validates with; nested
values (value objects, lists, mappings) as JSON text. The message class validates the whole
payload again before anything is shown as valid or written, so the form never accepts what
the domain would refuse."""

import datetime
import json

from django import forms
from django.contrib import messages as notices
from django.contrib.admin.views.decorators import staff_member_required
from django.forms.fields import JSONString
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from inspector.dashboard.views.messages import EDIT_PERMISSION, PAYLOAD_PERMISSION
from inspector.domain import fields as domain_fields
from inspector.exceptions import DomainError, ValidationError
from inspector.models import HandlerRun
from inspector.runtime.domain import current_domain
from inspector.runtime.dry_run import dry_run
from inspector.services import (
    REPLAYABLE,
    UNCHANGED,
    edited_payload,
    handler_run_edit_replay,
    payload_diff,
    run_payload,
)

PREFIX = "data"  # the payload's inputs are named data-<field>: a field may be called "reason"
# Fields edited as JSON text: their values nest.
NESTED = (domain_fields.Dict, domain_fields.List, domain_fields.ValueObject)


class JSONText(forms.JSONField):
    """JSON text for a nested value, shown indented."""

    def prepare_value(self, value):
        if isinstance(value, str):  # what the operator typed, even when it is not JSON
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


class ReplayForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False, label="Why this edit?")


def _form_field(field):
    """The form field that edits one domain field."""
    label = field.name.replace("_", " ")
    if isinstance(field, NESTED) or not field.python_types:
        return JSONText(
            required=False,
            label=label,
            help_text=f"{field.type_label.capitalize()}, as JSON.",
            widget=forms.Textarea(attrs={"rows": 4}),
        )
    if isinstance(field, domain_fields.Boolean):
        return forms.NullBooleanField(required=False, label=label)
    if field.choices is not None:
        values = {str(member.value): member.value for member in field.choices}
        return forms.TypedChoiceField(
            required=field.required,
            label=label,
            choices=[("", "—"), *((key, key) for key in values)],
            coerce=values.get,
            empty_value=None,
        )
    form_field = field.form_field()
    form_field.label = label
    form_field.required = field.required
    form_field.help_text = field.type_label.capitalize() + "."
    if isinstance(field, domain_fields.String) and field.max_length is None:
        form_field.widget = forms.Textarea(attrs={"rows": 3})
    return form_field


def payload_form(message_cls, original, *, data=None, initial=None):
    """A form with one input per field of `message_cls`, prefilled from `initial`."""
    form_fields = {name: _form_field(field) for name, field in message_cls._fields.items()}
    form = type("PayloadForm", (forms.Form,), form_fields)(
        data=data, initial=initial, prefix=PREFIX
    )
    form.message_cls, form.original = message_cls, original
    return form


def payload_of(form):
    """The edited payload of a bound, valid form, validated by the message class; on a
    domain error the form gets the errors (under the field they name) and None is returned."""
    data = {}
    for name, value in form.cleaned_data.items():
        if value == "" and form.original.get(name) is None:
            value = None  # an empty input leaves an absent value absent
        if isinstance(value, JSONString):  # a JSON text that held a string: a plain str
            value = str(value)
        if isinstance(value, datetime.datetime):
            value = value.astimezone(datetime.UTC)
        data[name] = value
    try:
        return edited_payload(form.message_cls, data)
    except ValidationError as exc:
        _add_errors(form, exc)
        return None


def _add_errors(form, exc):
    """The message class's errors on the inputs they name (`items[0].book_id` → items)."""
    for key, messages in exc.errors.items():
        name = key.split(".", 1)[0].split("[", 1)[0]
        where = key[len(name) :].lstrip(".")
        for message in messages:
            if name in form.fields:
                form.add_error(name, f"{where}: {message}" if where else message)
            else:
                form.add_error(None, message if key == "__all__" else f"{key}: {message}")


def _context(request, run, form, **extra):
    return {
        "run": run,
        "message": run.message,
        "form": form,
        "replay_form": extra.pop("replay_form", None) or ReplayForm(),
        "replayable": run.status in REPLAYABLE,
        "message_url": reverse("inspector:message", args=[run.message_id]),
        "can_view_payload": request.user.has_perm(PAYLOAD_PERMISSION),  # a dry run's events
        **extra,
    }


@staff_member_required
@require_http_methods(["GET", "POST"])
def run_edit_replay(request, run_id):
    """GET: the form, prefilled with what the run runs with. POST `action`: `diff` (the
    validated edit and its diff), `dry_run` (what the edit would do, nothing kept) or
    `replay` (with the reason). Invalid input: the form's errors, status 400."""
    run = get_object_or_404(HandlerRun.objects.select_related("message", "edit"), pk=run_id)
    if not request.user.has_perm(EDIT_PERMISSION):
        return HttpResponse("You may not edit and replay handler runs.", status=403)
    message_cls = current_domain.get().message_class(run.message.type)
    original = run.message.data
    if request.method == "GET" or run.status not in REPLAYABLE:
        form = payload_form(message_cls, original, initial=run_payload(run))
        status = 200 if run.status in REPLAYABLE else 409  # the page says why not
        context = _context(request, run, form)
        return render(request, "inspector/edit-replay.html", context, status=status)

    action = request.POST.get("action", "diff")
    form = payload_form(message_cls, original, data=request.POST)
    replay_form = ReplayForm(request.POST)

    def page(status=200, **extra):
        context = _context(request, run, form, replay_form=replay_form, **extra)
        return render(request, "inspector/edit-replay.html", context, status=status)

    edited = payload_of(form) if form.is_valid() else None
    if edited is not None and not payload_diff(run_payload(run), edited):
        form.add_error(None, UNCHANGED)
        edited = None
    if edited is None:
        return page(400)
    diff = payload_diff(original, edited)
    if action == "dry_run":
        try:
            return page(diff=diff, dry_run=dry_run(run, data=edited))
        except DomainError as exc:  # the handler or the message type left the domain
            notices.error(request, str(exc))
            return page(409, diff=diff)
    if action != "replay":
        return page(diff=diff)
    if not replay_form.is_valid():
        return page(400, diff=diff)
    try:
        handler_run_edit_replay(
            run=run, data=edited, user=request.user, reason=replay_form.cleaned_data["reason"]
        )
    except ValidationError as exc:
        _add_errors(form, exc)
        return page(400, diff=diff)
    except DomainError as exc:  # no longer failed or dead: someone replayed it meanwhile
        notices.error(request, str(exc))
        return page(409, diff=diff)
    notices.success(request, f"Replay of {run.handler} with the edited payload queued.")
    return redirect(f"{reverse('inspector:message', args=[run.message_id])}#run-{run.pk}-anchor")
