"""Shop pages update in place: stock levels and order statuses arrive over the shop socket."""

import re

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from bookshelf.asgi import application
from bookshelf.commands import AdjustStock, ConfirmOrder, PlaceOrder
from tests.sockets import drain_frames, receive_until, session_cookie
from tests.threads import run_in_thread

pytestmark = pytest.mark.django_db(transaction=True)


def shop_socket(cookie=None):
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/shop/", headers=headers)


def test_anonymous_visitors_get_no_shop_socket():
    async def scenario():
        ws = shop_socket()
        connected, code = await ws.connect()
        assert (connected, code) == (False, 4403)

    async_to_sync(scenario)()


def test_stock_and_status_changes_arrive_as_in_place_swaps(django_user_model, domain, add_book):
    shopper = session_cookie(django_user_model.objects.create_user("shopper", password="x"))
    book = add_book(title="Dune")
    order_id = domain.process(
        PlaceOrder(customer_name="Alice", items=[{"book_id": str(book.id), "quantity": 1}])
    )

    async def scenario():
        ws = shop_socket(shopper)
        connected, _ = await ws.connect()
        assert connected
        await ws.send_json_to({"shows": [f"stock-{book.id}", f"order-status-{order_id}"]})
        thread = run_in_thread(
            lambda: (
                domain.process(AdjustStock(book_id=str(book.id), amount=-8)),
                domain.process(ConfirmOrder(order_id=order_id)),
            )
        )
        html = await receive_until(ws, lambda t: "order-status-" in t, timeout=10)
        thread.join()
        await ws.disconnect()
        return html

    html = async_to_sync(scenario)()
    assert (
        f'<span id="stock-{book.id}" hx-swap-oob="outerHTML">2 <span class="badge badge-low">'
        in html
    )
    assert (
        f'id="order-status-{order_id}" hx-swap-oob="outerHTML" class="badge badge-confirmed"'
        in html
    )


def place(domain, book, customer):
    return domain.process(
        PlaceOrder(customer_name=customer, items=[{"book_id": str(book.id), "quantity": 1}])
    )


def test_a_page_gets_swaps_only_for_the_elements_it_shows(django_user_model, domain, add_book):
    """An out-of-band swap whose target is not on the page is an htmx error in the console."""
    shopper = session_cookie(django_user_model.objects.create_user("shopper", password="x"))
    book = add_book(title="Dune")
    shown, other = place(domain, book, "Alice"), place(domain, book, "Bob")

    async def scenario():
        ws = shop_socket(shopper)
        await ws.connect()
        await ws.send_json_to({"shows": [f"order-status-{shown}", "main", "messages"]})
        thread = run_in_thread(
            lambda: (
                domain.process(ConfirmOrder(order_id=other)),
                domain.process(AdjustStock(book_id=str(book.id), amount=5)),
                domain.process(ConfirmOrder(order_id=shown)),
            )
        )
        html = await receive_until(ws, lambda t: f"order-status-{shown}" in t, timeout=10)
        thread.join()
        html += await drain_frames(ws)
        await ws.disconnect()
        return html

    html = async_to_sync(scenario)()
    assert re.findall(r'id="([^"]+)" hx-swap-oob', html) == [f"order-status-{shown}"]


def test_an_element_shown_after_it_changed_gets_its_latest_state(
    django_user_model, domain, add_book
):
    """A row swapped in by a form may change before the page says it shows it."""
    shopper = session_cookie(django_user_model.objects.create_user("shopper", password="x"))
    book = add_book(title="Dune")
    order_id = place(domain, book, "Alice")

    async def scenario():
        ws = shop_socket(shopper)
        await ws.connect()
        await ws.send_json_to({"shows": [f"stock-{book.id}"]})
        thread = run_in_thread(
            lambda: (
                domain.process(ConfirmOrder(order_id=order_id)),
                domain.process(AdjustStock(book_id=str(book.id), amount=5)),
            )
        )
        # The stock change came after the confirmation: the consumer has seen both.
        html = await receive_until(ws, lambda t: f"stock-{book.id}" in t, timeout=10)
        thread.join()
        assert f"order-status-{order_id}" not in html
        await ws.send_json_to({"shows": [f"stock-{book.id}", f"order-status-{order_id}"]})
        html = await receive_until(ws, lambda t: f"order-status-{order_id}" in t)
        html += await drain_frames(ws)
        await ws.disconnect()
        return html

    html = async_to_sync(scenario)()
    assert (
        f'id="order-status-{order_id}" hx-swap-oob="outerHTML" class="badge badge-confirmed"'
        in html
    )
    assert f"stock-{book.id}" not in html  # already shown and sent: not again


def test_what_is_not_a_list_of_shown_ids_is_ignored(django_user_model, domain, add_book):
    shopper = session_cookie(django_user_model.objects.create_user("shopper", password="x"))
    book = add_book(title="Dune")

    async def scenario():
        ws = shop_socket(shopper)
        await ws.connect()
        await ws.send_json_to({"shows": [f"stock-{book.id}"]})
        for junk in ("not json", "[1, 2]", '{"shows": "stock"}', '{"other": 1}'):
            await ws.send_to(text_data=junk)
        thread = run_in_thread(lambda: domain.process(AdjustStock(book_id=str(book.id), amount=5)))
        html = await receive_until(ws, lambda t: f"stock-{book.id}" in t, timeout=10)
        thread.join()
        await ws.disconnect()
        return html

    assert (
        f'<span id="stock-{book.id}" hx-swap-oob="outerHTML">15</span>' in async_to_sync(scenario)()
    )
