"""The runtime announces what it committed; it never calls the dashboard itself."""

import pytest
from django.db import transaction

from inspector.models import HandlerRun, RunStatus
from inspector.runtime import signals
from inspector.workers.worker import Worker
from tests.warehouse.commands import ConfirmOrder, PlaceOrder

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def heard():
    """What the two signals carried, in the order they were sent."""
    received = []

    def on_messages(sender, messages, **kwargs):
        received.append(("messages", [(m.type, m.stream, m.global_position) for m in messages]))

    def on_runs(sender, run_ids, **kwargs):
        received.append(("runs", sorted(str(pk) for pk in run_ids)))

    signals.messages_appended.connect(on_messages)
    signals.runs_changed.connect(on_runs)
    yield received
    signals.messages_appended.disconnect(on_messages)
    signals.runs_changed.disconnect(on_runs)


def test_a_command_announces_its_stored_messages_and_then_each_handler_run(domain, book, heard):
    order_id = domain.process(
        PlaceOrder(customer_name="Ada", items=[{"book_id": str(book.id), "quantity": 1}])
    )
    heard.clear()
    domain.process(ConfirmOrder(order_id=str(order_id)))

    kind, stored = heard[0]
    assert kind == "messages"
    assert [type_ for type_, _, _ in stored] == [
        "warehouse.ConfirmOrder.v1",
        "warehouse.OrderConfirmed.v1",
    ]
    assert stored[0][1] == f"warehouse::order:command-{order_id}"
    assert stored[1][1] == f"warehouse::order-{order_id}"
    assert stored[0][2] < stored[1][2]  # global positions, in order
    # The notification handler's run was announced when its own transaction committed.
    run = HandlerRun.objects.get(message__type="warehouse.OrderConfirmed.v1")
    assert run.status == RunStatus.SUCCEEDED
    assert heard[1:] == [("runs", [str(run.pk)])]


def test_nothing_is_announced_for_a_transaction_that_rolls_back(domain, book, heard):
    heard.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        domain.process(
            PlaceOrder(customer_name="Ada", items=[{"book_id": str(book.id), "quantity": 1}])
        )
        raise RuntimeError("the caller's outer transaction fails")
    assert heard == []


def test_a_worker_announces_the_runs_it_leases_and_their_outcomes(domain, book, heard):
    order_id = domain.process(
        PlaceOrder(customer_name="Ada", items=[{"book_id": str(book.id), "quantity": 1}])
    )
    domain.config["event_processing"] = "async"  # the fixture restores it
    domain.process(ConfirmOrder(order_id=str(order_id)))
    run = HandlerRun.objects.get(message__type="warehouse.OrderConfirmed.v1")
    assert run.status == RunStatus.PENDING
    heard.clear()

    assert Worker(domain=domain, commit_window=0).drain() == 1

    # Leased (the dashboard shows it running), then its outcome at the commit.
    assert heard == [("runs", [str(run.pk)]), ("runs", [str(run.pk)])]
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
