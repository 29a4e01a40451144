"""The HTML of what long lists repeat: run badges and message rows.

A page lists fifty messages and a hundred runs, and the live feed sends every row again as
a fragment. Drawn by Django templates, a row costs about half a millisecond (two dozen
variable lookups, filters, escaping), which made the rows most of a page's time on a
million-message store; built here with `format_html`, which escapes every value, a row
costs a tenth of that. The inspector's templates call these through `inspector_tags`.
"""

import functools
import uuid
from html import escape
from urllib.parse import quote

from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from inspector.dashboard.formatting import ROWS, format_ms
from inspector.runtime.names import short_handler, short_id, short_stream, short_type

NO_RUNS = mark_safe('<span class="muted">—</span>')


def format_html(template, *args):
    """`django.utils.html.format_html` for the rows: every argument escaped unless it is
    already safe HTML, with the same entities as Django's `escape` (the standard library's
    `html.escape`), minus the lazy-string wrappers that were a third of a row's cost."""
    return SafeString(
        template.format(
            *(
                arg.__html__() if hasattr(arg, "__html__") else escape(str(arg), quote=True)
                for arg in args
            )
        )
    )


@functools.lru_cache(maxsize=128)
def _route(name, script_prefix):
    marker = "00000000-0000-4000-8000-000000000000"
    head, _, tail = reverse(name, args=[marker]).partition(marker)
    return head, tail


def route_url(name, value):
    """`reverse(name, args=[value])` for a route with one `uuid` or `path` argument, reversed
    once per route: the value is quoted as reverse() quotes it."""
    head, tail = _route(name, get_script_prefix())
    if isinstance(value, uuid.UUID):  # hex digits and dashes: nothing to quote
        return f"{head}{value}{tail}"
    return f"{head}{quote(str(value), safe=RFC3986_SUBDELIMS + '/~:@')}{tail}"


def time_element(value, pattern="%Y-%m-%d %H:%M:%S", *, digits=None):
    """A `<time>` in the current time zone; `digits` cuts the shown text (milliseconds)."""
    if value is None:
        return mark_safe('<time datetime=""></time>')
    local = timezone.template_localtime(value)
    shown = local.strftime(pattern)
    return format_html('<time datetime="{}">{}</time>', local.isoformat(), shown[:digits])


def operator_note(replay):
    """What an operator last did to a run, as lists show it: "Resolved by alice at
    2026-05-01 10:00:00: fixed by hand" (a replay, resolve or retry now; its reason if any)."""
    local = timezone.template_localtime(replay.at)
    who = replay.user.get_username() if replay.user_id else "a script"
    action = replay.get_action_display()
    if replay.edited_data is not None:
        action = "Replayed with an edited payload"
    text = f"{action} by {who} at {local:%Y-%m-%d %H:%M:%S}"
    return f"{text}: {replay.reason}" if replay.reason else text


def run_badge(run, *, oob=False, url=None):
    """One run as a coloured badge linking to its message; `oob` swaps it in place (htmx).
    A run read with its operator's last action (`last_action`, selectors.runs) says it too."""
    title = f"{run.handler}: {run.status}"
    if run.attempts:
        title += f", attempt {run.attempts}"
    if run.duration_us is not None:
        title += f", {format_ms(us=run.duration_us, rounding=ROWS)}"
    if run.error_type:
        title += f" — {short_handler(run.error_type)}"
    last_action = getattr(run, "last_action", None)
    if last_action is not None:
        title += f" — {operator_note(last_action)}"
    return format_html(
        '<a id="run-{}"{} class="run-badge status-{}" href="{}#run-{}" title="{}" '
        'data-status="{}">{} <span class="run-status">{}</span></a>',
        run.id,
        mark_safe(' hx-swap-oob="outerHTML"') if oob else "",
        run.status,
        url or route_url("inspector:message", run.message_id),
        run.id,
        title,
        run.status,
        short_handler(run.handler),
        run.status,
    )


def run_badges(runs, *, empty=NO_RUNS):
    """The badges of one message's runs, or `empty` when it has none."""
    if not runs:
        return empty
    url = route_url("inspector:message", runs[0].message_id)
    return mark_safe("\n".join(run_badge(run, url=url) for run in runs))  # each is escaped


