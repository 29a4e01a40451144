"""The event store: gapless stream positions, global order, optimistic concurrency."""

import threading

import pytest
from django.db import connection

from inspector.exceptions import ConcurrencyError
from inspector.models import HandlerRun, Message
from inspector.runtime import store
from inspector.runtime.unit_of_work import unit_of_work
from tests.warehouse.commands import ConfirmOrder, PlaceOrder
from tests.warehouse.events import StockAdjusted
from tests.warehouse.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


def in_thread(fn):
    """Run fn on another thread, hence another database connection; return what it returned."""
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed back to the test
            result["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    if "error" in result:
        raise result["error"]
    return result.get("value")


def adjusted(n):
    return StockAdjusted(book_id="b", title="t", amount=n, in_stock=n)


def test_positions_are_gapless_per_stream_and_global_positions_follow_commits(domain, add_book):
    books = [add_book(title=f"Book {n}") for n in range(3)]
    order_id = domain.process(
        PlaceOrder(customer_name="Alice", items=[{"book_id": str(books[0].id), "quantity": 1}])
    )
    domain.process(ConfirmOrder(order_id=order_id))

    rows = list(Message.objects.order_by("global_position"))
    assert [m.global_position for m in rows] == list(range(len(rows)))
    by_stream = {}
    for row in rows:
        by_stream.setdefault(row.stream, []).append(row.position)
    for positions in by_stream.values():
        assert positions == list(range(len(positions)))
    order_stream = Order.objects.get(pk=order_id).stream
    assert [m.type for m in store.read_stream(order_stream)] == [
        "warehouse.OrderPlaced.v1",
        "warehouse.OrderConfirmed.v1",
    ]
    assert store.last_message(order_stream).position == 1
    assert [m.category for m in store.read_category("warehouse::book")] == ["warehouse::book"] * 3
    assert [m.global_position for m in store.read_all(after_global_position=2)] == list(
        range(3, len(rows))
    )


def test_new_ids_sort_in_the_order_they_were_made(domain, add_book):
    """Messages, runs, correlations and aggregates get UUIDv7 ids, so the indexes keyed by
    them grow at their right edge instead of at a random page of a big store."""
    books = [add_book(title=f"Book {n}") for n in range(3)]
    order_id = domain.process(
        PlaceOrder(customer_name="Alice", items=[{"book_id": str(books[0].id), "quantity": 1}])
    )
    domain.process(ConfirmOrder(order_id=order_id))

    def in_order(ids):
        return len(ids) > 1 and all(i.version == 7 for i in ids) and ids == sorted(ids)

    messages = list(Message.objects.order_by("global_position"))
    assert len(messages) >= 8
    assert in_order([m.id for m in messages])
    # A message's runs, then the next message's.
    runs = sorted(HandlerRun.objects.all(), key=lambda run: (run.global_position, run.id))
    assert len(runs) >= 5 and in_order([run.id for run in runs])
    correlations = list(dict.fromkeys(m.correlation_id for m in messages))
    assert len(correlations) == 5 and in_order(correlations)  # three books, place, confirm
    assert in_order([book.id for book in books] + [Order.objects.get(pk=order_id).id])


def test_stale_expected_version_from_a_second_connection_writes_nothing(domain):
    stream = "warehouse::inventory-abc"
    with unit_of_work(domain) as uow:
        uow.append(adjusted(1), stream=stream, expected_version=-1)
    seen = store.last_message(stream).position  # this connection saw position 0

    def other_writer():
        with unit_of_work(domain) as uow:
            uow.append(adjusted(2), stream=stream, expected_version=0)

    in_thread(other_writer)
    before = Message.objects.count()
    with pytest.raises(ConcurrencyError), unit_of_work(domain) as uow:
        uow.append(adjusted(3), stream=stream, expected_version=seen)
        uow.append(adjusted(4), stream="warehouse::inventory-other")
    assert Message.objects.count() == before
    assert [m.data["amount"] for m in store.read_stream(stream)] == [1, 2]


def test_two_connections_shipping_the_same_order_one_wins(domain, add_book):
    book = add_book()
    order_id = domain.process(
        PlaceOrder(customer_name="Alice", items=[{"book_id": str(book.id), "quantity": 3}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    barrier = threading.Barrier(2, timeout=20)
    outcomes = []

    def ship():
        repository = domain.repository_for(Order)
        order = repository.get(order_id)
        order.ship_order()
        barrier.wait()  # both have loaded and changed the same version
        try:
            repository.add(order)
            outcomes.append("shipped")
        except ConcurrencyError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=lambda: (ship(), connection.close())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes) == ["conflict", "shipped"]
    assert Message.objects.filter(type="warehouse.OrderShipped.v1").count() == 1
    inventory_runs = HandlerRun.objects.filter(handler="warehouse.InventoryEventHandler")
    assert [r.status for r in inventory_runs] == ["succeeded"]
    book.inventory.refresh_from_db()
    assert book.inventory.in_stock == 7  # stock dropped once


def test_repository_add_with_a_stale_aggregate_raises_and_writes_nothing(domain, add_book):
    book = add_book()
    order_id = domain.process(
        PlaceOrder(customer_name="Alice", items=[{"book_id": str(book.id), "quantity": 1}])
    )
    repository = domain.repository_for(Order)
    stale = repository.get(order_id)
    domain.process(ConfirmOrder(order_id=order_id))
    before = Message.objects.count()
    stale.confirm_order()
    with pytest.raises(ConcurrencyError):
        repository.add(stale)
    assert Message.objects.count() == before
    assert Order.objects.get(pk=order_id).version == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement: PostgreSQL")
def test_a_unit_of_works_messages_runs_and_wake_up_are_one_statement_on_postgresql(
    domain, add_book, async_domain
):
    """Each statement is a round trip on PostgreSQL: the counter, the streams' last positions,
    the messages, their handler runs and the workers' NOTIFY go in one."""
    from django.test.utils import CaptureQueriesContext

    from tests.warehouse.events import OrderShipped

    book = add_book()
    stream = book.stream  # has BookAdded at position 0
    with CaptureQueriesContext(connection) as queries, unit_of_work(domain) as uow:
        uow.append(adjusted(1), stream=stream)
        uow.append(adjusted(2), stream="warehouse::inventory-new", new_stream=True)
        uow.append(
            OrderShipped(order_id="o", customer_name="c", items=[{"book_id": "b", "quantity": 1}]),
            stream="warehouse::order-o",
        )
        uow.append(adjusted(3), stream=stream)
    writes = [q["sql"] for q in queries.captured_queries if "inspector_" in q["sql"]]
    assert len(writes) == 1, writes
    assert "pg_notify" in writes[0]  # the OrderShipped runs are the workers' (async domain)

    rows = list(Message.objects.filter(global_position__gt=0).order_by("global_position"))
    assert [(m.stream, m.position) for m in rows[-4:]] == [
        (stream, 1),
        ("warehouse::inventory-new", 0),
        ("warehouse::order-o", 0),
        (stream, 2),
    ]
    positions = [m.global_position for m in Message.objects.order_by("global_position")]
    assert positions == list(range(positions[0], positions[0] + len(positions)))  # gapless
    # A command's own handler record, written in the same statement, has its message's place.
    placed = domain.process(
        PlaceOrder(customer_name="B", items=[{"book_id": str(book.id), "quantity": 1}])
    )
    command = Message.objects.get(kind="command", type="warehouse.PlaceOrder.v1")
    record = HandlerRun.objects.get(message=command)
    assert placed and (record.stream, record.message_type, record.position) == (
        command.stream,
        command.type,
        command.position,
    )
    assert record.global_position == command.global_position
    runs = HandlerRun.objects.filter(message__stream="warehouse::order-o")
    assert runs.exists()
    for run in runs:
        assert (run.stream, run.position, run.global_position, run.message_type) == (
            "warehouse::order-o",
            0,
            rows[-2].global_position,
            "warehouse.OrderShipped.v1",
        )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements: PostgreSQL")
def test_the_outbox_statement_is_planned_once_not_at_every_append_on_postgresql(domain):
    """psycopg prepares a statement run five times on a connection; PostgreSQL then plans it
    for any parameters once, unless that plan looks dearer than the ones for given values,
    when it plans it again at every execution (half of what the statement cost)."""
    if connection.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        pytest.skip("statements are prepared only with prepare_threshold (conf.postgresql_options)")
    for n in range(12):
        with unit_of_work(domain) as uow:
            uow.append(adjusted(n), stream="warehouse::inventory-plan")
            uow.append(adjusted(n), stream="warehouse::inventory-other")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            ["WITH seq AS (INSERT INTO inspector_storesequence%"],
        )
        plans = cursor.fetchall()
    assert len(plans) == 1, plans  # one shape of unit of work, one prepared statement
    generic, custom = plans[0]
    assert custom <= 5 and generic >= 12 - 5 - custom, plans
