"""Property-based tests of every bookshelf command and every shop form.

Whatever a user or an attacker sends (wrong types, huge strings, unicode, control characters,
NaN and infinities, negative and huge quantities, unknown and missing keys, junk in `items`)
is refused with an error on the field it is about, writes nothing and is never a 500; what is
valid is stored exactly. The examples of one test share its fixtures (tests/hostile.py,
`examples`): a refused example writes nothing, and an accepted one only adds rows that later
examples do not depend on.
"""

import json
import uuid

import pytest
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from hypothesis import example, given
from hypothesis import strategies as st

from bookshelf.commands import (
    MAX_COPIES,
    MAX_PRICE,
    AddBook,
    AdjustStock,
    ConfirmOrder,
    PlaceOrder,
    ShipOrder,
)
from bookshelf.models import Book, Order
from inspector.exceptions import DomainError, ValidationError
from inspector.models import Message
from tests.hostile import (
    BAD_IDENTIFIER,
    FORM_TEXT,
    JUNK,
    NOT_TEXT,
    TEXT_CHARS,
    UNSTORABLE_TEXT,
    bad_float,
    bad_integer,
    bad_text,
    examples,
    names_only,
    row_counts,
)

pytestmark = pytest.mark.django_db(transaction=True)


BAD_LINE = st.one_of(
    JUNK.filter(lambda value: not isinstance(value, dict)),
    st.fixed_dictionaries({"quantity": st.just(1)}),  # no book_id
    st.fixed_dictionaries({"book_id": st.just("b")}),  # no quantity
    st.fixed_dictionaries({"book_id": BAD_IDENTIFIER, "quantity": st.just(1)}),
    st.fixed_dictionaries({"book_id": st.just("b"), "quantity": bad_integer(1, MAX_COPIES)}),
    st.fixed_dictionaries(
        {"book_id": st.just("b"), "quantity": st.just(1)},
        optional={"": JUNK, "unknown": JUNK, "quantity ": JUNK},
    ).filter(lambda line: len(line) > 2),
    st.dictionaries(st.integers() | st.binary(), JUNK, min_size=1, max_size=2),  # keys not text
)
BAD_ITEMS = st.one_of(
    st.just([]),
    NOT_TEXT.filter(lambda value: not isinstance(value, list)),
    st.text(min_size=1, max_size=10),
    st.lists(BAD_LINE, min_size=1, max_size=3),
)

# Per command: each field with the values it must refuse.
BAD_VALUES = {
    AddBook: {
        "title": bad_text(200, required=True),
        "author": bad_text(150, required=True),
        "isbn": bad_text(13, required=False),
        "price_amount": bad_float(0.01, MAX_PRICE),
        "description": NOT_TEXT | UNSTORABLE_TEXT,
    },
    PlaceOrder: {
        "customer_name": bad_text(150, required=True),
        "customer_email": bad_text(254, required=False) | st.text(min_size=1, max_size=20),
        "items": BAD_ITEMS,
    },
    ConfirmOrder: {"order_id": BAD_IDENTIFIER},
    ShipOrder: {"order_id": BAD_IDENTIFIER},
    AdjustStock: {
        "book_id": BAD_IDENTIFIER,
        "amount": bad_integer(-MAX_COPIES, MAX_COPIES) | st.just(0),
    },
}


@pytest.fixture
def shop(domain, add_book, place_order, advance):
    """A book and a confirmed order of it: what the commands act on when their input is good."""
    book = add_book()
    order = advance(place_order([(book, 1)]), "CONFIRMED")
    return {"book": book, "order": order}


def good_kwargs(command_cls, shop):
    book_id, order_id = str(shop["book"].id), str(shop["order"].id)
    return {
        AddBook: {"title": "Dune", "author": "Frank Herbert", "price_amount": 9.99},
        PlaceOrder: {"customer_name": "Alice", "items": [{"book_id": book_id, "quantity": 1}]},
        ConfirmOrder: {"order_id": order_id},
        ShipOrder: {"order_id": order_id},
        AdjustStock: {"book_id": book_id, "amount": 1},
    }[command_cls]


def build_and_process(domain, command_cls, kwargs):
    return domain.process(command_cls(**kwargs))


