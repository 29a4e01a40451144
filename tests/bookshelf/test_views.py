"""The shop's pages and actions through the Django test client, with htmx and without."""

import re
import threading
import uuid

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from bookshelf.models import Book, Inventory, Notification, Order
from inspector.models import HandlerRun, Message

from .conftest import HTMX

pytestmark = pytest.mark.django_db(transaction=True)


def book_data(**overrides):
    data = {
        "token": str(uuid.uuid4()),
        "title": "Dune",
        "author": "Frank Herbert",
        "isbn": "9780441172719",
        "price_amount": "10.99",
        "description": "Spice.",
    }
    data.update(overrides)
    return data


def order_data(lines, *, total=None, **overrides):
    """POST data for the Place order form; `lines` is a list of (book id, quantity) strings."""
    data = {
        "token": str(uuid.uuid4()),
        "customer_name": "Alice Johnson",
        "customer_email": "alice@example.com",
        "lines-TOTAL_FORMS": str(total if total is not None else len(lines)),
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "20",
    }
    for index, (book_id, quantity) in enumerate(lines):
        data[f"lines-{index}-book_id"] = str(book_id)
        data[f"lines-{index}-quantity"] = str(quantity)
    data.update(overrides)
    return data


def action_data(order, **overrides):
    data = {"token": str(uuid.uuid4()), "version": str(order.version), "next": "/orders/"}
    data.update(overrides)
    return data


def tokens_in(html):
    return re.findall(r'name="token" value="([0-9a-f-]{36})"', html)


def receipt_links(response):
    return re.findall(r'href="/inspector/messages/([0-9a-f-]{36})/"', response.content.decode())


# Pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/orders/", "/inventory/", "/notifications/", f"/orders/{uuid.uuid4()}/"]
)
def test_pages_need_a_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={path}")


@pytest.mark.django_db
def test_a_customer_without_staff_status_logs_in_to_the_shop(client, django_user_model):
    django_user_model.objects.create_user("reader", password="a long passphrase")
    page = client.get("/accounts/login/?next=/orders/")
    assert page.status_code == 200
    assert 'name="username"' in page.content.decode()
    wrong = client.post("/accounts/login/", {"username": "reader", "password": "nope"})
    assert wrong.status_code == 200 and "correct username and password" in wrong.content.decode()
    response = client.post(
        "/accounts/login/",
        {"username": "reader", "password": "a long passphrase", "next": "/orders/"},
    )
    assert response.status_code == 302 and response["Location"] == "/orders/"
    assert client.get("/orders/").status_code == 200
    assert client.get("/inspector/").status_code == 302  # the inspector stays staff-only


def test_catalog_lists_books_with_price_and_stock(shopper, add_book):
    add_book(title="Dune", price=10.99)
    add_book(title="Emma", price=7.5)
    response = shopper.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Dune" in html and "USD 10.99" in html
    assert "Emma" in html and "USD 7.50" in html
    assert re.search(r'<span id="stock-[0-9a-f-]+">10</span>', html)  # the new inventory's stock
    assert 'action="/books/add/"' in html and 'hx-post="/books/add/"' in html
    assert '<label for="id_title">Title:</label>' in html


def test_the_layout_loads_htmx_locally_and_sends_csrf_through_hx_headers(shopper):
    html = shopper.get("/").content.decode()
    assert re.search(r'<script src="/static/django_htmx/htmx-2\.min\.js" defer>', html)
    assert "unpkg" not in html and "cdn" not in html.lower()
    assert re.search(r'<body hx-headers=\'\{"X-CSRFToken": "[A-Za-z0-9]+"\}\'>', html)
    assert 'aria-current="page">Catalog' in html


