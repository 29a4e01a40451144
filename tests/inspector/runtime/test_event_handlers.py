"""The Event Handlers guide's example on the warehouse domain: `Order.ship_order()` raises
`OrderShipped`; `InventoryEventHandler`, part of `Inventory`, listens to the order stream and
takes the stock from 100 to 90; the notification handler's `source_stream` keeps it to orders
that a command moved."""

import pytest

from inspector.models import HandlerRun, Message
from tests.warehouse.commands import ConfirmOrder, PlaceOrder, ShipOrder
from tests.warehouse.models import Book, Inventory, Money, Notification, Order

pytestmark = pytest.mark.django_db(transaction=True)

NOTIFY = "warehouse.OrderNotificationHandler"


def test_the_guide_scenario_stock_100_ship_10_leaves_90(domain):
    book = Book(title="Guide", author="Protean", price=Money(amount=10))
    book.save()  # no BookAdded: stock the inventory by hand, as the guide does
    inventory = Inventory(book=book, title="Guide", in_stock=100)
    domain.repository_for(Inventory).add(inventory)

    order = Order.place(customer_name="Bob", lines=[(book, 10)])
    domain.repository_for(Order).add(order)
    order.confirm_order()
    domain.repository_for(Order).add(order)
    order.ship_order()
    domain.repository_for(Order).add(order)

    stock = domain.repository_for(Inventory).get(inventory.id)
    assert stock.to_dict()["in_stock"] == 90
    assert stock.to_dict()["book_id"] == str(book.id)
    shipped = Message.objects.get(type="warehouse.OrderShipped.v1")
    assert shipped.stream == order.stream
    run = HandlerRun.objects.get(message=shipped)
    assert (run.handler, run.status) == ("warehouse.InventoryEventHandler", "succeeded")
    # Saved without a command, the chain has no origin stream: no notification.
    assert not HandlerRun.objects.filter(handler=NOTIFY).exists()
    assert not Notification.objects.exists()


def test_the_notification_handler_follows_only_orders_a_command_moved(domain, add_book, mailoutbox):
    spec = domain.handler_named(NOTIFY)
    assert (spec.stream_category, spec.source_stream) == (
        "warehouse::order",
        "warehouse::order:command",
    )
    book = add_book()
    order_id = domain.process(
        PlaceOrder(customer_name="Alice", items=[{"book_id": str(book.id), "quantity": 2}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    domain.process(ShipOrder(order_id=order_id))

    runs = HandlerRun.objects.filter(handler=NOTIFY).order_by("global_position")
    assert [(r.message_type, r.status) for r in runs] == [
        ("warehouse.OrderConfirmed.v1", "succeeded"),
        ("warehouse.OrderShipped.v1", "succeeded"),
    ]
    assert sorted(m.subject for m in mailoutbox) == [
        "Your warehouse order was confirmed",
        "Your warehouse order was shipped",
    ]
    assert Notification.objects.filter(order_id=order_id).count() == 2
    assert Inventory.objects.get(book=book).in_stock == 8