def stored_exactly(command):
    """The command's row holds its data exactly, and the command rebuilt from that row (after
    a trip through JSON text, as a client reads it) equals the original."""
    row = Message.objects.get(pk=command._id)
    assert row.type == command._type
    assert row.kind == "command"
    assert row.data == command.to_dict()
    wire = json.loads(json.dumps(row.data, allow_nan=False))
    assert type(command).from_dict(wire) == command
    assert type(command).from_dict(wire).to_dict() == row.data


# Commands ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command_cls", list(BAD_VALUES), ids=lambda cls: cls.__name__)
@examples(30)
@given(data=st.data())
def test_a_bad_value_is_refused_on_its_field_and_writes_nothing(domain, shop, command_cls, data):
    field = data.draw(st.sampled_from(sorted(BAD_VALUES[command_cls])), label="field")
    value = data.draw(BAD_VALUES[command_cls][field], label="value")
    kwargs = {**good_kwargs(command_cls, shop), field: value}
    before = row_counts()
    with pytest.raises(ValidationError) as refused:
        build_and_process(domain, command_cls, kwargs)
    assert names_only(refused.value.errors, field), refused.value.errors
    assert row_counts() == before


@pytest.mark.parametrize("command_cls", list(BAD_VALUES), ids=lambda cls: cls.__name__)
@examples(20)
@given(data=st.data())
def test_unknown_and_missing_keys_are_named(domain, shop, command_cls, data):
    kwargs = dict(good_kwargs(command_cls, shop))
    required = [name for name, f in command_cls._fields.items() if f.required]
    missing = data.draw(st.lists(st.sampled_from(required), unique=True, max_size=len(required)))
    unknown = data.draw(
        st.dictionaries(
            st.text(min_size=1, max_size=20).filter(lambda k: k not in command_cls._fields),
            JUNK,
            max_size=3,
        )
    )
    if not missing and not unknown:
        return
    for name in missing:
        del kwargs[name]
    before = row_counts()
    with pytest.raises(ValidationError) as refused:
        build_and_process(domain, command_cls, {**kwargs, **unknown})
    assert set(refused.value.errors) == {*missing, *unknown}
    for name in missing:
        assert refused.value.errors[name] == ["This field is required."]
    for name in unknown:
        assert refused.value.errors[name] == ["Unknown field."]
    assert row_counts() == before


@pytest.mark.parametrize("command_cls", list(BAD_VALUES), ids=lambda cls: cls.__name__)
@examples(30)
@given(data=st.data())
def test_any_value_is_stored_exactly_or_refused_cleanly(domain, shop, command_cls, data):
    """Whatever lands in a field, the command runs and is stored exactly, or it is refused
    (on that field, or by a rule of the domain) and nothing is written."""
    field = data.draw(st.sampled_from(sorted(command_cls._fields)), label="field")
    value = data.draw(JUNK | st.just(good_kwargs(command_cls, shop).get(field)), label="value")
    kwargs = {**good_kwargs(command_cls, shop), field: value}
    before = row_counts()
    try:
        command = command_cls(**kwargs)
        domain.process(command)
    except ValidationError as refused:
        assert names_only(refused.errors, field), refused.errors
        assert row_counts() == before
    except DomainError:  # an unknown order or book, an order already confirmed...
        assert row_counts() == before
    else:
        stored_exactly(command)


def required_text(max_length):
    return st.text(TEXT_CHARS, min_size=1, max_size=max_length)


@pytest.mark.parametrize(
    ("command_cls", "field", "value"),
    [
        (AddBook, "price_amount", 10**400),  # was an OverflowError
        (AddBook, "title", "Dune\ud800"),  # was a UnicodeEncodeError (PostgreSQL: DataError)
        (AddBook, "description", "a\x07b"),
        (AddBook, "isbn", []),  # was stored as []
        (PlaceOrder, "items", [{1: 2}]),  # was a TypeError
        (PlaceOrder, "items", [{"book_id": "not-a-uuid", "quantity": 1}]),  # was a query error
        (PlaceOrder, "items", [{"book_id": "b", "quantity": 2**40}]),  # overflowed a column
        (AdjustStock, "amount", 2**40),  # overflowed the stock column
        (ConfirmOrder, "order_id", "\x0b"),  # was stripped to "" and looked up
    ],
)
def test_values_the_properties_found_are_refused_on_their_field(
    domain, shop, command_cls, field, value
):
    before = row_counts()
    with pytest.raises(ValidationError) as refused:
        build_and_process(domain, command_cls, {**good_kwargs(command_cls, shop), field: value})
    assert names_only(refused.value.errors, field), refused.value.errors
    assert row_counts() == before