def test_book_page_shows_details_stock_and_recent_events(shopper, add_book, place_order, advance):
    book = add_book(title="Dune", price=10.99)
    advance(place_order([(book, 3)]), "SHIPPED")
    response = shopper.get(f"/books/{book.id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Dune</h1>" in html
    assert "9780743273565" in html
    assert f'<dd><span id="stock-{book.id}">7</span>' in html  # 10 stocked, 3 shipped
    events = re.findall(r'href="/inspector/messages/[0-9a-f-]+/">(\w+)</a>', html)
    assert events == ["StockAdjusted", "InventoryCreated", "BookAdded"]  # newest first
    assert "InventoryEventHandler" not in html  # StockAdjusted has no handlers
    assert "BookEventHandler" in html


def test_an_unknown_book_or_order_page_is_a_404(shopper):
    assert shopper.get(f"/books/{uuid.uuid4()}/").status_code == 404
    response = shopper.get(f"/orders/{uuid.uuid4()}/")
    assert response.status_code == 404
    assert b"No such order" in response.content


def test_orders_list_shows_status_badges_and_filters_by_status(
    shopper, add_book, place_order, advance
):
    book = add_book()
    place_order([(book, 1)], customer_name="Pending Pat")
    advance(place_order([(book, 1)], customer_name="Confirmed Cy"), "CONFIRMED")
    advance(place_order([(book, 1)], customer_name="Shipped Sam"), "SHIPPED")

    html = shopper.get("/orders/").content.decode()
    assert re.search(r'class="badge badge-pending">Pending</span>', html)
    assert re.search(r'class="badge badge-confirmed">Confirmed</span>', html)
    assert 'class="badge badge-shipped">Shipped</span>' in html
    assert ">Confirm</button>" in html and ">Ship</button>" in html
    assert 'aria-label="Ship order' in html and "to Confirmed Cy" in html
    # The place-order form picks books from the catalog, price and stock in the label.
    assert f'<option value="{book.id}">The Great Gatsby — F. Scott Fitzgerald — USD 12.99' in html

    confirmed = shopper.get("/orders/?status=CONFIRMED").content.decode()
    assert "Confirmed Cy" in confirmed
    assert "Pending Pat" not in confirmed and "Shipped Sam" not in confirmed


def test_orders_placed_in_the_same_minute_have_different_short_ids(shopper, add_book, place_order):
    """Ids are UUIDv7, whose first digits are the time: the short form is the random end."""
    book = add_book()
    orders = [place_order([(book, 1)], customer_name=f"Reader {n}") for n in range(3)]
    html = shopper.get("/orders/").content.decode()
    shown = re.findall(r'<a href="/orders/([0-9a-f-]+)/">([0-9a-f]+)</a>', html)
    assert sorted(shown) == sorted((str(o.id), str(o.id)[-8:]) for o in orders)
    assert len({short for _, short in shown}) == 3
    detail = shopper.get(f"/orders/{orders[0].id}/").content.decode()
    assert f"<h1>Order {str(orders[0].id)[-8:]} " in detail


def test_order_page_shows_items_total_history_and_notifications(
    shopper, add_book, place_order, advance
):
    dune, emma = add_book(title="Dune", price=10.0), add_book(title="Emma", price=2.5)
    order = advance(place_order([(dune, 2), (emma, 1)]), "SHIPPED")
    response = shopper.get(f"/orders/{order.id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "USD 20.00" in html and "USD 2.50" in html  # subtotals
    assert "<strong>USD 22.50</strong>" in html
    history = re.findall(r'href="/inspector/messages/[0-9a-f-]+/">(Order\w+)</a>', html)
    assert history[:3] == ["OrderPlaced", "OrderConfirmed", "OrderShipped"]
    assert html.count("Succeeded") == 3  # notification ×2, inventory ×1
    assert "Your bookshelf order was confirmed" in html
    assert "Your bookshelf order was shipped" in html
    assert "Nothing to do" in html  # shipped: no buttons


def test_inventory_highlights_low_stock(shopper, add_book, place_order, advance):
    low, plenty = add_book(title="Low"), add_book(title="Plenty")
    advance(place_order([(low, 8)]), "SHIPPED")
    html = shopper.get("/inventory/").content.decode()
    low_row = re.search(rf'<tr id="inventory-{low.id}"[^>]*>.*?</tr>', html, re.S).group(0)
    plenty_row = re.search(rf'<tr id="inventory-{plenty.id}"[^>]*>.*?</tr>', html, re.S).group(0)
    assert 'class="low-stock"' in low_row and "Low stock" in low_row
    assert "low-stock" not in plenty_row and "Low stock" not in plenty_row
    assert f'<label class="visually-hidden" for="amount-{low.id}">Copies of Low to add' in html


def test_notifications_list_shows_the_emails_and_their_events(
    shopper, add_book, place_order, advance
):
    order = advance(place_order([(add_book(), 1)]), "CONFIRMED")
    notification = Notification.objects.get()
    html = shopper.get("/notifications/").content.decode()
    assert "alice@example.com" in html
    assert "Your bookshelf order was confirmed" in html
    assert f"Order {order.id} confirmed for Alice Johnson" in html
    assert f'href="/inspector/messages/{notification.message_id}/">OrderConfirmed</a>' in html
    assert f'href="/orders/{order.id}/"' in html


def test_output_is_escaped(shopper, add_book, place_order):
    book = add_book(title="<script>alert(1)</script>")
    place_order([(book, 1)], customer_name="<b>Mallory</b>")
    for path in ("/", f"/books/{book.id}/", "/orders/", "/inventory/"):
        html = shopper.get(path).content.decode()
        assert "<script>alert(1)</script>" not in html, path
        assert "<b>Mallory</b>" not in html, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shopper.get("/").content.decode()


def test_pages_refuse_other_methods(shopper):
    assert shopper.post("/").status_code == 405
    assert shopper.get("/books/add/").status_code == 405
    assert shopper.get(f"/orders/{uuid.uuid4()}/ship/").status_code == 405


# Actions ----------------------------------------------------------------------------------


def test_add_book_without_js_redirects_with_what_it_raised(shopper, row_counts):
    before = row_counts()
    response = shopper.post("/books/add/", book_data(), follow=True)
    assert response.redirect_chain == [("/", 302)]
    book = Book.objects.get()
    assert (book.title, book.author, book.isbn, book.price.amount) == (
        "Dune",
        "Frank Herbert",
        "9780441172719",
        10.99,
    )
    assert Inventory.objects.get(book=book).quantity == 10
    after = row_counts()
    assert after["Book"] == before["Book"] + 1 and after["Inventory"] == before["Inventory"] + 1
    html = response.content.decode()
    event = Message.objects.get(type="bookshelf.BookAdded.v1")
    assert f'<a href="/inspector/messages/{event.id}/">BookAdded → 1 handler run</a>' in html
    assert "AddBook done" in html


def test_add_book_with_htmx_swaps_the_catalog_section(shopper):
    response = shopper.post("/books/add/", book_data(title="Emma"), **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="catalog"')  # the fragment, no layout
    assert "<html" not in html
    assert "Emma" in html
    assert 'id="messages" class="messages" aria-live="polite" hx-swap-oob="true"' in html
    assert "BookAdded → 1 handler run" in html
    assert 'name="title" maxlength="200" required id="id_title">' in html  # a fresh form


def test_place_order_with_two_lines_skips_blank_ones(shopper, add_book, row_counts):
    dune, emma = add_book(title="Dune", price=10.0), add_book(title="Emma", price=2.5)
    data = order_data([(dune.id, 2), ("", 1), (emma.id, 1)])
    response = shopper.post("/orders/place/", data, **HTMX)
    assert response.status_code == 200
    order = Order.objects.get()
    assert order.status == "PENDING"
    assert [(i.book_title, i.quantity, i.unit_price.amount) for i in order.items.all()] == [
        ("Dune", 2, 10.0),
        ("Emma", 1, 2.5),
    ]
    html = response.content.decode()
    assert f'<tr id="order-{order.id}">' in html
    assert "OrderPlaced → 0 handler runs" in html


def test_add_another_line_redraws_the_form_and_writes_nothing(shopper, add_book, row_counts):
    book = add_book()
    before = row_counts()
    data = order_data([(book.id, 4)], customer_name="Zoë", add_line="1")
    response = shopper.post("/orders/place/", data, **HTMX)
    assert response.status_code == 200
    assert row_counts() == before
    html = response.content.decode()
    assert 'name="lines-TOTAL_FORMS" value="2"' in html
    assert 'name="lines-1-book_id"' in html
    assert 'value="Zoë"' in html
    assert re.search(rf'<option value="{book.id}" selected>', html)
    assert 'name="lines-0-quantity" value="4"' in html
    assert "errorlist" not in html


def test_confirm_with_htmx_swaps_the_row_and_says_what_it_raised(shopper, add_book, place_order):
    order = place_order([(add_book(), 1)])
    response = shopper.post(f"/orders/{order.id}/confirm/", action_data(order), **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<tr id="order-{order.id}">')
    assert 'class="badge badge-confirmed">Confirmed</span>' in html
    assert ">Ship</button>" in html and 'name="version" value="2"' in html
    assert "OrderConfirmed → 1 handler run" in html
    event = Message.objects.get(type="bookshelf.OrderConfirmed.v1")
    assert receipt_links(response) == [str(event.id)]
    assert Order.objects.get().status == "CONFIRMED"


def test_ship_without_js_redirects_to_next_and_stock_drops(shopper, add_book, place_order, advance):
    book = add_book()
    order = advance(place_order([(book, 3)]), "CONFIRMED")
    response = shopper.post(
        f"/orders/{order.id}/ship/", action_data(order, next=f"/orders/{order.id}/"), follow=True
    )
    assert response.redirect_chain == [(f"/orders/{order.id}/", 302)]
    assert "OrderShipped → 2 handler runs" in response.content.decode()
    assert Order.objects.get().status == "SHIPPED"
    assert Inventory.objects.get(book=book).quantity == 7


def test_an_unsafe_next_is_ignored(shopper, add_book, place_order):
    order = place_order([(add_book(), 1)])
    response = shopper.post(
        f"/orders/{order.id}/confirm/", action_data(order, next="https://evil.example/")
    )
    assert response.status_code == 302
    assert response["Location"] == f"/orders/{order.id}/"


def test_shipping_more_than_the_stock_reports_the_failed_run(
    shopper, add_book, place_order, advance
):
    book = add_book()
    order = advance(place_order([(book, 12)]), "CONFIRMED")
    response = shopper.post(f"/orders/{order.id}/ship/", action_data(order), **HTMX)
    assert response.status_code == 200  # the command worked; one of its handlers did not
    assert "OrderShipped → 2 handler runs, 1 failed" in response.content.decode()
    assert 'class="message message-warning"' in response.content.decode()
    run = HandlerRun.objects.get(handler="bookshelf.InventoryEventHandler")
    assert run.status == "failed" and "Not enough stock" in run.error_message
    assert Inventory.objects.get(book=book).quantity == 10


def test_restock_with_htmx_swaps_the_row(shopper, add_book):
    book = add_book()
    data = {"token": str(uuid.uuid4()), "amount": "5"}
    response = shopper.post(f"/inventory/{book.id}/adjust/", data, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<tr id="inventory-{book.id}"')
    assert f'<span id="stock-{book.id}">15</span>' in html
    assert "StockAdjusted → 0 handler runs" in html
    assert Inventory.objects.get(book=book).quantity == 15


def test_restock_without_js_redirects_to_the_inventory(shopper, add_book):
    book = add_book()
    data = {"token": str(uuid.uuid4()), "amount": "2"}
    response = shopper.post(f"/inventory/{book.id}/adjust/", data, follow=True)
    assert response.redirect_chain == [("/inventory/", 302)]
    assert "AdjustStock done" in response.content.decode()
    assert Inventory.objects.get(book=book).quantity == 12


# Bad input: a message next to the control, nothing written --------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("title", "", "This field is required."),
        ("title", "   ", "This field is required."),
        ("title", "x" * 201, "Ensure this value has at most 200 characters (it has 201)."),
        ("price_amount", "", "This field is required."),
        ("price_amount", "abc", "Enter a number."),
        ("price_amount", "0", "Ensure this value is greater than or equal to 0.01."),
        ("price_amount", "-3", "Ensure this value is greater than or equal to 0.01."),
        ("price_amount", "1e9", "Ensure that there are no more than 8 digits in total."),
    ],
)
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_bad_book_input_is_shown_next_to_the_field(
    shopper, row_counts, field, value, message, htmx
):
    before = row_counts()
    headers = HTMX if htmx else {}
    response = shopper.post("/books/add/", book_data(**{field: value}), **headers)
    assert response.status_code == 422
    assert row_counts() == before
    html = response.content.decode()
    assert f'<ul class="errorlist" id="id_{field}_error"><li>{message}</li></ul>' in html
    assert f'aria-describedby="id_{field}_error"' in html or f"id_{field}_helptext" in html
    assert ("<html" in html) is not htmx


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"quantity": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"quantity": "-2"}, "Ensure this value is greater than or equal to 1."),
        ({"quantity": "two"}, "Enter a whole number."),
        ({"quantity": ""}, "This field is required."),
        ({"book_id": "not-a-uuid"}, "Choose a book from the catalog."),
        ({"book_id": "UNKNOWN"}, "No book with id"),
    ],
)
def test_bad_order_lines_are_shown_on_their_line(shopper, add_book, row_counts, line, message):
    book = add_book()
    values = {"book_id": str(book.id), "quantity": "1", **line}
    if values["book_id"] == "UNKNOWN":
        values["book_id"] = str(uuid.uuid4())
    # The first line is fine; the second is blank (skipped); the third is the bad one.
    data = order_data([(book.id, 1), ("", 1), (values["book_id"], values["quantity"])])
    before = row_counts()
    response = shopper.post("/orders/place/", data, **HTMX)
    assert response.status_code == 422
    assert row_counts() == before
    html = response.content.decode()
    field = "quantity" if "quantity" in line else "book_id"
    error = re.search(rf'<ul class="errorlist" id="id_lines-2-{field}_error"><li>(.*?)</li>', html)
    assert error and message in error.group(1)
    assert "id_lines-0-" + field + "_error" not in html


