"""Property-based tests of the building blocks: every field refuses what the store cannot keep
exactly, naming itself; what a message accepts goes through JSON and the store unchanged.

First on a message with one field of each kind (no database), then with the warehouse's
commands through `domain.process` and the store.
"""

import datetime
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inspector import Domain
from inspector.exceptions import DomainError, ValidationError
from inspector.fields import Boolean, DateTime, Dict, Float, Identifier, Integer, List, String, Text
from inspector.fields import ValueObject as ValueObjectField
from inspector.models import Message
from tests.hostile import (
    BAD_IDENTIFIER,
    HUGE_INT,
    JUNK,
    NON_FINITE,
    NOT_NUMBER,
    NOT_TEXT,
    TEXT_CHARS,
    UNSTORABLE_TEXT,
    bad_float,
    bad_integer,
    bad_text,
    examples,
    names_only,
    row_counts,
    with_char,
)
from tests.warehouse.commands import AddBook, AdjustStock, ConfirmOrder, PlaceOrder, ShipOrder
from tests.warehouse.models import Money

fuzz = Domain("fuzz")


@fuzz.event(part_of="Anything")
class Everything:
    name = String(max_length=20, required=True)
    note = Text()
    count = Integer(min_value=0, max_value=1000)
    big = Integer()
    ratio = Float(min_value=-1, max_value=1)
    flag = Boolean()
    at = DateTime()
    tags = List(content_type=String(max_length=3))
    anything = List()
    extra = Dict()
    ref = Identifier()
    price = ValueObjectField(Money)


VALID = {
    "name": st.text(TEXT_CHARS, min_size=1, max_size=20),
    "note": st.text(TEXT_CHARS | st.sampled_from("\t\n\r")),
    "count": st.integers(0, 1000),
    "big": st.integers(-(2**63), 2**63 - 1),
    "ratio": st.floats(-1, 1) | st.integers(-1, 1),
    "flag": st.booleans(),
    "at": st.datetimes(timezones=st.just(datetime.UTC) | st.none())
    | st.datetimes(timezones=st.timezones()),
    "tags": st.lists(st.text(TEXT_CHARS, max_size=3)),
    "anything": st.lists(
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(TEXT_CHARS),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(TEXT_CHARS, max_size=5), inner, max_size=3)
            ),
            max_leaves=6,
        ),
        max_size=3,
    ),
    "ref": st.uuids() | st.integers(0, 10**20) | st.text(TEXT_CHARS, min_size=1, max_size=255),
    "price": st.builds(
        dict, amount=st.floats(0, 10**9), currency=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", max_size=3)
    ),
}
VALID["extra"] = st.dictionaries(st.text(TEXT_CHARS, max_size=5), VALID["anything"], max_size=3)

BAD = {
    "name": bad_text(20, required=True),
    "note": NOT_TEXT | UNSTORABLE_TEXT,
    "count": bad_integer(0, 1000),
    "big": HUGE_INT | st.floats() | NOT_NUMBER,
    "ratio": bad_float(-1, 1),
    "flag": st.integers() | st.text(min_size=1) | st.floats() | NON_FINITE,
    "at": st.text(min_size=1, max_size=30).filter(lambda text: not text[:1].isdigit())
    | st.sampled_from(["2026-02-30T10:00:00", "2026-13-01", "9999-12-31T25:00"])
    | st.integers()
    | st.floats(),
    "tags": st.lists(bad_text(3, required=False), min_size=1, max_size=3) | st.text(min_size=1),
    "anything": st.lists(
        st.one_of(
            HUGE_INT,
            NON_FINITE,
            UNSTORABLE_TEXT,
            with_char(st.just("\x00")),
            st.binary(min_size=1),
            st.dictionaries(st.integers(), JUNK, min_size=1, max_size=2),
            st.builds(set, st.lists(st.integers(), max_size=2)),
        ).flatmap(lambda bad: st.sampled_from([bad, [bad], {"key": bad}, {"a": [1, {"b": bad}]}])),
        min_size=1,
        max_size=2,
    ),
    "ref": BAD_IDENTIFIER.filter(lambda value: value != ""),
    "price": st.fixed_dictionaries(
        {"amount": NON_FINITE | st.floats(max_value=0, exclude_max=True) | st.just(10**400)}
    )
    | st.dictionaries(st.integers(), JUNK, min_size=1, max_size=2)
    | st.fixed_dictionaries({"amount": st.just(1), "unknown": JUNK})
    | st.lists(JUNK, min_size=1),
}
BAD["extra"] = BAD["anything"].map(lambda items: {"key": items})


