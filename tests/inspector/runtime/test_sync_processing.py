"""Sync processing: handlers run after the commit, each in its own transaction, all recorded."""

import pytest

from inspector import handle
from inspector.models import HandlerAttempt, HandlerRun, Message
from tests.warehouse.commands import AddBook, ConfirmOrder, PlaceOrder, ShipOrder
from tests.warehouse.events import BookAdded, OrderConfirmed, OrderShipped, StockAdjusted
from tests.warehouse.models import Book, Inventory, Notification, Order

pytestmark = pytest.mark.django_db(transaction=True)


def place_confirmed_order(domain, book, quantity=1):
    order_id = domain.process(
        PlaceOrder(customer_name="Alice", items=[{"book_id": str(book.id), "quantity": quantity}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    return order_id


def test_correlation_and_causation_chain_from_add_book_to_inventory(domain):
    book_id = domain.process(AddBook(title="Dune", author="Frank Herbert", price_amount=9.99))

    command = Message.objects.get(type="warehouse.AddBook.v1")
    event = Message.objects.get(type="warehouse.BookAdded.v1")
    assert command.metadata["causation_id"] is None
    assert command.metadata["origin_stream"] is None
    assert event.correlation_id == command.correlation_id
    assert event.metadata["causation_id"] == str(command.id)
    assert event.metadata["origin_stream"] == command.stream
    assert event.stream == f"warehouse::book-{book_id}"
    assert event.metadata["aggregate_version"] == 1

    command_run = HandlerRun.objects.get(message=command)
    assert command_run.handler == "warehouse.BookCommandHandler"
    assert command_run.raised_message_ids == [str(event.id)]
    assert event.metadata["handler_run_id"] == str(command_run.id)

    inventory_run = HandlerRun.objects.get(message=event)
    assert inventory_run.handler == "warehouse.BookEventHandler"
    assert inventory_run.status == "succeeded"
    assert inventory_run.attempts == 1
    assert inventory_run.duration_us > 0
    assert inventory_run.started_at <= inventory_run.finished_at
    assert Inventory.objects.get(book_id=book_id).in_stock == 10


def test_follow_on_events_keep_the_correlation_and_the_origin_stream(domain, add_book):
    book = add_book()
    order_id = place_confirmed_order(domain, book, quantity=2)
    domain.process(
        ShipOrder(order_id=order_id), correlation_id="1b4e28ba-2fa1-11d2-883f-b9a761bde3fb"
    )

    ship = Message.objects.get(type="warehouse.ShipOrder.v1")
    shipped = Message.objects.get(type="warehouse.OrderShipped.v1")
    adjusted = Message.objects.get(type="warehouse.StockAdjusted.v1", data__amount=-2)
    assert str(ship.correlation_id) == "1b4e28ba-2fa1-11d2-883f-b9a761bde3fb"
    assert shipped.correlation_id == adjusted.correlation_id == ship.correlation_id
    assert adjusted.metadata["causation_id"] == str(shipped.id)
    assert adjusted.metadata["origin_stream"] == ship.stream  # the chain's root, two levels up
    run = HandlerRun.objects.get(message=shipped, handler="warehouse.InventoryEventHandler")
    assert run.raised_message_ids == [str(adjusted.id)]
    assert adjusted.metadata["handler_run_id"] == str(run.id)


def test_stream_category_subscribes_a_handler_to_another_aggregates_events(domain, add_book):
    book = add_book()
    order_id = place_confirmed_order(domain, book, quantity=3)
    domain.process(ShipOrder(order_id=order_id))
    shipped = Message.objects.get(type="warehouse.OrderShipped.v1")
    assert shipped.category == "warehouse::order"
    assert sorted(HandlerRun.objects.filter(message=shipped).values_list("handler", flat=True)) == [
        "warehouse.InventoryEventHandler",
        "warehouse.OrderNotificationHandler",
    ]
    assert Inventory.objects.get(book=book).in_stock == 7


def test_a_handler_on_another_category_does_not_see_the_event(domain, add_book, extra_handlers):
    class WrongCategory:
        @handle(OrderConfirmed)
        def on_confirmed(self, event):
            raise AssertionError("must not run")

    # part_of=Book listens to warehouse::book; OrderConfirmed is appended to warehouse::order.
    extra_handlers(WrongCategory, part_of=Book)
    book = add_book()
    place_confirmed_order(domain, book)
    assert not HandlerRun.objects.filter(handler="warehouse.WrongCategory").exists()


def test_source_stream_filters_on_the_stream_that_started_the_chain(
    domain, add_book, extra_handlers
):
    seen = []

    class FromCommands:
        @handle(BookAdded)
        def on_added(self, event):
            seen.append(event.title)

    extra_handlers(FromCommands, part_of=Book, source_stream="warehouse::book:command")

    add_book(title="Through a command")
    book = Book(title="Saved directly", author="Someone")
    book.add_to_catalog()
    book.save()  # no command: the event has no origin stream

    assert seen == ["Through a command"]
    runs = HandlerRun.objects.filter(handler="warehouse.FromCommands")
    assert [r.message.data["title"] for r in runs] == ["Through a command"]
    # The regular handler ignores source streams and stocked both books.
    assert Inventory.objects.count() == 2


def test_a_failing_handler_rolls_back_only_its_own_writes(
    domain, add_book, extra_handlers, mailoutbox
):
    class FlakyMailer:
        @handle(OrderConfirmed)
        def on_confirmed(self, event):
            Notification.objects.create(
                recipient="flaky@example.com",
                subject="written before the failure",
                body="",
                message_id=event._metadata.id,
                message_type=event._type,
            )
            raise RuntimeError("mail server down")

    extra_handlers(FlakyMailer, part_of=Order)
    book = add_book()
    order_id = place_confirmed_order(domain, book)

    assert Order.objects.get(pk=order_id).status == "CONFIRMED"  # the command's writes stay
    assert list(Notification.objects.values_list("recipient", flat=True)) == [
        "customers@warehouse.local"  # the other handler's writes stay
    ]
    assert len(mailoutbox) == 1
    run = HandlerRun.objects.get(handler="warehouse.FlakyMailer")
    assert run.status == "failed"
    assert run.attempts == 1
    assert run.error_type == "builtins.RuntimeError"
    assert run.error_message == "mail server down"
    assert 'raise RuntimeError("mail server down")' in run.traceback
    assert run.claimed_by == ""
    attempt = HandlerAttempt.objects.get(run=run)
    assert attempt.number == 1 and "mail server down" in attempt.traceback


def test_events_raised_by_handlers_are_dispatched_breadth_first(domain, add_book, extra_handlers):
    order = []

    class Recorder:
        @handle(OrderShipped)
        def on_shipped(self, event):
            order.append("OrderShipped")

    class StockRecorder:
        @handle(StockAdjusted)
        def on_adjusted(self, event):
            order.append("StockAdjusted")

    extra_handlers(Recorder, part_of=Order)
    extra_handlers(StockRecorder, part_of=Inventory)
    book = add_book()
    order_id = place_confirmed_order(domain, book)
    domain.process(ShipOrder(order_id=order_id))
    # InventoryEventHandler (first subscriber) raised StockAdjusted while handling OrderShipped;
    # the other OrderShipped handlers still run before it.
    assert order == ["OrderShipped", "StockAdjusted"]


def test_too_little_stock_fails_the_inventory_run_and_never_goes_negative(domain, add_book):
    book = add_book()
    order_id = place_confirmed_order(domain, book, quantity=11)
    assert domain.process(ShipOrder(order_id=order_id)) == order_id

    run = HandlerRun.objects.get(handler="warehouse.InventoryEventHandler")
    assert run.status == "failed"
    assert "Not enough stock" in run.error_message
    assert Inventory.objects.get(book=book).in_stock == 10
    assert not Message.objects.filter(type="warehouse.StockAdjusted.v1").exists()
    assert Order.objects.get(pk=order_id).status == "SHIPPED"


def test_a_paused_handler_holds_its_sync_runs_for_a_worker_after_resume(domain):
    from inspector.services import handler_pause, handler_resume
    from inspector.workers.worker import Worker

    handler_pause(name="warehouse.BookEventHandler")
    book_id = domain.process(AddBook(title="Held", author="Someone", price_amount=3))
    run = HandlerRun.objects.get(handler="warehouse.BookEventHandler")
    assert (run.status, run.claimed_by) == ("pending", "")
    assert not Inventory.objects.filter(book_id=book_id).exists()
    assert Worker(worker_id="test").drain() == 0  # workers skip it too

    handler_resume(name="warehouse.BookEventHandler")
    assert Worker(worker_id="test").drain() == 1
    assert Inventory.objects.get(book_id=book_id).in_stock == 10