def test_a_book_deleted_since_the_page_loaded_is_reported_on_its_line(
    shopper, add_book, row_counts
):
    keep, gone = add_book(title="Keep"), add_book(title="Gone")
    data = order_data([(keep.id, 1), (gone.id, 1)])
    Book.objects.filter(pk=gone.pk).delete()
    before = row_counts()
    response = shopper.post("/orders/place/", data)
    assert response.status_code == 422
    assert row_counts() == before
    assert re.search(
        rf'id="id_lines-1-book_id_error"><li>No book with id {gone.id}\.</li>',
        response.content.decode(),
    )


def test_an_order_needs_a_customer_and_a_line(shopper, add_book, row_counts):
    add_book()
    before = row_counts()
    response = shopper.post("/orders/place/", order_data([("", 1)], customer_name=""))
    assert response.status_code == 422
    assert row_counts() == before
    html = response.content.decode()
    assert 'id="id_customer_name_error"><li>This field is required.' in html
    assert "Add at least one book to the order." in html


def test_an_email_must_look_like_one(shopper, add_book, row_counts):
    book = add_book()
    before = row_counts()
    response = shopper.post("/orders/place/", order_data([(book.id, 1)], customer_email="nope"))
    assert response.status_code == 422
    assert row_counts() == before
    assert "Enter a valid email address." in response.content.decode()


