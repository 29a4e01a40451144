"""Small formatting filters, and the tags that draw what long lists repeat
(`inspector.dashboard.fragments`)."""

import json

from django import template

from inspector.dashboard import fragments as rows
from inspector.dashboard.formatting import ROWS, format_ms
from inspector.runtime.names import short_handler, short_id, short_stream, short_type
from inspector.services import payload_diff

register = template.Library()

register.filter("short_type", short_type)
register.filter("short_handler", short_handler)
register.filter("short_id", short_id)
register.filter("short_stream", short_stream)


@register.filter
def ms(duration_us):
    """A duration in microseconds as the run tables write it: 0.93 ms, 12.34 ms, 1204 ms."""
    return format_ms(us=duration_us, rounding=ROWS, missing="")


register.filter("operator_note", rows.operator_note)


@register.filter
def payload_changes(replay):
    """The fields an edited replay changed, against the message's payload then."""
    return payload_diff(replay.original_data, replay.edited_data)


@register.filter
def pretty_json(value):
    """Indented JSON; the template escapes it."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.simple_tag
def run_badge(run):
    return rows.run_badge(run)


@register.simple_tag
def group_run_row(run):
    return rows.group_run_row(run)


@register.simple_tag
def feed_row(message, runs):
    return rows.feed_row(message, runs)


@register.simple_tag
def search_row(message, show_data):
    return rows.search_row(message, show_data=show_data)


@register.simple_tag
def stream_cells(message, runs):
    return rows.stream_cells(message, runs)


@register.simple_tag
def history_cells(changed, state):
    return rows.history_cells(changed, state)
