"""The shop's forms: what they send to the domain and where the domain's errors land."""

import uuid

import pytest

from bookshelf.commands import AddBook, PlaceOrder, ShipOrder
from bookshelf.forms import AddBookForm, OrderActionForm, PlaceOrderForm, response_status
from bookshelf.submissions import DuplicateSubmission
from inspector.exceptions import ConcurrencyError, DomainError, ObjectNotFound, ValidationError

pytestmark = pytest.mark.django_db(transaction=True)


def place_order_form(lines, **extra):
    data = {
        "token": str(uuid.uuid4()),
        "customer_name": "Alice",
        "customer_email": "",
        "lines-TOTAL_FORMS": str(len(lines)),
        "lines-INITIAL_FORMS": "0",
    }
    for index, (book_id, quantity) in enumerate(lines):
        data[f"lines-{index}-book_id"] = str(book_id)
        data[f"lines-{index}-quantity"] = str(quantity)
    data.update(extra)
    return PlaceOrderForm(data)


def test_add_book_form_builds_the_command():
    form = AddBookForm(
        {
            "token": str(uuid.uuid4()),
            "title": "Dune",
            "author": "Frank Herbert",
            "isbn": "",
            "price_amount": "10.50",
            "description": "",
        }
    )
    assert form.is_valid(), form.errors
    command = form.command()
    assert isinstance(command, AddBook)
    assert command.to_dict() == {
        "title": "Dune",
        "author": "Frank Herbert",
        "isbn": None,
        "price_amount": 10.5,
        "description": None,
    }


def test_every_unbound_form_gets_its_own_token():
    assert AddBookForm()["token"].value() != AddBookForm()["token"].value()


def test_domain_errors_land_on_the_fields_they_name():
    form = AddBookForm({"token": str(uuid.uuid4()), "title": "x", "author": "y", "price_amount": 1})
    assert form.is_valid()
    form.add_domain_error(
        ValidationError(
            {
                "price_amount": ["Too cheap."],
                "__all__": ["Whole form."],
                "secret": ["Not a field."],
                "token": ["About the token."],
            }
        )
    )
    assert form.errors["price_amount"] == ["Too cheap."]
    assert form.non_field_errors() == [
        "Whole form.",
        "secret: Not a field.",
        "token: About the token.",
    ]
    assert response_status(form) == 422


def test_order_line_errors_land_on_the_filled_line_they_name(add_book):
    book = add_book()
    form = place_order_form([("", 1), (book.id, 2), ("", 1), (book.id, 3)])
    assert form.is_valid(), form.errors
    command = form.command()
    assert isinstance(command, PlaceOrder)
    assert [(line.book_id, line.quantity) for line in command.items] == [
        (str(book.id), 2),
        (str(book.id), 3),
    ]
    # items[1] is the second filled line: the fourth line of the form.
    form.add_domain_error(
        ValidationError(
            {
                "items[1].quantity": ["Too many."],
                "items[0]": ["Whole line."],
                "items[0].discount": ["Unknown."],
                "items[7].quantity": ["No such line."],
                "items": ["About the list."],
                "customer_name": ["Bad name."],
            }
        )
    )
    lines = form.lines.forms
    assert lines[3].errors["quantity"] == ["Too many."]
    assert lines[1].non_field_errors() == ["Whole line.", "discount: Unknown."]
    assert not lines[0].errors and not lines[2].errors
    assert form.errors["customer_name"] == ["Bad name."]
    assert form.non_field_errors() == ["items[7].quantity: No such line.", "items: About the list."]
    assert form.status() == 422


def test_an_order_without_lines_is_invalid():
    form = place_order_form([("", 1), ("", 1)])
    assert not form.is_valid()
    assert form.lines.non_form_errors() == ["Add at least one book to the order."]
    assert form.status() == 422


def test_add_another_line_keeps_what_was_typed(add_book):
    book = add_book()
    data = place_order_form([(book.id, 5)], customer_name="Zoë").data
    form = PlaceOrderForm.with_another_line(data)
    assert not form.is_bound
    assert len(form.lines.forms) == 2
    assert form.lines.forms[0]["quantity"].value() == "5"
    assert form["customer_name"].value() == "Zoë"
    assert form["token"].value() == data["token"]


def test_add_another_line_stops_at_the_maximum():
    data = {"lines-TOTAL_FORMS": "999", "token": "x"}
    assert len(PlaceOrderForm.with_another_line(data).lines.forms) == 20
    assert len(PlaceOrderForm.with_another_line({"lines-TOTAL_FORMS": "?"}).lines.forms) == 1


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (ValidationError({"x": ["bad"]}), 422),
        (ObjectNotFound("gone"), 404),
        (ConcurrencyError("raced"), 409),
        (DuplicateSubmission(), 409),
        (DomainError("rule"), 409),
    ],
)
def test_status_follows_the_kind_of_refusal(exc, status):
    form = AddBookForm({"token": str(uuid.uuid4()), "title": "t", "author": "a", "price_amount": 1})
    assert form.is_valid()
    assert response_status(form) == 200
    form.add_domain_error(exc)
    assert response_status(form) == status


def test_losing_the_race_after_validation_is_reported_as_a_changed_order(
    domain, add_book, place_order, advance
):
    order = advance(place_order([(add_book(), 1)]), "CONFIRMED")
    form = OrderActionForm(
        {"token": str(uuid.uuid4()), "version": str(order.version)}, order=order, action="ship"
    )
    assert form.is_valid()
    assert isinstance(form.command(), ShipOrder)
    domain.process(ShipOrder(order_id=str(order.id)))  # the other tab wins meanwhile
    form.add_domain_error(DomainError("only a CONFIRMED order can be shipped"))
    assert form.non_field_errors() == [
        "This order changed since you loaded the page: it is now shipped. "
        "Nothing was done; look again before you try."
    ]
    assert response_status(form) == 409


def test_a_rule_broken_on_an_unchanged_order_keeps_the_domain_message(add_book, place_order):
    order = place_order([(add_book(), 1)])
    form = OrderActionForm(
        {"token": str(uuid.uuid4()), "version": str(order.version)}, order=order, action="ship"
    )
    assert form.is_valid()
    form.add_domain_error(DomainError("only a CONFIRMED order can be shipped"))
    assert form.non_field_errors() == ["only a CONFIRMED order can be shipped"]
