"""Search the store by type, category, stream, correlation, time, run status and a payload field."""

import functools
import json
import math
import re

from django import forms
from django.contrib.admin.views.decorators import staff_member_required
from django.http import QueryDict
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from inspector.dashboard import selectors
from inspector.dashboard.views.streams import compact_json
from inspector.models import RunStatus

FIELD_EXPRESSION = re.compile(
    r"^\s*(?P<path>[A-Za-z_]\w*(?:(?:\.|__)\w+)*)\s*=\s*(?P<value>.*?)\s*$", re.DOTALL
)
FIELD_HELP = (
    "One payload field as name=value, e.g. customer_name=Alice or total_items=3; "
    'numbers match numbers, quote a value to match it as text ("3"); '
    "reach into nested data with dots (items.0.quantity=2)."
)


def parse_field_value(text):
    """The JSON value a typed value stands for: numbers as numbers, quoted text as text."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text in ("true", "false", "null"):
        return json.loads(text)
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def format_value(self, value):
        if hasattr(value, "strftime"):
            return value.strftime("%Y-%m-%dT%H:%M")
        return value


class MessageSearchForm(forms.Form):
    """The search filters; every one is optional and they combine with AND."""

    type = forms.CharField(
        required=False,
        max_length=255,
        label="Type",
        widget=forms.TextInput(attrs={"list": "message-types", "placeholder": "OrderPlaced"}),
    )
    category = forms.CharField(required=False, max_length=255, label="Category")
    stream = forms.CharField(required=False, max_length=255, label="Stream")
    correlation_id = forms.UUIDField(
        required=False,
        label="Correlation id",
        error_messages={"invalid": "Enter a correlation id as a UUID."},
    )
    since = forms.DateTimeField(
        required=False,
        label="From",
        widget=DateTimeInput(),
        error_messages={"invalid": "Enter a date and time such as 2025-01-31 14:05."},
    )
    until = forms.DateTimeField(
        required=False,
        label="Until",
        widget=DateTimeInput(),
        error_messages={"invalid": "Enter a date and time such as 2025-01-31 14:05."},
    )
    run_status = forms.ChoiceField(
        required=False, label="Run status", choices=[("", "any"), *RunStatus.choices]
    )
    handler = forms.CharField(required=False, max_length=255, label="Handler")
    field = forms.CharField(
        required=False, max_length=500, label="Payload field", help_text=FIELD_HELP
    )
    # A global position: a 64-bit column.
    after = forms.IntegerField(
        required=False, min_value=0, max_value=2**63 - 1, widget=forms.HiddenInput
    )

    def __init__(self, *args, can_view_payloads=True, **kwargs):
        super().__init__(*args, **kwargs)
        if not can_view_payloads:  # a payload filter would reveal payloads one guess at a time
            del self.fields["field"]

    def clean_field(self):
        text = self.cleaned_data["field"]
        if not text.strip():
            return None
        match = FIELD_EXPRESSION.match(text)
        if not match:
            raise forms.ValidationError(
                "Write the payload field as name=value, for example customer_name=Alice."
            )
        path = re.split(r"\.|__", match["path"])
        return path, parse_field_value(match["value"])

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "Until must not be before From.")
        return cleaned

    def filters(self):
        data = self.cleaned_data
        path, value = data.get("field") or ([], None)
        return selectors.MessageFilters(
            types=selectors.types_named(data["type"].strip()) if data["type"].strip() else [],
            category=data["category"].strip(),
            stream=data["stream"].strip(),
            correlation_id=data["correlation_id"],
            since=data["since"],
            until=data["until"],
            run_status=data["run_status"],
            handler=data["handler"].strip(),
            payload_path=path,
            payload_value=value,
        )


def search_form_html(form, types):
    """The form's HTML. A valid form's depends only on the query and on whether the user may
    filter by payload, so it is drawn once per query (ten widgets drawn by Django's templates
    were a tenth of the page's time)."""
    if form.is_bound and form.is_valid():
        query = form.data.copy()
        query.pop("after", None)
        return _valid_form_html(query.urlencode(), "field" in form.fields, tuple(types))
    return render_to_string("inspector/search-form.html", {"form": form, "types": types})


@functools.lru_cache(maxsize=256)
def _valid_form_html(query, can_view_payloads, types):
    form = MessageSearchForm(QueryDict(query), can_view_payloads=can_view_payloads)
    form.is_valid()
    return render_to_string("inspector/search-form.html", {"form": form, "types": types})


@staff_member_required
@require_GET
def message_search(request):
    """The search page; an htmx request gets the form and results only (400 on bad input)."""
    can_view = request.user.has_perm("inspector.view_message")
    form = MessageSearchForm(request.GET, can_view_payloads=can_view)
    page, status = None, 200
    if not form.is_valid():
        status = 400
    else:
        page = selectors.message_search(
            filters=form.filters(), after=form.cleaned_data.get("after")
        )
        if can_view:
            for message in page.items:
                message.data_text = compact_json(message.data)
    next_query = ""
    if page is not None and page.has_next:
        query = request.GET.copy()
        query["after"] = page.next_after
        next_query = query.urlencode()
    first_query = ""
    if request.GET.get("after"):
        query = request.GET.copy()
        query.pop("after")
        first_query = query.urlencode()
    context = {
        "form": form,
        "form_html": search_form_html(form, selectors.message_types()),
        "page": page,
        "next_query": next_query,
        "first_query": first_query,
        "paged": bool(request.GET.get("after")),
    }
    template = "inspector/search-results.html" if request.htmx else "inspector/search.html"
    return render(request, template, context, status=status)
