"""Small formatting filters and tags for inspector pages; the tags draw what long lists repeat."""

import functools
import json
from urllib.parse import quote

from django import template
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def short_type(type_name):
    """`bookshelf.OrderShipped.v1` → `OrderShipped`."""
    parts = str(type_name).split(".")
    return parts[-2] if len(parts) >= 3 else parts[-1]


@register.filter
def short_handler(name):
    """`bookshelf.InventoryEventHandler` → `InventoryEventHandler`."""
    return str(name).rsplit(".", 1)[-1]


@register.filter
def ms(duration_us):
    if duration_us is None:
        return ""
    value = duration_us / 1000
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


@register.filter
def pretty_json(value):
    """Indented JSON; the template escapes it."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.simple_tag
def run_badges(runs):
    """The run badges of one message's runs, as inspector/run-badge.html draws each one.

    A long list renders fifty messages with a hundred runs; an include per badge costs a third
    of a millisecond (a context, a template, a URL each), this a small fraction of it.
    """
    url = None
    badges = []
    for run in runs:
        if url is None:
            url = route_url("inspector:message", run.message_id)
        title = f"{run.handler}: {run.status}"
        if run.attempts:
            title += f", attempt {run.attempts}"
        if run.duration_us is not None:
            title += f", {ms(run.duration_us)}"
        if run.error_type:
            title += f" — {short_handler(run.error_type)}"
        badges.append(
            format_html(
                '<a id="run-{}" class="run-badge status-{}" href="{}#run-{}" title="{}" '
                'data-status="{}">{} <span class="run-status">{}</span></a>\n',
                run.id,
                run.status,
                url,
                run.id,
                title,
                run.status,
                short_handler(run.handler),
                run.status,
            )
        )
    return mark_safe("".join(badges))  # every part went through format_html


@functools.lru_cache(maxsize=128)
def _route(name, script_prefix):
    marker = "00000000-0000-4000-8000-000000000000"
    head, _, tail = reverse(name, args=[marker]).partition(marker)
    return head, tail


@register.simple_tag
def route_url(name, value):
    """`{% url name value %}` for a route with one `uuid` or `path` argument, without a full
    reverse per link (a page of fifty messages has a hundred and fifty links): the route is
    reversed once, and the value quoted as reverse() quotes it."""
    head, tail = _route(name, get_script_prefix())
    return f"{head}{quote(str(value), safe=RFC3986_SUBDELIMS + '/~:@')}{tail}"


@register.simple_tag
def time_element(value):
    """`<time datetime="{{ value|date:'c' }}">{{ value|date:"Y-m-d H:i:s" }}</time>`, with the
    time zone looked up once instead of twice."""
    if value is None:
        return mark_safe('<time datetime=""></time>')
    local = timezone.template_localtime(value)
    return format_html(
        '<time datetime="{}">{}</time>', local.isoformat(), local.strftime("%Y-%m-%d %H:%M:%S")
    )
