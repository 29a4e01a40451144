"""The store indexer: exact counts from its tallies, and steps that are idempotent and safe
beside another indexer (payload search through its index: dashboard/test_payload_search.py)."""

import io
import re
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inspector import services
from inspector.dashboard import selectors
from inspector.models import (
    HandlerAttempt,
    HandlerRun,
    IndexerPosition,
    Message,
    OpenRun,
    PayloadKey,
    PayloadValue,
    RunStatus,
    RunTally,
)
from inspector.readmodel import indexer, payload_index, tallies

pytestmark = pytest.mark.django_db(transaction=True)

INVENTORY = "warehouse.InventoryEventHandler"
NOTIFY = "warehouse.OrderNotificationHandler"


@pytest.fixture
def operator(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("operator", "op@example.com"))
    return client


# Counts -----------------------------------------------------------------------------------------


def brute_categories():
    return {
        row["category"]: row["n"]
        for row in Message.objects.order_by().values("category").annotate(n=Count("*"))
    }


def brute_runs():
    counts = {}
    for row in HandlerRun.objects.order_by().values("handler", "status").annotate(n=Count("*")):
        counts.setdefault(row["handler"], {})[row["status"]] = row["n"]
    return counts


def brute_histogram():
    found = {}
    runs = HandlerRun.objects.filter(status=RunStatus.SUCCEEDED, duration_us__isnull=False)
    for handler, duration in runs.values_list("handler", "duration_us"):
        entry = found.setdefault(handler, [[0] * len(tallies.BOUNDS_US), 0, 0])
        for i, bound in enumerate(tallies.BOUNDS_US):
            if duration <= bound:
                entry[0][i] += 1
        entry[1] += 1
        entry[2] += duration
    return {h: (cumulative, n, total / 1_000_000) for h, (cumulative, n, total) in found.items()}


def assert_counts_exact():
    assert {row["category"]: row["messages"] for row in selectors.category_list()} == (
        brute_categories()
    )
    assert selectors.handler_run_counts() == brute_runs()
    snapshot = selectors.metrics_snapshot()
    assert {handler: (c, n, s) for handler, c, n, s in snapshot.durations} == brute_histogram()
    by_type = {
        row["type"]: row["n"]
        for row in Message.objects.order_by().values("type").annotate(n=Count("*"))
    }
    assert {name: n for name, _, n in snapshot.messages_by_type} == by_type


def test_counts_stay_exact_before_during_and_after_indexing(book, order):
    order(book, customer="Alice")
    over = order(book, customer="Bob", quantity=5000)  # its inventory run fails
    assert_counts_exact()  # nothing indexed: all live

    indexer.catch_up()
    assert RunTally.objects.exists()
    assert OpenRun.objects.exists()  # the failed inventory run
    assert_counts_exact()

    order(book, customer="Carol")  # beyond the indexer's position
    assert_counts_exact()

    failed = HandlerRun.objects.get(handler=INVENTORY, status=RunStatus.FAILED)
    assert f"warehouse::order-{over}" == failed.stream
    HandlerRun.objects.filter(pk=failed.pk).update(status=RunStatus.DEAD)  # retries ran out
    assert_counts_exact()
    services.handler_run_replay(run=failed)  # pending again
    assert_counts_exact()
    HandlerRun.objects.filter(pk=failed.pk).update(  # as a worker finishes it
        status=RunStatus.SUCCEEDED, duration_us=4200
    )
    assert_counts_exact()

    indexer.catch_up()  # folds the ended run into the tallies
    assert not OpenRun.objects.filter(run_id=failed.pk).exists()
    assert_counts_exact()


