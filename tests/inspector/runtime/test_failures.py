"""Failure groups' keys: what is taken out of a message, where an exception was raised, and
which failures share a key (inspector/runtime/failures.py)."""

import string
import traceback
import uuid

from hypothesis import given
from hypothesis import strategies as st

from inspector.runtime.failures import (
    KEY_LENGTH,
    failure_group,
    normalise_message,
    raising_frames,
)

HANDLER = "warehouse.InventoryEventHandler"
ERROR = "inspector.exceptions.DomainError"


def stock_error(title, in_stock, requested):
    return f"Not enough stock of {title!r}: {in_stock} in stock, {requested} requested"


def traceback_of(function, *args):
    try:
        function(*args)
    except Exception:
        return traceback.format_exc()
    raise AssertionError("did not raise")


def _raise_here(message):
    raise ValueError(message)


def _raise_there(message):
    raise ValueError(message)


def _through_helper(message):
    _raise_here(message)


def key(message, text, *, handler=HANDLER, error=ERROR):
    return failure_group(handler=handler, error_type=error, message=message, traceback_text=text)


def test_a_message_loses_its_names_ids_and_numbers():
    assert normalise_message(stock_error("Dune", 3, 5)) == (
        "Not enough stock of <str>: <n> in stock, <n> requested"
    )
    order = uuid.UUID("3f2b1c9e-1d2a-4b3c-8d9e-0a1b2c3d4e5f")
    assert normalise_message(f"No order {order} at 0x7f3a12bc (digest 9f86d081884c7d65)") == (
        "No order <id> at <hex> (digest <hex>)"
    )
    assert normalise_message(f'order {order.hex} for "Alice"  paid 12.50') == (
        "order <id> for <str> paid <n>"
    )
    # Words stay, even hex-looking ones without a digit, and so does a number's unit.
    assert (
        normalise_message("deadbeef cafe: timeout after 30s") == "deadbeef cafe: timeout after <n>s"
    )


def test_two_books_out_of_stock_are_one_group_and_other_causes_are_not():
    here = traceback_of(_raise_here, stock_error("Dune", 3, 5))
    dune = key(stock_error("Dune", 3, 5), here)
    emma = key(stock_error("Emma", 0, 12), traceback_of(_raise_here, stock_error("Emma", 0, 12)))
    assert dune == emma
    assert len(dune) == KEY_LENGTH and set(dune) <= set(string.hexdigits.lower())

    assert key(stock_error("Dune", 3, 5), here, error="builtins.ValueError") != dune
    assert key(stock_error("Dune", 3, 5), here, handler="warehouse.Other") != dune
    assert key("No inventory for book 7", here) != dune
    there = traceback_of(_raise_there, stock_error("Dune", 3, 5))
    assert key(stock_error("Dune", 3, 5), there) != dune


def test_where_it_was_raised_is_the_innermost_frames_of_own_code_without_line_numbers():
    frames = raising_frames(traceback_of(_through_helper, "boom"))
    assert frames == [
        "runtime/test_failures.py:traceback_of",
        "runtime/test_failures.py:_through_helper",
        "runtime/test_failures.py:_raise_here",
    ]
    # The same function, a few lines further down the file: the same place.
    moved = traceback_of(_through_helper, "boom").replace(", line ", ", line 1")
    assert raising_frames(moved) == frames


def test_library_frames_do_not_count_and_the_last_of_chained_tracebacks_does():
    text = (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/shop/handlers.py", line 10, in first_cause\n'
        "ValueError: the cause\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/app/.venv/lib/python3.11/site-packages/inspector/runtime/dispatch.py", '
        "line 218, in execute\n"
        '  File "/srv/app/shop/handlers.py", line 20, in on_order_shipped\n'
        '  File "/srv/app/shop/models.py", line 30, in adjust_stock\n'
        '  File "/srv/app/.venv/lib/python3.11/site-packages/django/db/models/query.py", '
        "line 40, in get\n"
        "shop.errors.OutOfStock: no\n"
    )
    assert raising_frames(text) == [
        "shop/handlers.py:on_order_shipped",
        "shop/models.py:adjust_stock",
    ]
    only_library = (
        "Traceback (most recent call last):\n"
        '  File "<frozen importlib._bootstrap>", line 1, in _find\n'
        '  File "/srv/app/.venv/lib/python3.11/site-packages/django/db/models/query.py", '
        "line 40, in get\n"
    )
    assert raising_frames(only_library) == ["models/query.py:get"]
    assert raising_frames("") == []


PARTICULARS = {
    "number": st.integers(min_value=-(10**12), max_value=10**12).map(str),
    "decimal": st.decimals(min_value=-1000, max_value=1000, places=2).map(str),
    "uuid": st.uuids().map(str),
    "quoted": st.text(alphabet=string.ascii_letters + " -", max_size=20).map(repr),
}


@given(kinds=st.lists(st.sampled_from(sorted(PARTICULARS)), min_size=1, max_size=4), data=st.data())
def test_messages_that_differ_only_in_particulars_share_a_key(kinds, data):
    """Two runs failing with other books, ids and numbers in the same places: one group."""
    first, second = ([data.draw(PARTICULARS[kind]) for kind in kinds] for _ in range(2))
    template = "Failed on {} then {} with {} and {}"
    text = traceback_of(_raise_here, "x")
    assert key(template.format(*first, *"111"), text) == key(template.format(*second, *"111"), text)


@given(st.text(max_size=300))
def test_normalising_is_idempotent_and_any_text_gets_a_key(message):
    once = normalise_message(message)
    assert normalise_message(once) == once
    group = key(message, message)
    assert len(group) == KEY_LENGTH and set(group) <= set("0123456789abcdef")
