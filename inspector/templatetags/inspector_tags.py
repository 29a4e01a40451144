"""Small formatting filters, and the tags that draw what long lists repeat
(`inspector.dashboard.fragments`)."""

import json

from django import template

from inspector.dashboard import fragments as rows

register = template.Library()

register.filter("short_type", rows.short_type)
register.filter("short_handler", rows.short_handler)
register.filter("ms", rows.ms)


@register.filter
def pretty_json(value):
    """Indented JSON; the template escapes it."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.simple_tag
def run_badge(run):
    return rows.run_badge(run)


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