def test_a_dead_run_settles_and_comes_back_when_an_operator_replays_or_resolves_it(book, order):
    order(book, customer="Bob", quantity=5000)
    order(book, customer="Carol", quantity=6000)
    indexer.catch_up()
    first, second = HandlerRun.objects.filter(handler=INVENTORY, status=RunStatus.FAILED)
    HandlerRun.objects.filter(pk__in=[first.pk, second.pk]).update(status=RunStatus.DEAD)
    indexer.catch_up()  # both dead: folded into the tally, no longer open
    assert not OpenRun.objects.exists()
    assert RunTally.objects.get(handler=INVENTORY, status=RunStatus.DEAD).runs == 2
    assert_counts_exact()

    services.handler_run_replay(run=first)
    assert OpenRun.objects.filter(run_id=first.pk).exists()
    assert_counts_exact()
    services.handler_run_resolve(run=second)
    assert_counts_exact()
    HandlerRun.objects.filter(pk=first.pk).update(status=RunStatus.SUCCEEDED, duration_us=900)
    assert_counts_exact()
    indexer.catch_up()
    assert not OpenRun.objects.exists()
    assert RunTally.objects.get(handler=INVENTORY, status=RunStatus.DEAD).runs == 0
    assert_counts_exact()


def test_a_step_that_read_a_run_before_an_operator_moved_it_is_read_again(book, order):
    order(book, customer="Bob", quantity=5000)
    run = HandlerRun.objects.get(handler=INVENTORY, status=RunStatus.FAILED)
    HandlerRun.objects.filter(pk=run.pk).update(status=RunStatus.DEAD)
    stale = indexer.read_step()  # reads the run as dead
    services.handler_run_replay(run=run)  # pending now
    assert indexer.apply_step(stale) is False
    indexer.catch_up()
    assert OpenRun.objects.filter(run_id=run.pk).exists()
    assert_counts_exact()


def test_a_resolved_run_leaves_the_open_runs_for_the_tally(book, order):
    order(book, customer="Bob", quantity=5000)
    indexer.catch_up()
    failed = HandlerRun.objects.get(handler=INVENTORY, status=RunStatus.FAILED)
    services.handler_run_resolve(run=failed, reason="fixed by hand")
    indexer.catch_up()
    assert not OpenRun.objects.exists()
    assert RunTally.objects.get(handler=INVENTORY, status=RunStatus.RESOLVED).runs == 1
    assert_counts_exact()


def test_pages_show_the_exact_counts(operator, book, order):
    order(book, customer="Alice")
    indexer.catch_up()
    order(book, customer="Bob")
    response = operator.get(reverse("inspector:streams"))
    listed = {row["category"]: row["messages"] for row in response.context["categories"]}
    assert listed == brute_categories()
    orders = listed["warehouse::order"]
    assert re.search(rf'<td class="number">{orders}</td>', response.content.decode())
    rows = {h.name: h for h in operator.get(reverse("inspector:handlers")).context["handlers"]}
    assert (
        rows[NOTIFY].processed
        == HandlerRun.objects.filter(handler=NOTIFY, status=RunStatus.SUCCEEDED).count()
    )


def test_the_last_error_is_the_newest_attempt_indexed_or_not(book, order, operator):
    order(book, customer="Bob", quantity=5000)
    indexer.catch_up()
    first = HandlerAttempt.objects.get()
    assert selectors.last_errors()[INVENTORY].at == first.finished_at
    order(book, customer="Carol", quantity=6000)  # a newer failure, not indexed yet
    newest = HandlerAttempt.objects.latest("pk")
    assert selectors.last_errors()[INVENTORY].at == newest.finished_at
    indexer.catch_up()
    assert selectors.last_errors()[INVENTORY].at == newest.finished_at


# The indexer itself ------------------------------------------------------------------------------


def index_state():
    return {
        "values": sorted(PayloadValue.objects.values_list("digest", "global_position")),
        "keys": sorted(PayloadKey.objects.values_list("category", "type", "key")),
        "tallies": sorted(
            RunTally.objects.values_list("handler", "status", "runs", "timed", "duration_us_sum")
        ),
        "messages": tallies.message_counts(),
        "open": sorted(str(pk) for pk in OpenRun.objects.values_list("run_id", flat=True)),
    }


