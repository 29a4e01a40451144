"""Command handlers change one aggregate; event handlers keep the others in sync."""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError

from bookshelf import notifications
from bookshelf.commands import AddBook, AdjustStock, ConfirmOrder, PlaceOrder, ShipOrder
from bookshelf.domain import domain
from bookshelf.events import BookAdded, OrderConfirmed, OrderShipped
from bookshelf.models import Book, Inventory, Money, Notification, Order
from inspector import current_domain, handle
from inspector.exceptions import ObjectNotFound, ValidationError

INITIAL_STOCK = 10


@domain.command_handler(part_of=Book)
class BookCommandHandler:
    @handle(AddBook)
    def add_book(self, command: AddBook):
        book = Book(
            title=command.title,
            author=command.author,
            isbn=command.isbn or "",
            price=Money(amount=command.price_amount),
            description=command.description or "",
        )
        book.add_to_catalog()
        current_domain.repository_for(Book).add(book)
        return book.id


@domain.command_handler(part_of=Order)
class OrderCommandHandler:
    @handle(PlaceOrder)
    def place_order(self, command: PlaceOrder):
        # An id that is not a UUID matches no book (reported below) instead of failing the query.
        books = Book.objects.in_bulk({_uuid_key(line.book_id) for line in command.items} - {None})
        unknown = {
            f"items[{index}].book_id": [f"No book with id {line.book_id}."]
            for index, line in enumerate(command.items)
            if _uuid_key(line.book_id) not in books
        }
        if unknown:
            raise ValidationError(unknown)
        order = Order.place(
            customer_name=command.customer_name,
            customer_email=command.customer_email or "",
            lines=[(books[_uuid_key(line.book_id)], line.quantity) for line in command.items],
        )
        current_domain.repository_for(Order).add(order)
        return order.id

    @handle(ConfirmOrder)
    def confirm_order(self, command: ConfirmOrder):
        repository = current_domain.repository_for(Order)
        order = repository.get(command.order_id)
        order.confirm()
        repository.add(order)
        return order.id

    @handle(ShipOrder)
    def ship_order(self, command: ShipOrder):
        repository = current_domain.repository_for(Order)
        order = repository.get(command.order_id)
        order.ship()
        repository.add(order)
        return order.id


@domain.command_handler(part_of=Inventory)
class InventoryCommandHandler:
    @handle(AdjustStock)
    def adjust_stock(self, command: AdjustStock):
        if command.amount == 0:
            raise ValidationError({"amount": ["Adjust by a non-zero amount."]})
        inventory = _inventory_of(command.book_id)
        inventory.adjust_stock(command.amount)
        current_domain.repository_for(Inventory).add(inventory)
        return inventory.quantity


@domain.event_handler(part_of=Book)
class BookEventHandler:
    @handle(BookAdded)
    def on_book_added(self, event: BookAdded):
        """A new book starts with a stocked inventory."""
        inventory = Inventory.stock(
            book_id=event.book_id, title=event.title, quantity=INITIAL_STOCK
        )
        current_domain.repository_for(Inventory).add(inventory)


@domain.event_handler(part_of=Inventory, stream_category="bookshelf::order")
class InventoryEventHandler:
    @handle(OrderShipped)
    def on_order_shipped(self, event: OrderShipped):
        """Shipped books leave the shelf; too little stock fails the run, touching nothing."""
        repository = current_domain.repository_for(Inventory)
        wanted = {}
        for item in event.items:
            wanted[item["book_id"]] = wanted.get(item["book_id"], 0) + item["quantity"]
        stock = {str(i.book_id): i for i in Inventory.objects.filter(book_id__in=list(wanted))}
        for book_id, quantity in wanted.items():
            if book_id not in stock:
                raise ObjectNotFound(f"No inventory for book {book_id}")
            stock[book_id].adjust_stock(-quantity)
        for inventory in stock.values():
            repository.add(inventory)


@domain.event_handler(part_of=Order)
class OrderNotificationHandler:
    @handle(OrderConfirmed)
    def on_order_confirmed(self, event: OrderConfirmed):
        _notify(event, "confirmed", f"Order {event.order_id} confirmed for {event.customer_name}")

    @handle(OrderShipped)
    def on_order_shipped(self, event: OrderShipped):
        _notify(event, "shipped", f"Order {event.order_id} shipped to {event.customer_name}")


def _uuid_key(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _inventory_of(book_id):
    try:
        return Inventory.objects.get(book_id=book_id)
    except (Inventory.DoesNotExist, DjangoValidationError) as exc:
        raise ObjectNotFound(f"No inventory for book {book_id}") from exc


def _notify(event, verb, body):
    try:
        order = current_domain.repository_for(Order).get(event.order_id)
    except ObjectNotFound:
        order = None
    recipient = (order and order.customer_email) or settings.BOOKSHELF_NOTIFY_DEFAULT
    subject = f"Your bookshelf order was {verb}"
    Notification.objects.create(
        order=order,
        recipient=recipient,
        subject=subject,
        body=body,
        message_id=event._metadata.id,
        message_type=event._type,
    )
    # Raising here rolls back the Notification row: a failed send leaves a failed run to replay.
    notifications.gateway().send(recipient=recipient, subject=subject, body=body)
