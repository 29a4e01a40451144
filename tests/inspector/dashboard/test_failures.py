"""Failure groups on the warehouse: which failures are one group, the key stored as the failure
is recorded (sync and worker), exact counts through the indexer, the failures and group pages,
their actions and permissions, /metrics and the handlers page's link."""

import importlib
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from html import unescape

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from inspector import handle
from inspector.dashboard import selectors
from inspector.models import (
    FailureGroup,
    FailureHour,
    FailureStream,
    HandlerAttempt,
    HandlerRun,
    HandlerRunReplay,
    ReplayJob,
)
from inspector.readmodel import failures, indexer
from inspector.runtime.unit_of_work import unit_of_work
from inspector.services import handler_runs_replay, handler_runs_resolve
from inspector.workers.replay_jobs import ReplayJobRunner
from inspector.workers.worker import Worker
from tests.warehouse.commands import ConfirmOrder, PlaceOrder, ShipOrder
from tests.warehouse.models import Inventory, Switch
from tests.warehouse.probe import Ping

pytestmark = pytest.mark.django_db(transaction=True)

INVENTORY = "warehouse.InventoryEventHandler"
NOTIFY = "warehouse.OrderNotificationHandler"
DOMAIN_ERROR = "inspector.exceptions.DomainError"
HOSTILE = "<script>alert('x')</script>"
HTMX = {"HTTP_HX_REQUEST": "true"}


# Fixtures -------------------------------------------------------------------------------------


def _login(client, django_user_model, name, *, staff=True, perms=()):
    user = django_user_model.objects.create_user(name, password="not-used", is_staff=staff)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="inspector", codename__in=perms)
    )
    client.force_login(user)
    return user


@pytest.fixture
def operator(client, django_user_model):
    """Staff who may replay and resolve runs."""
    client.user = _login(client, django_user_model, "operator", perms=["replay_handlerrun"])
    return client


@pytest.fixture
def watcher(client, django_user_model):
    """Staff without the replay permission."""
    _login(client, django_user_model, "watcher")
    return client


@pytest.fixture
def oversell(domain, add_book):
    """Ship an order of more copies than a new book's stock (10): its inventory run fails."""

    def oversell(title, quantity=12, *, customer="Alice", lose_inventory=False):
        book = add_book(title=title)
        Worker(worker_id="test-worker").drain()  # its inventory, when events are async
        if lose_inventory:  # the handler finds none: ObjectNotFound instead
            Inventory.objects.filter(book_id=book.id).delete()
        order_id = domain.process(
            PlaceOrder(
                customer_name=customer, items=[{"book_id": str(book.id), "quantity": quantity}]
            )
        )
        domain.process(ConfirmOrder(order_id=order_id))
        domain.process(ShipOrder(order_id=order_id))
        Worker(worker_id="test-worker", handlers=[INVENTORY]).drain()
        return HandlerRun.objects.get(handler=INVENTORY, message__data__order_id=str(order_id))

    return oversell


def fail_until_dead(run):
    """Retry a failed run at once until it is dead (retries: 3, so four attempts in all)."""
    for _ in range(10):
        run.refresh_from_db()
        if run.status == "dead":
            return run
        HandlerRun.objects.filter(pk=run.pk).update(available_at=timezone.now())
        Worker(worker_id="test-worker", handlers=[run.handler]).run_once()
    raise AssertionError(f"run stayed {run.status}")


def append_pings(domain, category, numbers, *, streams=1):
    with unit_of_work(domain) as uow:
        for n in numbers:
            uow.append(Ping(n=n), stream=f"{category}-{n % streams}")


def _raise_in_a(event):
    raise ValueError(f"bad ping {event.n}")


def _raise_in_b(event):
    raise ValueError(f"bad ping {event.n}")


class Frames:
    """Fails with the same exception and message, from one of two functions."""

    @handle(Ping)
    def on_ping(self, event):
        (_raise_in_a if event.n % 2 else _raise_in_b)(event)


class Hostile:
    @handle(Ping)
    def on_ping(self, event):
        raise RuntimeError(f"{HOSTILE} in ping {event.n}")