EMAIL = st.builds(
    "{}@{}.example".format,
    st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=20).filter(
        lambda local: local[0] not in "._-" and local[-1] not in "._-" and ".." not in local
    ),
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=20),
)


@examples(40)
@given(data=st.data())
def test_valid_commands_round_trip_through_the_store(domain, shop, data):
    book_id = str(shop["book"].id)
    command = data.draw(
        st.one_of(
            st.builds(
                AddBook,
                title=required_text(200),
                author=required_text(150),
                isbn=st.none() | st.text("0123456789X", max_size=13),
                price_amount=st.floats(0.01, MAX_PRICE) | st.integers(1, int(MAX_PRICE)),
                description=st.none() | st.text(TEXT_CHARS | st.sampled_from("\t\n\r")),
            ),
            st.builds(
                PlaceOrder,
                customer_name=required_text(150),
                customer_email=st.none() | EMAIL,
                items=st.lists(
                    st.fixed_dictionaries(
                        {
                            "book_id": st.sampled_from([book_id, uuid.UUID(book_id)]),
                            "quantity": st.integers(1, MAX_COPIES),
                        }
                    ),
                    min_size=1,
                    max_size=4,
                ),
            ),
            st.builds(
                AdjustStock,
                book_id=st.just(book_id),
                amount=st.integers(1, MAX_COPIES),
            ),
        )
    )
    result = domain.process(command)
    stored_exactly(command)
    if isinstance(command, AddBook):
        book = Book.objects.get(pk=result)
        assert (book.title, book.author, book.price.amount) == (
            command.title,
            command.author,
            command.price_amount,
        )
    if isinstance(command, PlaceOrder):
        order = Order.objects.get(pk=result)
        assert order.customer_name == command.customer_name
        assert [item.quantity for item in order.items.all()] == [
            line.quantity for line in command.items
        ]


# Forms, through the shop's views ---------------------------------------------------------------

# A field left out of the POST altogether.
MISSING = object()


def post(client, url, data, *, htmx):
    body = {key: value for key, value in data.items() if value is not MISSING}
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(url, body, **headers)


def form_errors(response):
    """Field name → messages for every form the response rendered (order lines as
    `lines-<i>-<field>`, their non-field and formset errors as `lines`)."""
    errors = {}
    for context in response.context or []:
        for key in ("form", "error_form", "failed_form"):
            form = context.get(key)
            if form is None or not form.is_bound:
                continue
            for name, messages in form.errors.items():
                errors.setdefault(name, list(messages))
            lines = getattr(form, "lines", None)
            if lines is not None:
                for index, line in enumerate(lines.forms):
                    for name, messages in line.errors.items():
                        errors.setdefault(
                            f"lines-{index}-{name}" if name != "__all__" else "lines", messages
                        )
                if lines.non_form_errors():
                    errors.setdefault("lines", list(lines.non_form_errors()))
    return errors


def assert_refused_or_done(response, field, before, *, done_status):
    """A refused submission answers 4xx, names `field` and writes nothing; an accepted one
    answers `done_status`. Never a 500."""
    assert response.status_code < 500
    if response.status_code == done_status:
        return True
    assert response.status_code in (404, 409, 422), response.status_code
    errors = form_errors(response)
    if field.startswith("lines-") and field[6:7].isdigit():  # a line's field, or its line
        line = field.rsplit("-", 1)[0]
        assert any(name.startswith(f"{line}-") for name in errors) or "lines" in errors, errors
    else:
        assert field in errors, (field, errors)
    assert row_counts() == before
    return False


