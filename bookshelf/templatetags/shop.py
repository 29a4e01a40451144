"""Template helpers for the shop pages."""

import uuid

from django import template
from django.urls import reverse

from bookshelf.submissions import message_name as _message_name
from inspector.runtime.names import short_handler, short_id

register = template.Library()
register.filter("short_id", short_id)


@register.simple_tag
def fresh_token():
    """A new submission token for a small form rendered without a Form instance."""
    return uuid.uuid4()


@register.simple_tag
def inspector_message_url(message_id):
    """The inspector's page of one message."""
    return reverse("inspector:message", args=[message_id])


@register.filter
def message_name(type_name):
    """`bookshelf.OrderShipped.v1` → `OrderShipped`."""
    return _message_name(type_name)


# `bookshelf.InventoryEventHandler` → `InventoryEventHandler`
register.filter("handler_name", short_handler)


@register.filter
def event_fields(data):
    """An event's data as (name, text) pairs for people: ids left out (the inspector has them),
    a list of order lines read as "2 × Dune"."""
    pairs = []
    for key, value in (data or {}).items():
        if key.endswith("_id"):
            continue
        if isinstance(value, list) and all(
            isinstance(v, dict) and "quantity" in v and "book_title" in v for v in value
        ):
            value = ", ".join(f"{v['quantity']} × {v['book_title']}" for v in value)
        pairs.append((key, value))
    return pairs