def test_indexing_again_changes_nothing(book, order):
    order(book, customer="Alice")
    order(book, customer="Bob", quantity=5000)
    indexer.catch_up()
    before = index_state()
    assert indexer.index_step() is None  # nothing left
    assert indexer.catch_up() == 0
    assert index_state() == before
    payloads = Message.objects.values_list("data", flat=True)
    assert len(before["values"]) == sum(len(payload_index.fields_of(d)) for d in payloads)


def test_two_indexers_interleaved_apply_each_batch_once(book, order):
    order(book, customer="Alice")
    order(book, customer="Bob", quantity=5000)
    first, second = indexer.read_step(), indexer.read_step()  # both read the same batch
    assert first.messages == second.messages > 0

    assert indexer.apply_step(first) is True
    assert indexer.apply_step(second) is False  # the position moved: rolled back
    assert_counts_exact()
    once = index_state()

    # Both see the same open run end; only one may fold it into the tallies.
    HandlerRun.objects.filter(handler=INVENTORY, status=RunStatus.FAILED).update(
        status=RunStatus.SUCCEEDED, duration_us=1500
    )
    first, second = indexer.read_step(), indexer.read_step()
    assert first.settled and first.settled == second.settled
    assert indexer.apply_step(first) is True
    assert indexer.apply_step(second) is False
    assert_counts_exact()
    assert index_state()["values"] == once["values"]
    assert IndexerPosition.objects.get(name=payload_index.INDEXER).steps == 2


def test_small_batches_index_the_same_as_one_big_one(book, order):
    for customer in ("Alice", "Bob", "Carol"):
        order(book, customer=customer)
    indexer.catch_up(batch=2)
    small = index_state()
    indexer.rebuild()
    assert payload_index.indexed_position() == -1
    assert_counts_exact()  # forgotten: everything counted live
    indexer.catch_up(batch=1000)
    assert index_state() == small


def test_concurrent_indexer_threads_index_everything_once(book, order):
    for n in range(6):
        order(book, customer=f"Customer {n}")
    loops = [indexer.Indexer(poll=0.05, batch=3) for _ in range(2)]
    threads = [threading.Thread(target=loop.run) for loop in loops]
    for thread in threads:
        thread.start()
    try:
        last = Message.objects.order_by("-global_position").first().global_position
        deadline = time.monotonic() + 30
        while payload_index.indexed_position() < last and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for loop in loops:
            loop.stop()
        for thread in threads:
            thread.join(10)
    assert payload_index.indexed_position() == last
    together = index_state()
    assert_counts_exact()
    indexer.rebuild()
    indexer.catch_up()
    assert index_state() == together


def test_the_index_store_command_catches_up(book, order):
    order(book, customer="Alice")
    out = io.StringIO()
    call_command("index_store", "--once", stdout=out)
    assert out.getvalue().startswith("Indexed ")
    last = Message.objects.order_by("-global_position").first().global_position
    assert payload_index.indexed_position() == last


def test_an_indexer_that_lost_a_step_follows_the_other_until_it_stops(book, order, monkeypatch):
    order(book, customer="Alice")
    follower = indexer.Indexer(poll=0.5, batch=1, backoff=7)
    read_step = indexer.read_step

    def overtaken(**options):
        step = read_step(**options)
        indexer.apply_step(read_step(batch=1))  # another process's indexer writes first
        return step

    monkeypatch.setattr(indexer, "read_step", overtaken)
    assert follower.step_once() == 7  # lost the step: backs off
    monkeypatch.setattr(indexer, "read_step", read_step)

    indexer.index_step(batch=1)  # the other indexer is still stepping
    with CaptureQueriesContext(connection) as queries:
        assert follower.step_once() == 7
    assert len(queries) == 1  # it only looked at the position

    before = payload_index.indexed_position()
    assert follower.step_once() in (0, 0.5)  # the position stood still: it steps itself
    assert payload_index.indexed_position() > before
    indexer.catch_up()
    assert_counts_exact()