@examples(25)
@given(
    field=st.sampled_from(["title", "author", "isbn", "price_amount", "description", "token"]),
    value=FORM_TEXT | st.just(MISSING),
    htmx=st.booleans(),
)
def test_the_add_book_form_refuses_bad_input_on_its_field(shopper, field, value, htmx):
    data = {
        "token": str(uuid.uuid4()),
        "title": "Dune",
        "author": "Frank Herbert",
        "isbn": "",
        "price_amount": "9.99",
        "description": "",
    }
    data[field] = value
    before = row_counts()
    response = post(shopper, reverse("bookshelf:book-add"), data, htmx=htmx)
    assert_refused_or_done(response, field, before, done_status=200 if htmx else 302)


LINE_FIELDS = ["lines-0-book_id", "lines-0-quantity", "lines-1-book_id", "lines-1-quantity"]


@examples(25)
@given(
    field=st.sampled_from(
        ["customer_name", "customer_email", "token", "lines-TOTAL_FORMS", *LINE_FIELDS]
    ),
    value=FORM_TEXT | st.just(MISSING),
    htmx=st.booleans(),
)
def test_the_order_form_refuses_bad_input_on_its_field(shopper, shop, field, value, htmx):
    data = {
        "token": str(uuid.uuid4()),
        "customer_name": "Alice",
        "customer_email": "alice@example.com",
        "lines-TOTAL_FORMS": "2",
        "lines-INITIAL_FORMS": "0",
        "lines-0-book_id": str(shop["book"].id),
        "lines-0-quantity": "1",
        "lines-1-book_id": "",
        "lines-1-quantity": "1",
    }
    data[field] = value
    before = row_counts()
    response = post(shopper, reverse("bookshelf:order-place"), data, htmx=htmx)
    if field == "lines-TOTAL_FORMS":
        field = "lines"  # the formset's own error
    assert_refused_or_done(response, field, before, done_status=200 if htmx else 302)


@examples(20)
@given(
    action=st.sampled_from(["confirm", "ship"]),
    field=st.sampled_from(["token", "version", "next"]),
    value=FORM_TEXT
    | st.just(MISSING)
    | st.sampled_from(["//evil.example/", "https://evil.example/x", "javascript:alert(1)"]),
    htmx=st.booleans(),
)
@example(action="confirm", field="next", value="0", htmx=False)  # was a NoReverseMatch
def test_the_order_actions_refuse_bad_input(shopper, shop, place_order, action, field, value, htmx):
    """On a pending order: confirming may succeed (and goes back only to a page of this site),
    shipping is refused by the domain (409); a bad token or version is refused on its field
    (422), or as a changed order (409)."""
    order = place_order([(shop["book"], 1)])
    data = {"token": str(uuid.uuid4()), "version": str(order.version), "next": "", field: value}
    before = row_counts()
    url = reverse(f"bookshelf:order-{action}", args=[order.id])
    response = post(shopper, url, data, htmx=htmx)
    assert response.status_code < 500
    if response.status_code == 302:
        assert response["Location"].startswith("/")
        assert url_has_allowed_host_and_scheme(response["Location"], allowed_hosts={"testserver"})
        return
    if response.status_code == 200 and htmx:
        return
    assert response.status_code in (409, 422), response.status_code
    errors = form_errors(response)
    assert field in errors if response.status_code == 422 else errors, errors
    assert row_counts() == before


@examples(30)
@given(
    field=st.sampled_from(["amount", "token"]),
    value=FORM_TEXT | st.just(MISSING),
    htmx=st.booleans(),
)
@example(field="amount", value=str(2**31), htmx=True)  # overflowed the stock column
def test_the_restock_form_refuses_bad_input_on_its_field(shopper, shop, field, value, htmx):
    data = {"token": str(uuid.uuid4()), "amount": "1", field: value}
    before = row_counts()
    url = reverse("bookshelf:inventory-adjust", args=[shop["book"].id])
    response = post(shopper, url, data, htmx=htmx)
    assert_refused_or_done(response, field, before, done_status=200 if htmx else 302)


@examples(20)
@given(
    path=st.sampled_from(
        ["bookshelf:order-list", "bookshelf:notification-list", "bookshelf:catalog"]
    ),
    query=st.dictionaries(st.sampled_from(["status", "page", "x"]), FORM_TEXT, max_size=3),
)
def test_the_shop_pages_take_any_query_string(shopper, shop, path, query):
    before = row_counts()
    response = shopper.get(reverse(path), query)
    assert response.status_code == 200
    assert row_counts() == before
