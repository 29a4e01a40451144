"""A stored message its class no longer accepts is a failed run, not a worker loop error: it is
retried, then dead, and edit-and-replay fixes it."""

import uuid

import pytest
from django.utils import timezone

from inspector.models import HandlerAttempt, HandlerRun, Message
from inspector.runtime.unit_of_work import unit_of_work
from inspector.services import handler_run_edit_replay
from tests.inspector.edits import INVENTORY, corrected, drain
from tests.warehouse.events import OrderShipped
from tests.warehouse.models import Inventory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_message_its_class_refuses_fails_its_run_and_edit_and_replay_fixes_it(
    async_domain, stocked_book, django_user_model
):
    order_id = str(uuid.uuid4())
    with unit_of_work(async_domain) as uow:
        uow.append(
            OrderShipped(
                order_id=order_id,
                customer_name="Alice",
                items=[{"book_id": str(stocked_book.id), "quantity": 2}],
            ),
            stream=f"warehouse::order-{order_id}",
        )
    # What an older version of the class wrote, or a hand-edited row: no `items` any more.
    message = Message.objects.get(data__order_id=order_id)
    Message.objects.filter(pk=message.pk).update(
        data={"order_id": order_id, "customer_name": "Alice"}
    )
    run = HandlerRun.objects.get(handler=INVENTORY, message=message)

    for _ in range(10):
        drain()
        run.refresh_from_db()
        if run.status == "dead":
            break
        HandlerRun.objects.filter(pk=run.pk).update(available_at=timezone.now())
    assert run.status == "dead"
    assert run.error_type == "inspector.exceptions.ValidationError"
    assert "items" in run.error_message
    attempts = HandlerAttempt.objects.filter(run=run)
    assert attempts.count() == run.attempts and run.failure_group

    operator = django_user_model.objects.create_user("ops")
    handler_run_edit_replay(
        run=run, data=corrected(run, stocked_book), user=operator, reason="items were lost"
    )
    drain()
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert Inventory.objects.get(book=stocked_book).in_stock == 8