def test_a_double_submitted_form_runs_once(shopper, row_counts):
    data = book_data()
    assert shopper.post("/books/add/", data).status_code == 302
    before = row_counts()
    response = shopper.post("/books/add/", data, **HTMX)
    assert response.status_code == 409
    assert row_counts() == before
    assert "This form was already submitted" in response.content.decode()
    assert Book.objects.count() == 1


def test_a_double_submitted_order_is_placed_once(shopper, add_book, row_counts):
    data = order_data([(add_book().id, 1)])
    assert shopper.post("/orders/place/", data).status_code == 302
    before = row_counts()
    assert shopper.post("/orders/place/", data).status_code == 409
    assert row_counts() == before


def test_confirming_twice_is_refused(shopper, add_book, place_order, row_counts):
    order = place_order([(add_book(), 1)])
    page = shopper.get("/orders/").content.decode()
    data = action_data(order, token=tokens_in(page)[-1])
    assert shopper.post(f"/orders/{order.id}/confirm/", data, **HTMX).status_code == 200
    before = row_counts()

    again = shopper.post(f"/orders/{order.id}/confirm/", data, **HTMX)  # the same form again
    assert again.status_code == 409
    assert "already submitted" in again.content.decode()

    stale = shopper.post(f"/orders/{order.id}/confirm/", action_data(order), **HTMX)  # old page
    assert stale.status_code == 409
    assert "This order changed since you loaded the page: it is now confirmed" in (
        stale.content.decode()
    )
    assert row_counts() == before
    assert Order.objects.get().status == "CONFIRMED"


