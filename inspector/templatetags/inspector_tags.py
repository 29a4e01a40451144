"""Small formatting filters for inspector pages."""

import json

from django import template

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
