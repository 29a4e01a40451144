"""Edit and replay on the warehouse: a dead inventory run whose OrderShipped names no book
(the fixtures `stocked_book` and `shipped_unknown_book` in tests/inspector/conftest.py)."""

import uuid

from django.db import connection
from django.utils import timezone

from inspector.models import HandlerRun, Message
from inspector.runtime.unit_of_work import unit_of_work
from inspector.workers.worker import Worker
from tests.warehouse.events import OrderShipped
from tests.warehouse.models import Inventory

INVENTORY = "warehouse.InventoryEventHandler"
UNKNOWN_BOOK = "00000000-0000-4000-8000-000000000000"  # a book id no book has


def stored(message_id):
    """The message's row as the database holds it, its JSON columns as text."""
    key = Message._meta.pk.get_db_prep_value(message_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT type, stream, position, global_position, CAST(data AS TEXT), "
            f"CAST(metadata AS TEXT) FROM {Message._meta.db_table} WHERE id = %s",
            [key],
        )
        return cursor.fetchone()


def drain():
    """Run the inventory handler's due runs."""
    return Worker(worker_id="test-worker", handlers=[INVENTORY]).drain()


def stock_book(add_book):
    """A new book with its inventory (10 in stock), its events handled by a worker."""
    book = add_book(title="Dune")
    Worker(worker_id="test-worker").drain()
    assert Inventory.objects.get(book=book).in_stock == 10
    return book


def ship_unknown_book(domain, customer_name="Alice"):
    """An OrderShipped whose line names no book: its inventory run fails until it is dead."""
    order_id = str(uuid.uuid4())
    with unit_of_work(domain) as uow:
        uow.append(
            OrderShipped(
                order_id=order_id,
                customer_name=customer_name,
                items=[{"book_id": UNKNOWN_BOOK, "quantity": 2}],
            ),
            stream=f"warehouse::order-{order_id}",
        )
    run = HandlerRun.objects.get(handler=INVENTORY, message__data__order_id=order_id)
    for _ in range(10):
        drain()
        run.refresh_from_db()
        if run.status == "dead":
            return run
        HandlerRun.objects.filter(pk=run.pk).update(available_at=timezone.now())
    raise AssertionError(f"the run stayed {run.status}")


def corrected(run, book, quantity=2):
    """The run's payload with its line naming `book`."""
    return {**run.message.data, "items": [{"book_id": str(book.id), "quantity": quantity}]}