def test_shipping_before_confirming_is_refused(shopper, add_book, place_order, row_counts):
    order = place_order([(add_book(), 1)])
    before = row_counts()
    response = shopper.post(f"/orders/{order.id}/ship/", action_data(order), **HTMX)
    assert response.status_code == 409
    html = response.content.decode()
    assert "only a CONFIRMED order can be shipped" in html
    assert 'role="alert"' in html
    assert ">Confirm</button>" in html  # the row as it really is
    assert row_counts() == before


def test_shipping_before_confirming_without_js_shows_the_order_page(
    shopper, add_book, place_order, row_counts
):
    order = place_order([(add_book(), 1)])
    before = row_counts()
    response = shopper.post(f"/orders/{order.id}/ship/", action_data(order))
    assert response.status_code == 409
    assert "only a CONFIRMED order can be shipped" in response.content.decode()
    assert "<h1>Order" in response.content.decode()
    assert row_counts() == before


@pytest.mark.parametrize(
    ("field", "value", "status", "message"),
    [
        ("token", "forged", 422, "submission token was altered"),
        ("token", "", 422, "missing its submission token"),
        ("version", "abc", 422, "order version was altered"),
        ("version", "", 422, "missing the order&#x27;s version"),
        ("version", "99", 409, "This order changed since you loaded the page"),
    ],
)
def test_a_tampered_hidden_field_is_refused(
    shopper, add_book, place_order, row_counts, field, value, status, message
):
    order = place_order([(add_book(), 1)])
    before = row_counts()
    response = shopper.post(
        f"/orders/{order.id}/confirm/", action_data(order, **{field: value}), **HTMX
    )
    assert response.status_code == status
    assert message in response.content.decode()
    assert row_counts() == before


