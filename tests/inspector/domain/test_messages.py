"""Messages and value objects: validated on construction, immutable, exact through JSON."""

import datetime
import enum
import json

import pytest

from inspector import Domain
from inspector.exceptions import ValidationError
from inspector.fields import Boolean, DateTime, Dict, Float, Identifier, Integer, List, String
from inspector.fields import ValueObject as ValueObjectField
from tests.warehouse.commands import AddBook, OrderLine, PlaceOrder
from tests.warehouse.events import OrderShipped
from tests.warehouse.models import Money


class Color(enum.Enum):
    RED = "RED"
    BLUE = "BLUE"


probe = Domain("probe")


@probe.event(part_of="Anything")
class Everything:
    name = String(max_length=5, required=True)
    color = String(max_length=10, choices=Color)
    count = Integer(min_value=0)
    ratio = Float()
    flag = Boolean()
    at = DateTime()
    tags = List(content_type=String(max_length=3))
    extra = Dict()
    ref = Identifier()
    price = ValueObjectField(Money)


def test_every_bad_field_is_named_at_once():
    with pytest.raises(ValidationError) as caught:
        Everything(
            color="GREEN",
            count="three",
            ratio="x",
            flag="yes",
            at="not a date",
            tags=["toolong"],
            extra=[1],
            price={"amount": -1},
            unknown=1,
        )
    errors = caught.value.errors
    assert set(errors) == {
        "name",
        "color",
        "count",
        "ratio",
        "flag",
        "at",
        "tags[0]",
        "extra",
        "price.amount",
        "unknown",
    }
    assert errors["name"] == ["This field is required."]
    assert "GREEN" in errors["color"][0]
    assert "at most 3 characters" in errors["tags[0]"][0]
    assert "name" in str(caught.value)


def test_too_long_string_and_range_come_from_django_validators():
    with pytest.raises(ValidationError) as caught:
        Everything(name="toolong", count=-1)
    assert "at most 5 characters" in caught.value.errors["name"][0]
    assert "greater than or equal to 0" in caught.value.errors["count"][0]


def test_booleans_are_not_integers():
    with pytest.raises(ValidationError) as caught:
        Everything(name="ok", count=True)
    assert set(caught.value.errors) == {"count"}


def test_choices_accept_enum_members_and_values():
    assert Everything(name="ok", color=Color.RED).color == "RED"
    assert Everything(name="ok", color="BLUE").color == "BLUE"


def test_messages_are_immutable():
    command = AddBook(title="Dune", author="Frank Herbert", price_amount=9.99)
    with pytest.raises(AttributeError):
        command.title = "Other"
    with pytest.raises(AttributeError):
        command.anything = 1
    money = Money(amount=1.5)
    with pytest.raises(AttributeError):
        money.amount = 2


def test_json_round_trip_is_exact():
    original = Everything(
        name="Alice",
        color=Color.BLUE,
        count=3,
        ratio=0.1 + 0.2,
        flag=False,
        at=datetime.datetime(2026, 11, 23, 12, 30, 15, 123456, tzinfo=datetime.UTC),
        tags=["a", "bc"],
        extra={"nested": {"k": [1, 2]}},
        ref="abc-1",
        price=Money(amount=12.99, currency="EUR"),
    )
    wire = json.loads(json.dumps(original.to_dict()))
    copy = Everything.from_dict(wire)
    assert copy == original
    assert copy.to_dict() == original.to_dict()
    assert copy.at == original.at
    assert copy.price == Money(amount=12.99, currency="EUR")


def test_list_of_value_objects_validates_each_line_with_its_index():
    with pytest.raises(ValidationError) as caught:
        PlaceOrder(
            customer_name="Alice",
            items=[{"book_id": "b1", "quantity": 1}, {"book_id": "b2", "quantity": 0}, {}],
        )
    assert set(caught.value.errors) == {
        "items[1].quantity",
        "items[2].book_id",
        "items[2].quantity",
    }
    command = PlaceOrder(customer_name="Alice", items=[{"book_id": "b1", "quantity": 2}])
    assert command.items == [OrderLine(book_id="b1", quantity=2)]
    assert PlaceOrder.from_dict(json.loads(json.dumps(command.to_dict()))) == command


def test_required_list_must_not_be_empty():
    with pytest.raises(ValidationError) as caught:
        PlaceOrder(customer_name="Alice", items=[])
    assert caught.value.errors == {"items": ["This field is required."]}


def test_value_object_defaults_and_equality():
    assert Money(amount=3) == Money(amount=3.0, currency="USD")
    assert Money(amount=3).amount == 3.0
    assert str(Money(amount=3)) == "USD 3.00"
    with pytest.raises(ValidationError) as caught:
        Money(currency="DOLLARS")
    assert set(caught.value.errors) == {"currency", "amount"}


def test_event_type_names_carry_domain_and_version():
    assert OrderShipped._type == "warehouse.OrderShipped.v1"
    assert AddBook._type == "warehouse.AddBook.v1"
