"""Live message and flow pages: a socket that names its page gets the page's diagram, run list
and lineage again, as out-of-band fragments, when a run or message of its correlation changes;
sockets of other correlations get nothing; renders are shared and debounced."""

import asyncio
import re

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django.test import Client

from inspector.dashboard import live_pages
from inspector.models import HandlerRun, Message
from inspector.services import handler_run_replay
from inspector.workers.worker import Worker
from tests.asgi import application
from tests.sockets import drain_frames, receive_until, session_cookie
from tests.threads import run_in_thread
from tests.warehouse.commands import AddBook, AdjustStock, ConfirmOrder, PlaceOrder, ShipOrder

pytestmark = pytest.mark.django_db(transaction=True)
PATH = "/ws/inspector/page/"
INVENTORY = "warehouse.InventoryEventHandler"
SECRET = "Alice <b>Secret</b>"


def communicator(cookie, query):
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if cookie is not None:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, f"{PATH}?{query}", headers=headers)


def staff(django_user_model, name, *perms):
    user = django_user_model.objects.create_user(name, password="x", is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return session_cookie(user)


@pytest.fixture
def ship(domain):
    """Ship an order of `quantity` copies of a new book (10 in stock); its OrderShipped."""

    def ship(quantity, title="Dune"):
        book_id = domain.process(AddBook(title=title, author="Frank Herbert", price_amount=9.99))
        items = [{"book_id": str(book_id), "quantity": quantity}]
        order_id = domain.process(PlaceOrder(customer_name=SECRET, items=items))
        domain.process(ConfirmOrder(order_id=order_id))
        domain.process(ShipOrder(order_id=order_id))
        shipped = Message.objects.filter(type="warehouse.OrderShipped.v1")
        return shipped.get(data__order_id=str(order_id)), book_id

    return ship


def inventory_run_status(html):
    """The status of the inventory run in the newest run list fragment (its badge), or None."""
    runs = html[html.rindex('<section id="runs"') :] if '<section id="runs"' in html else ""
    found = re.search(r'class="run-badge status-(\w+)"[^>]*>InventoryEventHandler ', runs)
    return found and found.group(1)


def replay_after_restock(domain, run, book_id):
    domain.process(AdjustStock(book_id=str(book_id), amount=100))
    handler_run_replay(run=run, reason="restocked")
    Worker(worker_id="live-flow-test").drain()


def test_a_replayed_runs_new_outcome_reaches_its_message_page_and_no_other(
    django_user_model, domain, ship
):
    oversold, book_id = ship(12)
    other, _ = ship(1, title="Emma")
    run = HandlerRun.objects.get(handler=INVENTORY, message=oversold)
    assert run.status == "failed"
    cookie = staff(django_user_model, "ops", "view_message")

    async def scenario():
        page = communicator(cookie, f"message={oversold.id}")
        elsewhere = communicator(cookie, f"correlation={other.correlation_id}")
        assert (await page.connect())[0] and (await elsewhere.connect())[0]
        first = await receive_until(page, lambda t: "message-effects" in t)  # the page as it is
        assert inventory_run_status(first) == "failed"
        await receive_until(elsewhere, lambda t: "causation-tree" in t)
        await drain_frames(page)  # the hub's first read of what changed a moment ago
        await drain_frames(elsewhere)
        thread = run_in_thread(lambda: replay_after_restock(domain, run, book_id))
        html = await receive_until(page, lambda t: inventory_run_status(t) == "succeeded")
        thread.join()
        html += await drain_frames(page)
        quiet = await drain_frames(elsewhere)
        await page.disconnect()
        await elsewhere.disconnect()
        return html, quiet

    html, quiet = async_to_sync(scenario)()
    assert quiet == ""  # another correlation's page heard nothing of it
    last = html[html.rindex('<div class="diagram" id="diagram">') :]
    succeeded = r'class="arrow run succeeded"[^>]*data-source="[^"]*InventoryEventHandler'
    assert re.search(succeeded, last)
    assert "Replayed by a script" in last and "restocked" in last  # the run's lineage
    assert "StockAdjusted" in last  # what the replayed run caused, in the effects


def test_a_flow_page_gets_its_diagram_and_causation_tree(django_user_model, domain, ship):
    oversold, book_id = ship(12)
    run = HandlerRun.objects.get(handler=INVENTORY, message=oversold)
    cookie = staff(django_user_model, "ops")

    async def scenario():
        page = communicator(cookie, f"correlation={oversold.correlation_id}")
        assert (await page.connect())[0]
        await receive_until(page, lambda t: "causation-tree" in t)
        thread = run_in_thread(lambda: replay_after_restock(domain, run, book_id))
        html = await receive_until(
            page, lambda t: re.search(r'status-succeeded"[^>]*>InventoryEventHandler ', t)
        )
        thread.join()
        await page.disconnect()
        return html

    html = async_to_sync(scenario)()
    assert '<ol class="causation-tree" id="causation-tree">' in html
    assert '<div class="diagram" id="diagram">' in html
    assert "InventoryEventHandler: Replayed by a script" in html


def test_fragments_hide_payloads_from_users_without_the_view_permission(
    django_user_model, domain, ship
):
    oversold, _ = ship(12)
    allowed = staff(django_user_model, "reader", "view_message")
    denied = staff(django_user_model, "ops")

    async def first_render(cookie):
        ws = communicator(cookie, f"correlation={oversold.correlation_id}")
        assert (await ws.connect())[0]
        html = await receive_until(ws, lambda t: "causation-tree" in t)
        await ws.disconnect()
        return html

    shown = async_to_sync(first_render)(allowed)
    hidden = async_to_sync(first_render)(denied)
    assert "Alice &amp;lt;b&amp;gt;Secret" in shown or "Alice &lt;b&gt;Secret" in shown
    assert "Secret" not in hidden and "<b>" not in shown


def test_sockets_are_staff_only_and_name_a_page(django_user_model, ship):
    oversold, _ = ship(1)
    customer = session_cookie(django_user_model.objects.create_user("customer", password="x"))
    cookie = staff(django_user_model, "ops")

    async def scenario():
        codes = []
        for who, query in [
            (None, f"message={oversold.id}"),
            (customer, f"message={oversold.id}"),
            (cookie, "message=not-a-uuid"),
            (cookie, f"message={oversold.id}&correlation={oversold.correlation_id}"),
            (cookie, "message=00000000-0000-4000-8000-000000000000"),
        ]:
            ws = communicator(who, query)
            connected, code = await ws.connect()
            if connected:
                code = (await ws.receive_output(timeout=2))["code"]
            codes.append(code)
            await ws.disconnect()
        return codes

    assert async_to_sync(scenario)() == [4403, 4403, 4400, 4400, 4404]


def test_many_sockets_on_one_flow_share_one_render_per_change(django_user_model, domain, ship):
    oversold, book_id = ship(12)
    run = HandlerRun.objects.get(handler=INVENTORY, message=oversold)
    cookies = [staff(django_user_model, f"ops{n}") for n in range(3)]

    async def scenario():
        sockets = [
            communicator(cookie, f"correlation={oversold.correlation_id}")
            for cookie in cookies
            for _ in range(10)
        ]
        for ws in sockets:
            assert (await ws.connect())[0]
        for ws in sockets:
            await receive_until(ws, lambda t: "causation-tree" in t)
        watch = live_pages.watch_for_this_loop()
        before = watch.renders
        thread = run_in_thread(lambda: replay_after_restock(domain, run, book_id))
        for ws in sockets:
            await receive_until(
                ws, lambda t: re.search(r'status-succeeded"[^>]*>InventoryEventHandler ', t)
            )
        thread.join()
        await asyncio.sleep(4 * live_pages.DEBOUNCE)  # any render still to come
        renders = watch.renders - before
        for ws in sockets:
            await ws.disconnect()
        return renders

    renders = async_to_sync(scenario)()
    # The replay, the worker's claim and its success: a few changes, each render shared by all
    # thirty sockets (their users may do the same things), at most one per DEBOUNCE.
    assert 1 <= renders <= 4


def test_the_failures_page_gets_its_table_when_runs_fail_and_for_its_handler_only(
    django_user_model, domain, ship
):
    cookie = staff(django_user_model, "ops")

    async def scenario():
        everyone = communicator(cookie, "failures=")
        others = communicator(cookie, "failures=warehouse.OrderNotificationHandler")
        assert (await everyone.connect())[0] and (await others.connect())[0]
        first = await receive_until(everyone, lambda t: 'id="failures"' in t)
        assert "No failed or dead runs" in first
        await receive_until(others, lambda t: 'id="failures"' in t)
        await drain_frames(everyone)
        await drain_frames(others)
        thread = run_in_thread(lambda: ship(12))
        html = await receive_until(everyone, lambda t: "Not enough stock of" in t)
        thread.join()
        html += await drain_frames(everyone)
        quiet = await drain_frames(others)
        await everyone.disconnect()
        await others.disconnect()
        return html, quiet

    html, quiet = async_to_sync(scenario)()
    assert html.startswith('<section id="failures"') and "InventoryEventHandler" in html
    assert quiet == ""  # its handler's groups did not change: nothing sent


def test_each_socket_gets_forms_with_its_own_users_csrf_token(django_user_model, ship):
    oversold, _ = ship(12)
    run = HandlerRun.objects.get(handler=INVENTORY, message=oversold)
    page = f"/inspector/messages/{oversold.id}/"
    clients = []
    for name in ("ann", "bob"):  # allowed the same things: one render serves both
        user = django_user_model.objects.create_user(name, password="x", is_staff=True)
        user.user_permissions.add(Permission.objects.get(codename="replay_handlerrun"))
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        client.get(page)  # the page sets its CSRF cookie
        clients.append(client)

    async def forms(client):
        cookie = "; ".join(f"{key}={morsel.value}" for key, morsel in client.cookies.items())
        ws = communicator(cookie.encode(), f"message={oversold.id}")
        assert (await ws.connect())[0]
        html = await receive_until(ws, lambda t: "message-effects" in t)
        await ws.disconnect()
        return html

    tokens = []
    for client in clients:
        html = async_to_sync(forms)(client)
        assert f'action="/inspector/runs/{run.id}/retry-now/"' in html
        tokens.append(set(re.findall(r'name="csrfmiddlewaretoken" value="(\w+)"', html)))
    (ann_token,), (bob_token,) = tokens
    assert ann_token != bob_token
    url = f"/inspector/runs/{run.id}/retry-now/"
    assert clients[1].post(url, {"csrfmiddlewaretoken": ann_token}).status_code == 403
    assert clients[0].post(url, {"csrfmiddlewaretoken": ann_token}).status_code == 302


def test_a_page_no_socket_shows_any_more_is_forgotten(django_user_model, ship):
    oversold, _ = ship(1)
    cookie = staff(django_user_model, "ops")

    async def scenario():
        sockets = [communicator(cookie, f"message={oversold.id}") for _ in range(2)]
        sockets.append(communicator(cookie, "failures="))
        for ws in sockets:
            assert (await ws.connect())[0]
            await ws.receive_from(timeout=5)
        watch = live_pages.watch_for_this_loop()
        assert len(watch.sockets) == 2 and watch in watch.hub.clients
        for ws in sockets:
            await ws.disconnect()
        return watch

    watch = async_to_sync(scenario)()
    assert (watch.sockets, watch.correlations, watch.messages) == ({}, {}, {})
    assert watch not in watch.hub.clients