def group_rows(body):
    """{group key: the text of its row's cells} on the failures page."""
    rows = {}
    for key, row in re.findall(r'<tr id="group-([0-9a-f]+)".*?>(.*?)</tr>', body, re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        rows[key] = [" ".join(unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in cells]
    return rows


# Which failures are one group ----------------------------------------------------------------


def test_two_books_out_of_stock_are_one_group_recorded_with_the_failure(oversell):
    dune, emma = oversell("Dune"), oversell("Emma", 15)

    assert (dune.status, emma.status) == ("failed", "failed")
    assert "'Dune'" in dune.error_message and "'Emma'" in emma.error_message
    assert dune.failure_group and dune.failure_group == emma.failure_group
    group = FailureGroup.objects.get(key=dune.failure_group)
    assert (group.handler, group.error_type) == (INVENTORY, DOMAIN_ERROR)
    assert group.message == dune.error_message  # the first failure's, as it was
    assert group.first_seen == dune.finished_at
    # Every other run is fine and carries no group.
    assert set(
        HandlerRun.objects.exclude(pk__in=[dune.pk, emma.pk]).values_list(
            "failure_group", flat=True
        )
    ) == {""}


def test_another_exception_or_another_raising_function_is_another_group(
    domain, oversell, extra_handlers
):
    stock = oversell("Dune")
    lost = oversell("Lost", lose_inventory=True)  # ObjectNotFound, raised in the handler
    assert lost.error_type == "inspector.exceptions.ObjectNotFound"
    assert lost.failure_group != stock.failure_group

    extra_handlers(Frames, stream_category="probe::frames")
    append_pings(domain, "probe::frames", [1, 2, 3, 4])
    runs = list(HandlerRun.objects.filter(handler__endswith="Frames"))
    assert [run.status for run in runs] == ["failed"] * 4
    by_function = {}
    for run in runs:
        n = run.message.data["n"]
        by_function.setdefault(n % 2, set()).add(run.failure_group)
    assert len(by_function[0]) == len(by_function[1]) == 1  # same function, same group
    assert by_function[0] != by_function[1]  # same exception and message, other function


def test_a_worker_records_the_group_and_a_run_that_then_succeeds_leaves_it(async_domain):
    Switch.objects.create(name="flaky", on=True)
    append_pings(async_domain, "probe::flaky", [0, 1], streams=2)
    assert Worker(worker_id="test-worker").run_once() == 2  # one attempt each (then a backoff)
    flaky = list(HandlerRun.objects.filter(handler="warehouse.Flaky").order_by("position"))
    assert [run.status for run in flaky] == ["failed", "failed"]
    assert flaky[0].failure_group and flaky[0].failure_group == flaky[1].failure_group
    assert FailureGroup.objects.get(key=flaky[0].failure_group).handler == "warehouse.Flaky"
    assert "flaky is switched on (n=0)" in FailureGroup.objects.get().message

    Switch.objects.filter(name="flaky").update(on=False)
    HandlerRun.objects.update(available_at=timezone.now())
    Worker(worker_id="test-worker").drain()
    assert set(HandlerRun.objects.values_list("status", "failure_group")) == {("succeeded", "")}
    assert failures.failure_counts() == {}


# Counts ---------------------------------------------------------------------------------------


def _counts():
    return {
        key: (c.handler, c.failed, c.dead, c.streams)
        for key, c in failures.failure_counts().items()
    }


def test_counts_are_exact_before_and_after_the_indexer_folds_dead_runs_in(async_domain):
    for n in range(5):
        Switch.objects.create(name=f"skipping-{n}", on=True)
    append_pings(async_domain, "probe::skipping", range(5), streams=3)  # retries=0: dead at once
    Worker(worker_id="test-worker").drain()
    key = HandlerRun.objects.filter(handler="warehouse.Skipping").first().failure_group
    expected = {key: ("warehouse.Skipping", 0, 5, 3)}

    assert _counts() == expected  # all live: the indexer has not run
    indexer.catch_up()
    group = FailureGroup.objects.get(key=key)
    assert (group.dead, group.streams) == (5, 3)  # folded into the group
    assert sum(FailureHour.objects.filter(failure_group=key).values_list("runs", flat=True)) == 5
    assert _counts() == expected
    counts = failures.failure_counts()[key]
    assert sum(counts.series(timezone.now())) == 5
    assert counts.last_seen == max(HandlerRun.objects.values_list("finished_at", flat=True))

    # The operator resolves the runs of one stream: they leave the group at once.
    one_stream = HandlerRun.objects.filter(handler="warehouse.Skipping", stream="probe::skipping-0")
    assert handler_runs_resolve(runs=one_stream, reason="fixed by hand") == 2
    assert _counts() == {key: ("warehouse.Skipping", 0, 3, 2)}
    indexer.catch_up()
    assert _counts() == {key: ("warehouse.Skipping", 0, 3, 2)}
    assert FailureStream.objects.filter(failure_group=key).count() == 2

    # Replayed, they fail again (pending, then dead): the same counts in the end.
    handler_runs_replay(runs=HandlerRun.objects.filter(handler="warehouse.Skipping"))
    assert _counts() == {}
    Worker(worker_id="test-worker").drain()
    assert _counts() == {key: ("warehouse.Skipping", 0, 3, 2)}
    indexer.catch_up()
    assert _counts() == {key: ("warehouse.Skipping", 0, 3, 2)}


def test_hours_older_than_a_day_leave_the_sparkline_but_stay_counted(async_domain):
    for n in range(3):
        Switch.objects.create(name=f"skipping-{n}", on=True)
    append_pings(async_domain, "probe::skipping", range(3))
    Worker(worker_id="test-worker").drain()
    two_days_ago = timezone.now() - timedelta(days=2)
    old = HandlerRun.objects.get(handler="warehouse.Skipping", position=0)
    HandlerRun.objects.filter(pk=old.pk).update(finished_at=two_days_ago)
    indexer.catch_up()

    key = old.failure_group
    assert dict(FailureHour.objects.filter(failure_group=key).values_list("hour", "runs")) == {
        failures.OLDER: 1,
        failures.hour_of(timezone.now()): 2,
    }
    counts = failures.failure_counts()[key]
    assert counts.dead == 3
    assert sum(counts.series(timezone.now())) == 2

    handler_runs_resolve(runs=HandlerRun.objects.filter(pk=old.pk))  # out of the older hours
    assert not FailureHour.objects.filter(failure_group=key, hour=failures.OLDER).exists()
    assert failures.failure_counts()[key].dead == 2


def test_the_migration_groups_failures_recorded_before_groups_existed(async_domain, oversell):
    dune, emma = oversell("Dune"), oversell("Emma")
    dune = fail_until_dead(dune)
    indexer.catch_up()
    recorded = dune.failure_group
    expected = _counts()
    HandlerRun.objects.update(failure_group="")
    for model in (FailureGroup, FailureHour, FailureStream):
        model.objects.all().delete()

    migration = importlib.import_module("inspector.migrations.0011_failure_groups")
    migration.group_recorded_failures(apps, None)

    assert set(HandlerRun.objects.failed().values_list("failure_group", flat=True)) == {recorded}
    assert FailureGroup.objects.get().message in (dune.error_message, emma.error_message)
    assert _counts() == expected == {recorded: (INVENTORY, 1, 1, 2)}
    indexer.catch_up()
    assert _counts() == expected


# The failures page ------------------------------------------------------------------------------


def test_the_failures_page_has_one_row_per_group(operator, oversell, async_domain):
    dune, emma = oversell("Dune"), oversell("Emma")
    fail_until_dead(emma)
    lost = oversell("Lost", lose_inventory=True)

    response = operator.get(reverse("inspector:failures"))
    assert response.status_code == 200
    body = response.content.decode()
    rows = group_rows(body)
    assert set(rows) == {dune.failure_group, lost.failure_group}
    handler, what, failed, dead, streams, first, last, _ = rows[dune.failure_group]
    assert handler.startswith("InventoryEventHandler")
    assert "DomainError" in what and "Not enough stock of 'Dune': 10 in stock, 12 requested" in what
    assert (failed, dead, streams) == ("1", "1", "2")
    assert first and last
    assert rows[lost.failure_group][2:5] == ["1", "0", "1"]
    assert "ObjectNotFound" in rows[lost.failure_group][1]
    assert body.count('class="sparkline"') == 2
    for svg in re.findall(r"<svg .*?</svg>", body, re.S):
        ET.fromstring(svg)
    assert reverse("inspector:failure-group", args=[dune.failure_group]) in body
    assert 'ws-connect="/ws/inspector/page/?failures="' in body  # new failures appear live
    assert "hx-trigger" not in body  # over the websocket, not by polling
    assert 'aria-current="page">Failures</a>' in body


def test_new_failures_appear_in_the_table_the_page_polls(operator, oversell):
    fragment = operator.get(reverse("inspector:failures"), **HTMX).content.decode()
    assert fragment.startswith('<section id="failures"') and "No failed or dead runs" in fragment
    assert "<nav" not in fragment  # the table alone

    dune = oversell("Dune")
    fragment = operator.get(reverse("inspector:failures"), **HTMX).content.decode()
    assert list(group_rows(fragment)) == [dune.failure_group]


def test_the_failures_page_shows_one_handlers_groups(operator, oversell, domain, extra_handlers):
    dune = oversell("Dune")
    extra_handlers(Hostile, stream_category="probe::hostile")
    append_pings(domain, "probe::hostile", [1])

    everyone = group_rows(operator.get(reverse("inspector:failures")).content.decode())
    assert len(everyone) == 2
    url = reverse("inspector:failures") + f"?handler={INVENTORY}"
    only = operator.get(url).content.decode()
    assert list(group_rows(only)) == [dune.failure_group]
    assert f"Groups of <code>{INVENTORY}</code> only" in only
    assert 'ws-connect="/ws/inspector/page/?failures=warehouse.InventoryEventHandler"' in only
    nobody = operator.get(reverse("inspector:failures") + "?handler=no.Such%00")
    assert nobody.status_code == 200 and "No failed or dead runs of this handler" in (
        nobody.content.decode()
    )


def test_hostile_error_messages_are_escaped(operator, domain, extra_handlers):
    extra_handlers(Hostile, stream_category="probe::hostile")
    append_pings(domain, "probe::hostile", [1, 2])
    run = HandlerRun.objects.filter(handler__endswith="Hostile").first()

    for url in (
        reverse("inspector:failures"),
        reverse("inspector:failure-group", args=[run.failure_group]),
    ):
        body = operator.get(url).content.decode()
        assert HOSTILE not in body
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; in ping" in body


# A group's page -------------------------------------------------------------------------------


def test_a_groups_page_lists_its_runs_keyset_paged_with_a_traceback(
    operator, oversell, monkeypatch
):
    runs = [oversell(title) for title in ("Dune", "Emma", "Ulysses")]
    key = runs[0].failure_group
    monkeypatch.setattr(selectors, "PAGE_SIZE", 2)
    url = reverse("inspector:failure-group", args=[key])

    body = operator.get(url).content.decode()
    listed = re.findall(r'<tr id="group-run-([0-9a-f-]+)"', body)
    assert listed == [str(runs[0].id), str(runs[1].id)]
    assert f'href="?after={runs[1].global_position}"' in body
    assert "Not enough stock of &#x27;Dune&#x27;" in body
    assert "Traceback (most recent call last)" in body
    assert "in adjust_stock" in body  # one full traceback, the newest run's
    assert f'Run <a href="{reverse("inspector:message", args=[runs[2].message_id])}' in body
    assert f"<code>{key}</code>" in body

    second = operator.get(url, {"after": runs[1].global_position}).content.decode()
    assert re.findall(r'<tr id="group-run-([0-9a-f-]+)"', second) == [str(runs[2].id)]
    assert 'rel="next"' not in second
    assert re.findall(r'<tr id="group-run-', operator.get(url, {"after": "x"}).content.decode())

    assert operator.get(reverse("inspector:failure-group", args=["0" * 32])).status_code == 404
    assert operator.get(reverse("inspector:failure-group", args=["not-a-key"])).status_code == 404


def test_failure_pages_are_for_staff_and_their_actions_need_the_replay_permission(
    client, django_user_model, oversell
):
    key = oversell("Dune").failure_group
    pages = [reverse("inspector:failures"), reverse("inspector:failure-group", args=[key])]
    replay = reverse("inspector:failure-group-action", args=[key, "replay"])
    resolve = reverse("inspector:failure-group-action", args=[key, "resolve"])
    for url in pages:
        assert client.get(url).status_code == 302  # to the login
    assert client.post(replay, {"confirm": "yes"}).status_code == 302
    _login(client, django_user_model, "customer", staff=False)
    for url in pages:
        assert client.get(url).status_code == 302

    _login(client, django_user_model, "watcher")
    for url in pages:
        assert client.get(url).status_code == 200
    assert replay not in client.get(pages[1]).content.decode()
    for url in (replay, resolve):
        assert client.post(url, {"confirm": "yes", "reason": "no"}).status_code == 403
    assert not HandlerRunReplay.objects.exists()
    assert HandlerRun.objects.get(failure_group=key).status == "failed"


def test_replay_a_group_asks_first_saying_how_many_runs_then_a_job_queues_them(
    operator, oversell, async_domain
):
    runs = [oversell(title) for title in ("Dune", "Emma", "Ulysses")]
    fail_until_dead(runs[0])
    key = runs[0].failure_group
    page = operator.get(reverse("inspector:failure-group", args=[key])).content.decode()
    replay = reverse("inspector:failure-group-action", args=[key, "replay"])
    assert f'action="{replay}"' in page

    confirm = operator.post(replay, {"reason": "restocked"})
    assert confirm.status_code == 200
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", confirm.content.decode())).split())
    assert "3 handler runs of this group will be replayed: 1 dead, 2 failed." in text
    assert 'name="confirm" value="yes"' in confirm.content.decode()
    assert 'value="restocked"' in confirm.content.decode()
    assert not HandlerRunReplay.objects.exists()  # nothing happened yet

    done = operator.post(replay, {"reason": "restocked", "confirm": "yes"}, follow=True)
    job = ReplayJob.objects.get()  # a replay job does it, in the background
    assert done.redirect_chain == [(reverse("inspector:replay-job", args=[job.pk]), 302)]
    assert f"Made replay job {job.pk}: 3 handler runs to be replayed" in done.content.decode()
    assert not HandlerRunReplay.objects.exists()  # not yet: a worker takes its chunks
    ReplayJobRunner(worker_id="jobs").step(job.pk)
    assert set(
        HandlerRun.objects.filter(pk__in=[r.pk for r in runs]).values_list("status", flat=True)
    ) == {"pending"}
    lineage = HandlerRunReplay.objects.filter(run__in=runs)
    assert {(r.action, r.reason, r.user) for r in lineage} == {
        ("replay", "restocked", operator.user)
    }
    assert sorted(r.previous_status for r in lineage) == ["dead", "failed", "failed"]
    assert _counts() == {}


def test_resolve_a_group_and_a_refused_reason_writes_nothing(operator, oversell):
    runs = [oversell(title) for title in ("Dune", "Emma")]
    key = runs[0].failure_group
    resolve = reverse("inspector:failure-group-action", args=[key, "resolve"])

    refused = operator.post(resolve, {"reason": "x" * 501, "confirm": "yes"})
    assert refused.status_code == 400
    assert "Reason: Ensure this value has at most 500 characters" in unescape(
        refused.content.decode()
    )
    assert not HandlerRunReplay.objects.exists()
    assert (
        operator.post(
            reverse("inspector:failure-group-action", args=[key, "delete"]), {"confirm": "yes"}
        ).status_code
        == 404
    )

    confirm = operator.post(resolve, {}).content.decode()
    assert "2 handler runs of this group will be marked resolved: 2 failed." in " ".join(
        unescape(re.sub(r"<[^>]+>", " ", confirm)).split()
    )
    done = operator.post(resolve, {"reason": "refunded", "confirm": "yes"}, follow=True)
    job = ReplayJob.objects.get()
    assert f"Made replay job {job.pk}: 2 handler runs to be marked resolved" in unescape(
        done.content.decode()
    )
    ReplayJobRunner(worker_id="jobs").step(job.pk)
    assert set(HandlerRun.objects.filter(failure_group=key).values_list("status", flat=True)) == {
        "resolved"
    }
    again = operator.post(resolve, {"confirm": "yes"}, follow=True).content.decode()
    assert "No run of this group was failed or dead" in again


# /metrics, the handlers page, queries ---------------------------------------------------------


def test_metrics_export_failures_by_handler_and_exception(operator, oversell, async_domain):
    fail_until_dead(oversell("Dune"))
    oversell("Emma")
    oversell("Lost", lose_inventory=True)

    response = operator.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    found = {
        (s.labels["handler"], s.labels["exception"], s.labels["status"]): s.value
        for s in families["inspector_handler_failures"].samples
    }
    assert found == {
        (INVENTORY, DOMAIN_ERROR, "failed"): 1.0,
        (INVENTORY, DOMAIN_ERROR, "dead"): 1.0,
        (INVENTORY, "inspector.exceptions.ObjectNotFound", "failed"): 1.0,
        (INVENTORY, "inspector.exceptions.ObjectNotFound", "dead"): 0.0,
    }
    assert families["inspector_handler_failures"].type == "gauge"


def test_the_handlers_page_links_a_handlers_failure_groups(operator, oversell):
    oversell("Dune")
    body = operator.get(reverse("inspector:handlers")).content.decode()
    link = f'href="{reverse("inspector:failures")}?handler={INVENTORY}"'
    assert body.count(link) == 1
    inventory_row = re.search(rf'<tr id="handler-{INVENTORY}".*?</tr>', body, re.S).group(0)
    assert link in inventory_row
    assert "?handler=warehouse.OrderNotificationHandler" not in body


def test_the_failures_page_reads_as_many_queries_however_many_failed_runs(
    operator, oversell, domain, extra_handlers, django_assert_max_num_queries
):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert operator.get(reverse("inspector:failures")).status_code == 200
        return len(captured)

    oversell("Dune")
    extra_handlers(Hostile, stream_category="probe::hostile")
    append_pings(domain, "probe::hostile", [1])
    few = queries()
    group = HandlerRun.objects.get(handler__endswith="Hostile").failure_group
    group_page = reverse("inspector:failure-group", args=[group])
    with CaptureQueriesContext(connection) as captured:
        assert operator.get(group_page).status_code == 200
    append_pings(domain, "probe::hostile", range(2, 40), streams=7)
    oversell("Emma")
    indexer.catch_up()
    assert queries() == few
    assert few <= 6  # the session, the user, the indexer's state, the counts, the groups
    with django_assert_max_num_queries(len(captured)):
        assert operator.get(group_page).status_code == 200
    assert HandlerAttempt.objects.count() >= 40


def test_the_admin_filters_runs_by_failure_group_and_links_a_runs_group(
    admin_client, oversell, domain, extra_handlers
):
    dune, emma = oversell("Dune"), oversell("Emma")
    extra_handlers(Hostile, stream_category="probe::hostile")
    append_pings(domain, "probe::hostile", [1])
    changelist = reverse("admin:inspector_handlerrun_changelist")

    body = admin_client.get(changelist, {"failure_group": dune.failure_group}).content.decode()
    listed = set(re.findall(r"/admin/inspector/handlerrun/([0-9a-f-]{36})/change/", body))
    assert listed == {str(dune.pk), str(emma.pk)}
    assert "DomainError in InventoryEventHandler: Not enough stock of &#x27;" in body  # a choice

    change = admin_client.get(reverse("admin:inspector_handlerrun_change", args=[dune.pk]))
    group_page = reverse("inspector:failure-group", args=[dune.failure_group])
    link = f'<a href="{group_page}"><code>{dune.failure_group}</code></a>'
    assert link in change.content.decode()
