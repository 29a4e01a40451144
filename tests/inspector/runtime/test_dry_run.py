"""Dry run on the warehouse (inspector/runtime/dry_run.py): a replay's outcome, rows, events,
runs and emails, with nothing kept: every table's row count, the run's own row and the mail
outbox stay as they were."""

import threading

import pytest
from django.apps import apps
from django.core import mail
from django.db import connection
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from inspector import current_domain, handle
from inspector.exceptions import IncorrectUsageError, ValidationError
from inspector.models import HandlerRun, HandlerRunReplay, Message, RunStatus
from inspector.runtime.dry_run import dry_run
from inspector.runtime.unit_of_work import unit_of_work
from tests.warehouse.commands import AdjustStock, ConfirmOrder, PlaceOrder, ShipOrder
from tests.warehouse.events import OrderShipped, StockAdjusted
from tests.warehouse.models import Inventory, Order, Switch

pytestmark = pytest.mark.django_db

INVENTORY = "warehouse.InventoryEventHandler"
NOTIFY = "warehouse.OrderNotificationHandler"
RUN_FIELDS = ("status", "attempts", "updated_at", "available_at", "error_type", "traceback")


def _counts():
    return {model._meta.label: model._base_manager.count() for model in apps.get_models()}


def _run_row(run):
    return HandlerRun.objects.filter(pk=run.pk).values(*RUN_FIELDS).get()


@pytest.fixture
def unchanged():
    """Check that the dry run left every table, the run's row and the outbox as they were."""

    def check(run):
        before, row = _counts(), _run_row(run)

        def after():
            assert _counts() == before
            assert _run_row(run) == row
            assert mail.outbox == []

        return after

    return check


