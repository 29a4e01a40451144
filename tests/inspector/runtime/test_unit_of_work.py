"""The unit of work is the outbox: a message and the runs it queues commit together or not at
all."""

import pytest
from django.db import transaction

from inspector.models import HandlerRun, Message
from tests.warehouse.commands import ConfirmOrder, PlaceOrder
from tests.warehouse.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


def test_outbox_an_error_before_commit_leaves_neither_event_nor_runs(async_domain, add_book):
    async_domain.config["event_processing"] = "sync"
    book = add_book()
    order_id = async_domain.process(
        PlaceOrder(customer_name="Alice", items=[{"book_id": str(book.id), "quantity": 1}])
    )
    async_domain.process(ConfirmOrder(order_id=order_id))
    async_domain.config["event_processing"] = "async"
    messages, runs = Message.objects.count(), HandlerRun.objects.count()
    repository = async_domain.repository_for(Order)
    with pytest.raises(RuntimeError), transaction.atomic():
        order = repository.get(order_id)
        order.ship_order()  # saved without a command: only the inventory handler subscribes
        repository.add(order)
        assert Message.objects.count() == messages + 1  # appended, with its pending run
        assert HandlerRun.objects.count() == runs + 1
        raise RuntimeError("crash before commit")
    assert (Message.objects.count(), HandlerRun.objects.count()) == (messages, runs)
    assert Order.objects.get(pk=order_id).status == "CONFIRMED"
