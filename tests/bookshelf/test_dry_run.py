"""Dry run on the bookshelf: an oversold order's inventory run would fail with the stock error;
after AdjustStock it would take the books off the shelf and raise StockAdjusted. Nothing
changes either time."""

import pytest
from django.apps import apps
from django.core import mail

from bookshelf.commands import AdjustStock
from bookshelf.events import StockAdjusted
from bookshelf.models import Inventory
from inspector.models import HandlerRun, RunStatus
from inspector.runtime.dry_run import dry_run

pytestmark = pytest.mark.django_db


def _counts():
    return {model._meta.label: model._base_manager.count() for model in apps.get_models()}


def test_an_oversold_orders_inventory_run_fails_then_after_restocking_would_succeed(
    domain, add_book, place_order, advance, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # sync dispatch, as in the shop
        book = add_book(title="Dune")
        order = place_order([(book, 12)])  # 10 in stock
        advance(order, "SHIPPED")
    run = HandlerRun.objects.get(
        handler="bookshelf.InventoryEventHandler", message__data__order_id=str(order.id)
    )
    assert run.status == RunStatus.FAILED
    mail.outbox.clear()  # the order's own emails, sent for real
    run_row = HandlerRun.objects.filter(pk=run.pk).values().get()
    before = _counts()

    failing = dry_run(run)

    assert failing.outcome == "failed"
    assert failing.error_message == "Not enough stock of 'Dune': 10 in stock, 12 requested"
    assert _counts() == before

    domain.process(AdjustStock(book_id=str(book.id), amount=5))
    inventory = Inventory.objects.get(book_id=book.id)
    before = _counts()

    succeeding = dry_run(run)

    assert succeeding.outcome == "succeeded"
    (changes,) = succeeding.changes
    assert changes.label == "bookshelf.inventory"
    (row,) = changes.updated
    assert row.pk == inventory.pk and row.changes["quantity"] == (15, 3)
    (event,) = succeeding.messages
    assert event.type == StockAdjusted._type and event.data["quantity"] == 3
    assert _counts() == before and mail.outbox == []
    assert Inventory.objects.get(book_id=book.id).quantity == 15
    assert HandlerRun.objects.filter(pk=run.pk).values().get() == run_row