def test_a_tampered_token_on_add_book_is_refused(shopper, row_counts):
    before = row_counts()
    response = shopper.post("/books/add/", book_data(token="1; DROP TABLE"))
    assert response.status_code == 422
    assert "submission token was altered" in response.content.decode()
    assert row_counts() == before


def test_an_unknown_order_or_book_action_is_a_404_fragment(shopper, row_counts):
    before = row_counts()
    missing = uuid.uuid4()
    response = shopper.post(
        f"/orders/{missing}/ship/", {"token": str(uuid.uuid4()), "version": "1"}, **HTMX
    )
    assert response.status_code == 404
    assert b"This order no longer exists" in response.content
    response = shopper.post(f"/inventory/{missing}/adjust/", {"amount": "1"}, **HTMX)
    assert response.status_code == 404
    assert b"This book no longer exists" in response.content
    assert shopper.post(f"/inventory/{missing}/adjust/", {"amount": "1"}).status_code == 404
    assert row_counts() == before


@pytest.mark.parametrize(
    ("amount", "status", "message"),
    [
        ("0", 422, "Adjust by a non-zero amount."),
        ("many", 422, "Enter a whole number."),
        ("", 422, "This field is required."),
        ("-11", 409, "Not enough stock of &#x27;The Great Gatsby&#x27;: 10 in stock"),
    ],
)
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_bad_restock_input_is_shown_on_the_row(
    shopper, add_book, row_counts, amount, status, message, htmx
):
    book = add_book()
    before = row_counts()
    headers = HTMX if htmx else {}
    data = {"token": str(uuid.uuid4()), "amount": amount}
    response = shopper.post(f"/inventory/{book.id}/adjust/", data, **headers)
    assert response.status_code == status
    assert row_counts() == before
    html = response.content.decode()
    row = re.search(rf'<tr id="inventory-{book.id}".*?</tr>', html, re.S).group(0)
    assert message in row and 'role="alert"' in row
    assert f'aria-describedby="amount-{book.id}-error"' in row


