"""Read queries behind the shop's pages."""

from django.db.models import F, Prefetch

from bookshelf.models import Book, Inventory, Notification, Order, OrderItem, OrderStatus
from inspector.models import HandlerRun, Message

LOW_STOCK = 3  # at or below this many copies a book is highlighted on the inventory page


def book_list():
    """The catalog, with each book's stock (None until its inventory exists)."""
    return Book.objects.annotate(stock=F("inventory__quantity")).order_by("title")


def book_choices():
    """(id, label) pairs for picking a book on an order line; the label says price and stock."""
    return [
        (
            str(book.id),
            f"{book.title} — {book.author} — {book.price} — "
            + ("not stocked" if book.stock is None else f"{book.stock} in stock"),
        )
        for book in book_list()
    ]


def book_events(*, book, limit=20):
    """The book's latest events: its own stream and its inventory's, newest first."""
    streams = [book.stream]
    inventory = Inventory.objects.filter(book=book).first()
    if inventory is not None:
        streams.append(inventory.stream)
    return list(
        Message.objects.filter(stream__in=streams)
        .order_by("-global_position")
        .prefetch_related(_runs())[:limit]
    )


def order_list(*, status=None):
    """Orders newest first, with their items, optionally of one status."""
    orders = Order.objects.prefetch_related(
        Prefetch("items", queryset=OrderItem.objects.order_by("id"))
    ).order_by("-placed_at")
    if status in OrderStatus.values:
        orders = orders.filter(status=status)
    return orders


def order_with_items(order_id):
    return order_list().filter(pk=order_id).first()


def order_history(*, order):
    """The order's stream in order, each event with its handler runs: the status history."""
    return list(
        Message.objects.filter(stream=order.stream).order_by("position").prefetch_related(_runs())
    )


def inventory_list():
    return Inventory.objects.select_related("book").order_by("title")


def notification_list(*, order=None):
    notifications = Notification.objects.select_related("order").order_by("-sent_at")
    if order is not None:
        notifications = notifications.filter(order=order)
    return notifications


def _runs():
    return Prefetch("runs", queryset=HandlerRun.objects.order_by("handler"))