def _give_up(run, error="inspector.exceptions.DomainError"):
    """The run as the worker leaves it after its last attempt: dead."""
    HandlerRun.objects.filter(pk=run.pk).update(
        status=RunStatus.DEAD,
        attempts=4,
        error_type=error,
        error_message="it failed",
        traceback="Traceback (most recent call last): ...",
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    run.refresh_from_db()
    return run


@pytest.fixture
def shipped(domain, add_book, django_capture_on_commit_callbacks):
    """Ship an order for `quantity` copies of a new book (10 in stock); return the book and
    the order's runs by handler, left pending (events go to workers, which do not run)."""

    def ship(quantity=12, *, title="Dune", email="alice@example.com"):
        with django_capture_on_commit_callbacks(execute=True):  # sync: its inventory
            book = add_book(title=title)
        domain.config["event_processing"] = "async"
        order_id = domain.process(
            PlaceOrder(
                customer_name="Alice",
                customer_email=email,
                items=[{"book_id": str(book.id), "quantity": quantity}],
            )
        )
        domain.process(ConfirmOrder(order_id=order_id))
        domain.process(ShipOrder(order_id=order_id))
        shipped = Message.objects.get(type=OrderShipped._type, data__order_id=str(order_id))
        return book, {run.handler: run for run in HandlerRun.objects.filter(message=shipped)}

    return ship


def test_not_inside_a_unit_of_work_which_would_keep_what_it_raises(shipped, domain, unchanged):
    _book, runs = shipped(quantity=12)
    run = _give_up(runs[INVENTORY])
    check = unchanged(run)
    with pytest.raises(IncorrectUsageError), unit_of_work(domain):
        dry_run(run)
    check()


def test_a_dead_run_that_still_fails_says_so_and_changes_nothing(shipped, unchanged):
    book, runs = shipped(quantity=12)
    run = _give_up(runs[INVENTORY])
    check = unchanged(run)

    result = dry_run(run)

    check()
    assert result.outcome == "failed" and not result.succeeded
    assert result.error_type == "inspector.exceptions.DomainError"
    assert result.error_message == "Not enough stock of 'Dune': 10 in stock, 12 requested"
    assert "adjust_stock" in result.traceback and "DomainError" in result.traceback
    assert result.changes == () and result.messages == () and result.runs == ()
    assert result.emails == () and not result.edited


def test_after_restocking_it_would_succeed_with_the_stock_change_and_its_event(
    shipped, extra_handlers, unchanged, domain
):
    @handle(StockAdjusted)
    def on_stock_adjusted(self, event):
        pass

    extra_handlers(
        type("StockWatcher", (), {"on_stock_adjusted": on_stock_adjusted}), part_of=Inventory
    )
    book, runs = shipped(quantity=12)
    run = _give_up(runs[INVENTORY])
    domain.process(AdjustStock(book_id=str(book.id), amount=5))  # 15 in stock now
    inventory = Inventory.objects.get(book_id=book.id)
    check = unchanged(run)

    result = dry_run(run)

    check()
    assert Inventory.objects.get(book_id=book.id).in_stock == 15
    assert result.outcome == "succeeded" and result.error_type == ""
    (changes,) = result.changes
    assert changes.label == "warehouse.inventory" and changes.verbose_name == "inventory"
    assert changes.inserted == () and changes.deleted == ()
    (row,) = changes.updated
    assert row.pk == inventory.pk
    assert row.changes == {
        "in_stock": (15, 3),
        "version": (inventory.version, inventory.version + 1),
    }
    (event,) = result.messages
    assert event.type == StockAdjusted._type and event.kind == "event"
    assert event.stream == f"warehouse::inventory-{inventory.pk}"
    assert event.data == {
        "book_id": str(book.id),
        "title": "Dune",
        "amount": -12,
        "in_stock": 3,
    }
    (queued,) = result.runs
    assert queued.handler == "warehouse.StockWatcher" and queued.message_id == event.id
    assert queued.status == RunStatus.PENDING
    assert result.unitemized == ()
    assert result.duration_us > 0


def test_the_notification_handler_mails_into_the_dry_run_only(shipped, unchanged, settings):
    settings.WAREHOUSE_MAIL_GATEWAY_DOWN = True  # it failed while the gateway was down
    _book, runs = shipped(quantity=1, email="alice@example.com")
    run = _give_up(runs[NOTIFY], "tests.warehouse.notifications.GatewayError")
    check = unchanged(run)

    still_down = dry_run(run)
    settings.WAREHOUSE_MAIL_GATEWAY_DOWN = False
    result = dry_run(run)

    check()
    assert still_down.outcome == "failed"
    assert still_down.error_type == "tests.warehouse.notifications.GatewayError"
    assert still_down.emails == ()
    assert result.outcome == "succeeded"
    (email,) = result.emails
    assert email.to == ("alice@example.com",) and email.from_email == "orders@warehouse.local"
    assert email.subject == "Your warehouse order was shipped"
    assert email.body.endswith("shipped to Alice")
    # The Notification row it writes with the ORM, before it sends, is listed and not kept.
    (notifications,) = result.changes
    assert notifications.label == "warehouse.notification"
    (row,) = notifications.inserted
    assert row.values["subject"] == "Your warehouse order was shipped"
    assert row.values["recipient"] == "alice@example.com"


def test_a_payload_given_runs_instead_of_the_stored_one_and_is_validated(shipped, unchanged):
    book, runs = shipped(quantity=12)
    run = _give_up(runs[INVENTORY])
    stored = dict(run.message.data)
    fixed = {**stored, "items": [{**stored["items"][0], "quantity": 2}]}
    check = unchanged(run)

    result = dry_run(run, data=fixed)
    with pytest.raises(ValidationError) as invalid:
        dry_run(run, data={**stored, "customer_name": None})

    check()
    assert result.outcome == "succeeded" and result.edited
    assert result.data["items"][0]["quantity"] == 2
    (row,) = result.changes[0].updated
    assert row.changes["in_stock"] == (10, 8)
    assert "customer_name" in invalid.value.errors
    assert Message.objects.get(pk=run.message_id).data == stored  # the store as it was


def test_a_run_with_an_edit_runs_with_the_edited_payload_as_a_replay_would(shipped, unchanged):
    book, runs = shipped(quantity=12)
    run = _give_up(runs[INVENTORY])
    stored = run.message.data
    edit = HandlerRunReplay.objects.create(
        run=run,
        action=HandlerRunReplay.Action.REPLAY,
        at=timezone.now(),
        previous_status=RunStatus.DEAD,
        attempts_before=4,
        original_data=stored,
        edited_data={**stored, "items": [{**stored["items"][0], "quantity": 4}]},
    )
    HandlerRun.objects.filter(pk=run.pk).update(edit=edit)
    run.refresh_from_db()
    check = unchanged(run)

    result = dry_run(run)

    check()
    assert result.outcome == "succeeded" and result.edited
    assert result.changes[0].updated[0].changes["in_stock"] == (10, 6)


def test_the_handler_knows_it_is_in_a_dry_run_and_orm_writes_are_itemized(
    shipped, extra_handlers, unchanged
):
    seen = []

    @handle(OrderShipped)
    def on_order_shipped(self, event):
        seen.append(current_domain.dry_run)
        elsewhere = threading.Thread(target=lambda: seen.append(current_domain.dry_run))
        elsewhere.start()  # another thread, meanwhile, is not in the dry run
        elsewhere.join()
        Switch.objects.filter(name="bulk").update(on=True)  # no signal: unitemized
        Switch.objects.bulk_create(
            [Switch(name="bulk"), Switch(name="more")], ignore_conflicts=True
        )
        Switch.objects.get(name="gone").delete()
        flag = Switch.objects.get(name="flag")
        flag.on = True
        flag.save()
        Switch.objects.create(name="new", on=True)

    extra_handlers(type("Prober", (), {"on_order_shipped": on_order_shipped}), part_of=Order)
    Switch.objects.bulk_create(
        [Switch(name="bulk"), Switch(name="gone", on=True), Switch(name="flag")]
    )
    _book, runs = shipped(quantity=1)
    run = _give_up(runs["warehouse.Prober"])
    check = unchanged(run)

    assert current_domain.dry_run is False
    result = dry_run(run)

    check()
    assert seen == [True, False] and current_domain.dry_run is False
    # The ORM's signals were heard only meanwhile: the repository's lean inserts are back.
    assert not any(signal.has_listeners(Inventory) for signal in (pre_save, post_save))
    assert result.outcome == "succeeded", result.traceback
    (switches,) = result.changes
    assert [row.values for row in switches.inserted] == [{"name": "new", "on": True}]
    assert [(row.pk, row.changes) for row in switches.updated] == [("flag", {"on": (False, True)})]
    assert [(row.pk, row.values) for row in switches.deleted] == [
        ("gone", {"name": "gone", "on": True})
    ]
    assert [(w.table, w.statement, w.rows) for w in result.unitemized] == [
        (Switch._meta.db_table, "INSERT", 1),  # "more"; "bulk" was there
        (Switch._meta.db_table, "UPDATE", 1),
    ]
    assert Switch.objects.get(name="bulk").on is False


@pytest.mark.django_db(transaction=True)
def test_outside_a_test_transaction_nothing_commits_and_sync_dispatch_never_runs(
    domain, add_book, extra_handlers
):
    """Sync processing runs queued runs at the commit: the dry run's rollback drops them."""
    watched = []

    @handle(StockAdjusted)
    def on_stock_adjusted(self, event):
        watched.append(event)

    extra_handlers(
        type("SyncWatcher", (), {"on_stock_adjusted": on_stock_adjusted}), part_of=Inventory
    )
    book = add_book(title="Emma")
    order_id = domain.process(
        PlaceOrder(customer_name="Bo", items=[{"book_id": str(book.id), "quantity": 12}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    domain.process(ShipOrder(order_id=order_id))  # sync: the inventory run fails at once
    run = HandlerRun.objects.get(handler=INVENTORY, message__type=OrderShipped._type)
    assert run.status == RunStatus.FAILED
    domain.process(AdjustStock(book_id=str(book.id), amount=10))
    watched.clear()
    mail.outbox.clear()  # the confirmation and shipping emails, sent for real
    before, row = _counts(), _run_row(run)

    result = dry_run(run)

    assert connection.in_atomic_block is False
    assert result.outcome == "succeeded" and len(result.runs) == 1
    assert watched == []  # the queued run's handler never ran
    assert _counts() == before and _run_row(run) == row and mail.outbox == []
    assert Inventory.objects.get(book_id=book.id).in_stock == 20