# Two tabs, one order ----------------------------------------------------------------------


def test_two_ship_clicks_from_two_tabs_ship_once(shopper, add_book, place_order, advance):
    book = add_book()
    order = advance(place_order([(book, 2)]), "CONFIRMED")
    tab_one = tokens_in(shopper.get(f"/orders/{order.id}/").content.decode())
    tab_two = tokens_in(shopper.get("/orders/").content.decode())
    first = shopper.post(f"/orders/{order.id}/ship/", action_data(order, token=tab_one[0]), **HTMX)
    second = shopper.post(
        f"/orders/{order.id}/ship/", action_data(order, token=tab_two[-1]), **HTMX
    )
    assert (first.status_code, second.status_code) == (200, 409)
    assert "This order changed since you loaded the page: it is now shipped" in (
        second.content.decode()
    )
    assert Inventory.objects.get(book=book).quantity == 8
    assert Message.objects.filter(type="bookshelf.OrderShipped.v1").count() == 1


@pytest.mark.parametrize("attempt", range(3))
def test_two_ship_clicks_at_the_same_moment_ship_once(
    django_user_model, add_book, place_order, advance, attempt
):
    book = add_book()
    order = advance(place_order([(book, 2)]), "CONFIRMED")
    user = django_user_model.objects.create_user(f"twotabs{attempt}")
    start = threading.Barrier(2)
    statuses = []

    def click():
        client = Client()
        client.force_login(user)
        start.wait()
        try:
            response = client.post(f"/orders/{order.id}/ship/", action_data(order), **HTMX)
            statuses.append((response.status_code, response.content.decode()))
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(status for status, _ in statuses) == [200, 409]
    refused = next(html for status, html in statuses if status == 409)
    assert "This order changed since you loaded the page" in refused
    assert Inventory.objects.get(book=book).quantity == 8
    assert Message.objects.filter(type="bookshelf.OrderShipped.v1").count() == 1
    assert Order.objects.get(pk=order.pk).status == "SHIPPED"


def test_urls_are_named():
    assert reverse("bookshelf:catalog") == "/"
    assert reverse("bookshelf:order-ship", args=[uuid.UUID(int=1)]).endswith("/ship/")
