"""The message and flow pages: access, runs, the diagram, downloads, replay, escaping."""

import re
import xml.etree.ElementTree as ET

import pytest
from django.contrib.auth.models import Permission

from inspector.models import HandlerRun, Message
from tests.warehouse.commands import AddBook, ConfirmOrder, PlaceOrder, ShipOrder

pytestmark = pytest.mark.django_db(transaction=True)
HOSTILE = "<script>alert(1)</script>"


def staff_client(client, django_user_model, *perms):
    user = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


@pytest.fixture
def oversold(domain):
    """A shipped order whose inventory run failed: 12 ordered, 10 in stock."""
    book_id = domain.process(AddBook(title="Dune", author="Frank Herbert", price_amount=9.99))
    order_id = domain.process(
        PlaceOrder(customer_name=HOSTILE, items=[{"book_id": str(book_id), "quantity": 12}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    domain.process(ShipOrder(order_id=order_id))
    return Message.objects.get(type="warehouse.OrderShipped.v1")


def test_pages_need_a_staff_login(client, django_user_model, oversold):
    urls = [
        f"/inspector/messages/{oversold.id}/",
        f"/inspector/messages/{oversold.id}/diagram.svg",
        f"/inspector/messages/{oversold.id}/diagram.mmd",
        f"/inspector/flows/{oversold.correlation_id}/",
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    customer = django_user_model.objects.create_user("customer", password="x")
    client.force_login(customer)
    assert client.get(urls[0]).status_code == 302


def test_message_page_shows_runs_diagram_and_escaped_payload(client, django_user_model, oversold):
    client = staff_client(client, django_user_model, "view_message")
    response = client.get(f"/inspector/messages/{oversold.id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        "warehouse.InventoryEventHandler" in html and "warehouse.OrderNotificationHandler" in html
    )
    assert "Not enough stock of &#x27;Dune&#x27;" in html
    assert "Traceback" in html
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the payload, escaped
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert "ShipOrder" in svg and "InventoryEventHandler" in svg
    # no replay permission: none of a run's actions (the nav's "Replay jobs" list is staff's)
    assert not re.search(r">Replay (?!jobs<)", html) and "replay-form" not in html
    assert "Dry run" not in html and "Retry now" not in html and "Edit and replay" not in html


def test_payloads_need_the_view_message_permission(client, django_user_model, oversold):
    client = staff_client(client, django_user_model)
    html = client.get(f"/inspector/messages/{oversold.id}/").content.decode()
    assert "customer_name" not in html
    assert "You need the “view message” permission" in html


def test_mermaid_and_svg_downloads(client, django_user_model, oversold):
    client = staff_client(client, django_user_model)
    mermaid = client.get(f"/inspector/messages/{oversold.id}/diagram.mmd")
    assert mermaid["Content-Type"].startswith("text/plain")
    text = mermaid.content.decode()
    assert text.startswith("sequenceDiagram")
    assert "InventoryEventHandler" in text and "<script>" not in text
    svg = client.get(f"/inspector/flows/{oversold.correlation_id}/diagram.svg")
    assert svg["Content-Type"].startswith("image/svg+xml")
    assert "attachment" in svg["Content-Disposition"]
    ET.fromstring(svg.content)


def test_replay_needs_its_permission_and_queues_the_failed_run(client, django_user_model, oversold):
    run = HandlerRun.objects.get(handler="warehouse.InventoryEventHandler")
    assert run.status == "failed"
    client = staff_client(client, django_user_model)
    assert client.post(f"/inspector/runs/{run.id}/replay/", {"reason": "x"}).status_code == 403
    run.refresh_from_db()
    assert run.status == "failed"

    user = django_user_model.objects.get(username="ops")
    user.user_permissions.add(Permission.objects.get(codename="replay_handlerrun"))
    client.force_login(user)
    html = client.get(f"/inspector/messages/{oversold.id}/").content.decode()
    assert "Replay InventoryEventHandler" in html
    response = client.post(
        f"/inspector/runs/{run.id}/replay/", {"reason": "restocked"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == "pending"
    assert "Replayed by ops" in response.content.decode()
    succeeded = HandlerRun.objects.get(
        handler="warehouse.OrderNotificationHandler", message=oversold
    )
    conflict = client.post(f"/inspector/runs/{succeeded.id}/replay/", HTTP_HX_REQUEST="true")
    assert conflict.status_code == 409
    assert "only failed or dead runs" in conflict.content.decode()


def test_flow_page_draws_the_whole_correlation_and_its_causation_tree(
    client, django_user_model, oversold
):
    client = staff_client(client, django_user_model)
    html = client.get(f"/inspector/flows/{oversold.correlation_id}/").content.decode()
    tree = re.findall(r'style="--depth: (\d+)">.*?>(\w+)</a>', html, re.S)
    assert tree == [("0", "ShipOrder"), ("1", "OrderShipped")]
    assert "<svg" in html


def test_depth_limits_the_follow_on_levels_drawn(client, django_user_model, domain, extra_handlers):
    from inspector import handle
    from tests.warehouse.events import InventoryCreated
    from tests.warehouse.models import Inventory

    class StockWatcher:  # a second level: runs on what BookEventHandler raised
        @handle(InventoryCreated)
        def on_created(self, event):
            pass

    extra_handlers(StockWatcher, part_of=Inventory)
    client = staff_client(client, django_user_model)
    domain.process(AddBook(title="Dune", author="Frank Herbert", price_amount=9.99))
    command = Message.objects.get(type="warehouse.AddBook.v1")
    full = client.get(f"/inspector/messages/{command.id}/").content.decode()
    shallow = client.get(f"/inspector/messages/{command.id}/?depth=0").content.decode()
    assert "StockWatcher" in re.search(r"<svg.*?</svg>", full, re.S).group(0)
    assert "StockWatcher" not in re.search(r"<svg.*?</svg>", shallow, re.S).group(0)
    assert "1 handler run below depth 0 not drawn" in shallow


def test_message_page_queries_do_not_grow_with_the_flow(
    client, django_user_model, oversold, django_assert_max_num_queries
):
    client = staff_client(client, django_user_model)
    with django_assert_max_num_queries(20):
        assert client.get(f"/inspector/messages/{oversold.id}/").status_code == 200