def exact_through_json(message):
    """The message's data is JSON a strict parser reads (no NaN, text that UTF-8 encodes and
    PostgreSQL's jsonb takes: no NUL), and the message rebuilt from it is equal."""
    text = json.dumps(message.to_dict(), allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")
    assert "\\u0000" not in text
    copy = type(message).from_dict(json.loads(text))
    assert copy == message
    assert copy.to_dict() == message.to_dict()


@examples(200)
@given(data=st.data())
def test_what_a_message_accepts_goes_through_json_exactly(data):
    optional = {name: values for name, values in VALID.items() if name != "name"}
    kwargs = data.draw(st.fixed_dictionaries({"name": VALID["name"]}, optional=optional))
    exact_through_json(Everything(**kwargs))


@examples(200)
@given(data=st.data())
def test_a_bad_value_is_refused_naming_its_field(data):
    field = data.draw(st.sampled_from(sorted(BAD)), label="field")
    value = data.draw(BAD[field], label="value")
    with pytest.raises(ValidationError) as refused:
        Everything(**{"name": "ok", field: value})
    assert names_only(refused.value.errors, field), refused.value.errors


@examples(200)
@given(
    kwargs=st.dictionaries(
        st.sampled_from([*Everything._fields, "unknown", "__class__"]) | st.text(max_size=10),
        JUNK,
        max_size=5,
    )
)
def test_any_values_build_a_message_exact_through_json_or_name_what_is_wrong(kwargs):
    """Never another exception: a message, or a ValidationError about the fields it was given
    (and `name`, which it needs)."""
    try:
        message = Everything(**kwargs)
    except ValidationError as refused:
        assert refused.errors
        for key in refused.errors:
            assert any(names_only({key: []}, field) for field in [*kwargs, "name"]), key
    else:
        exact_through_json(message)


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\ud800", "\udfff"])
def test_text_that_cannot_be_stored_is_refused_by_each_kind_of_text(char):
    for field in ("name", "note", "ref", "tags", "extra", "anything"):
        value = {"tags": [char], "extra": {"k": char}, "anything": [[char]]}.get(field, f"a{char}")
        with pytest.raises(ValidationError) as refused:
            Everything(**{"name": "ok", field: value})
        assert names_only(refused.value.errors, field), (field, refused.value.errors)
    # Tabs, line breaks and any other character are text.
    note = "tab\tline\nreturn\r é 日本 \u2028 \U0001f600 \ufffe"
    assert Everything(name="ok", note=note).note == note


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("at", "2026-02-30T10:00:00"),  # was a ValueError
        ("ratio", 10**400),  # was an OverflowError
        pytest.param("ref", 10**5000, id="ref-10**5000"),  # was a ValueError: too many digits
        ("price", {1: 2}),  # was a TypeError
        ("big", 2**64),  # was stored, beyond what SQLite's JSON reads as an integer
        ("extra", {"k": b"bytes"}),  # was a TypeError when stored
        ("extra", {1: "a"}),  # was stored with the key "1"
        ("anything", [float("nan")]),  # was stored as NaN, which is not JSON
        ("name", "\ud800"),  # was a UnicodeEncodeError when stored
    ],
)
def test_values_the_properties_found_are_refused_naming_their_field(field, value):
    with pytest.raises(ValidationError) as refused:
        Everything(**{"name": "ok", field: value})
    assert names_only(refused.value.errors, field), refused.value.errors


def test_empty_values_of_another_type_are_not_empty_values():
    """An empty list is not an empty string, nor an empty mapping an integer."""
    with pytest.raises(ValidationError) as refused:
        Everything(name=[], count={}, ref=[], note=())
    assert set(refused.value.errors) == {"name", "count", "ref", "note"}


# The warehouse's commands, through the store --------------------------------------------------

COMMANDS = [AddBook, PlaceOrder, ConfirmOrder, ShipOrder, AdjustStock]


def good_kwargs(command_cls, book, order_id):
    return {
        AddBook: {"title": "Dune", "author": "Frank Herbert", "price_amount": 9.99},
        PlaceOrder: {"customer_name": "Ann", "items": [{"book_id": str(book.id), "quantity": 1}]},
        ConfirmOrder: {"order_id": order_id},
        ShipOrder: {"order_id": order_id},
        AdjustStock: {"book_id": str(book.id), "amount": 1},
    }[command_cls]


def stored_exactly(command):
    row = Message.objects.get(pk=command._id)
    assert (row.type, row.kind) == (command._type, "command")
    assert row.data == command.to_dict()
    assert type(command).from_dict(json.loads(json.dumps(row.data, allow_nan=False))) == command


@pytest.mark.django_db(transaction=True)
@examples(60)
@given(data=st.data())
def test_a_warehouse_command_is_stored_exactly_or_refused_writing_nothing(
    domain, book, order, data
):
    order_id = order(book, ship=False)
    command_cls = data.draw(st.sampled_from(COMMANDS), label="command")
    field = data.draw(st.sampled_from(sorted(command_cls._fields)), label="field")
    value = data.draw(JUNK | st.sampled_from(["", str(uuid.uuid4()), "7", 7, 2**40]), label="value")
    kwargs = {**good_kwargs(command_cls, book, order_id), field: value}
    before = row_counts()
    try:
        command = command_cls(**kwargs)
        domain.process(command)
    except ValidationError as refused:
        assert names_only(refused.errors, field), refused.errors
        assert row_counts() == before
    except DomainError:  # no such order or book; not enough stock
        assert row_counts() == before
    else:
        stored_exactly(command)


@pytest.mark.django_db(transaction=True)
@examples(40)
@given(data=st.data())
def test_valid_warehouse_commands_round_trip_through_the_store(domain, book, data):
    command = data.draw(
        st.one_of(
            st.builds(
                AddBook,
                title=st.text(TEXT_CHARS, min_size=1, max_size=200),
                author=st.text(TEXT_CHARS, min_size=1, max_size=150),
                price_amount=st.floats(0.01, 10**6),
                description=st.none() | st.text(TEXT_CHARS | st.sampled_from("\t\n\r")),
            ),
            st.builds(
                PlaceOrder,
                customer_name=st.text(TEXT_CHARS, min_size=1, max_size=150),
                items=st.lists(
                    st.fixed_dictionaries(
                        {"book_id": st.just(str(book.id)), "quantity": st.integers(1, 5)}
                    ),
                    min_size=1,
                    max_size=3,
                ),
            ),
        )
    )
    domain.process(command)
    stored_exactly(command)