def group_run_row(run):
    """One run of a failure group's page: where it is, its badge, its last failure and what
    an operator last did to it."""
    last_action = getattr(run, "last_action", None)
    return format_html(
        '<tr id="group-run-{}">\n    <td class="number">{}</td>\n'
        '    <td><a href="{}#run-{}-anchor">{}</a></td>\n'
        '    <td><a href="{}"><code>{}</code></a></td>\n'
        "    <td>{}</td>\n"
        '    <td class="number">{}</td>\n'
        "    <td>{}</td>\n"
        '    <td class="error-text">{}{}</td>\n  </tr>',
        run.id,
        run.global_position,
        route_url("inspector:message", run.message_id),
        run.id,
        short_type(run.message_type),
        route_url("inspector:stream", run.stream),
        run.stream,
        run_badge(run),
        run.attempts,
        time_element(run.finished_at) if run.finished_at else "",
        Truncator(run.error_message).chars(200),
        format_html('<p class="lineage">{}</p>', operator_note(last_action)) if last_action else "",
    )


def feed_row(message, runs, *, oob=False):
    """A live feed row; `oob` prepends it to the open page's rows (htmx out of band)."""
    row = format_html(
        '<div class="feed-row kind-{}" id="msg-{}" data-position="{}" role="row">\n'
        '  <span role="cell" class="col-pos">{}</span>\n'
        '  <span role="cell" class="col-type"><span class="kind-tag">{}</span> '
        '<a href="{}">{}</a></span>\n'
        '  <span role="cell" class="col-stream" title="{}">{} '
        '<span class="position">#{}</span></span>\n'
        '  <span role="cell" class="col-time">{}</span>\n'
        '  <span role="cell" class="col-runs">{}</span>\n'
        "</div>",
        message.kind,
        message.id,
        message.global_position,
        message.global_position,
        message.kind,
        route_url("inspector:message", message.id),
        short_type(message.type),
        message.stream,
        short_stream(message.stream),
        message.position,
        time_element(message.time, "%H:%M:%S.%f", digits=12),
        run_badges(runs, empty=mark_safe('<span class="muted">no handlers</span>')),
    )
    if oob:
        return format_html('<div hx-swap-oob="afterbegin:#feed-rows">{}</div>', row)
    return row


def search_row(message, *, show_data):
    """A search result: time, message, stream and position, correlation, runs, data."""
    data = ""
    if show_data:
        data = format_html('<td><code class="payload-line">{}</code></td>', message.data_text)
    return format_html(
        '<tr data-global-position="{}">\n'
        '  <td class="number">{}</td>\n'
        "  <td>{}</td>\n"
        '  <td><span class="kind-tag">{}</span> <a href="{}">{}</a></td>\n'
        '  <td><a href="{}#position-{}"><code>{}</code></a> <span class="muted">@{}</span></td>\n'
        '  <td><a href="{}"><code>{}</code></a></td>\n'
        "  <td>{}</td>\n"
        "  {}\n"
        "</tr>",
        message.global_position,
        message.global_position,
        time_element(message.time),
        message.kind,
        route_url("inspector:message", message.id),
        short_type(message.type),
        route_url("inspector:stream", message.stream),
        message.position,
        message.stream,
        message.position,
        route_url("inspector:flow", message.correlation_id),
        short_id(message.correlation_id),
        run_badges(message.listed_runs),
        data,
    )


def stream_cells(message, runs):
    """The cells a stream's message starts its row with: position, message, time, runs."""
    return format_html(
        '<td class="number">{}</td>\n'
        '  <td><a href="{}">{}</a><br><span class="muted small">#{}</span></td>\n'
        "  <td>{}</td>\n"
        "  <td>{}</td>",
        message.position,
        route_url("inspector:message", message.id),
        short_type(message.type),
        message.global_position,
        time_element(message.time, "%Y-%m-%d %H:%M:%S.%f"),
        run_badges(runs),
    )


def history_cells(changed, state):
    """An aggregate's history row after its message: the fields it changed, then the state,
    changed fields marked (`changed`: (field, shown value); `state`: (field, value, changed))."""
    changed_html = "".join(
        format_html("<dt>{}</dt><dd><code>{}</code></dd>", key, value) for key, value in changed
    )
    state_html = "".join(
        format_html(
            '<dt class="changed">{}</dt><dd class="changed"><code>{}</code>'
            '<span class="visually-hidden"> (changed)</span></dd>'
            if was_changed
            else "<dt>{}</dt><dd><code>{}</code></dd>",
            key,
            value,
        )
        for key, value, was_changed in state
    )
    return format_html(
        '<td><dl class="fields">{}</dl></td>\n      <td><dl class="fields state">{}</dl></td>',
        SafeString(changed_html or '<dd class="muted">nothing</dd>'),
        SafeString(state_html),
    )
