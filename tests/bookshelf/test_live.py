"""Shop pages update in place: stock levels and order statuses arrive over the shop socket."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from bookshelf.asgi import application
from bookshelf.commands import AdjustStock, ConfirmOrder, PlaceOrder
from tests.sockets import receive_until, session_cookie
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
