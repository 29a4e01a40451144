"""How the runtime names message types and handlers, and the short names people read.

A message type is `f"{domain}.{Class}.v{version}"` and a handler `f"{domain}.{Class}"`
(`inspector.runtime.domain` names them with `message_type` and `handler_name`). Every layer
above the runtime, the admin and a host project shorten them with `short_type` and
`short_handler`, so a name is cut one way wherever it is shown; an id, with `short_id`, and
a stream named after one, with `short_stream`.
"""

import re

_ID_AT_THE_END = re.compile(r"(?P<head>.*-)(?P<id>[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})")


def message_type(domain_name, class_name, version):
    """The stored type of a message class: `warehouse.OrderShipped.v1`."""
    return f"{domain_name}.{class_name}.v{version}"


def handler_name(domain_name, class_name):
    """The name of a handler class: `warehouse.InventoryEventHandler`."""
    return f"{domain_name}.{class_name}"


def error_type(exc):
    """How a failed run (and a dry run) names its exception's type:
    `inspector.exceptions.DomainError`."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def short_type(type_name, *, whole=False):
    """`warehouse.OrderShipped.v1` → `OrderShipped`: the part before the version.

    A name of fewer than three dotted parts is not one the runtime made: its last part
    (`a.Thing` → `Thing`), or with `whole` the name as it is (the admin's run list and the
    aggregate history keep such names whole).
    """
    text = str(type_name)
    parts = text.split(".")
    if len(parts) >= 3:
        return parts[-2]
    return text if whole else parts[-1]


def short_id(value):
    """`01a233f9-15e9-74c7-8568-de6a121318f7` → `121318f7`: an id's last eight hex digits.

    Not its first: a UUIDv7 (inspector/domain/identity.py) starts with the time, the same
    eight digits for every id made in the same minute; its end is random, as a v4's is.
    """
    return str(value)[-8:]


def short_stream(stream):
    """`shop::order-01a233f9-15e9-74c7-8568-de6a121318f7` → `shop::order-…121318f7`.

    A stream named after an aggregate's or a command's UUID, its id cut as `short_id` cuts it;
    any other name as it is. Where a column is too narrow for a whole name, its end, the id's
    random digits and the position after them, was what an ellipsis hid.
    """
    match = _ID_AT_THE_END.fullmatch(str(stream))
    return f"{match['head']}…{short_id(match['id'])}" if match else str(stream)


def short_handler(name):
    """`warehouse.InventoryEventHandler` → `InventoryEventHandler`: the last dotted part.

    An error type (`module.Class`, as a failed run records it) is shortened the same way.
    """
    return str(name).rsplit(".", 1)[-1]
