"""The operator's admin: the read-only event store, handler runs, replay and resolve."""

import re
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inspector.admin import CappedCountPaginator, MessagePaginator
from inspector.models import (
    HandlerAttempt,
    HandlerRun,
    HandlerRunReplay,
    Message,
    ReplayJob,
    ReplayJobRun,
    RunStatus,
)
from tests.warehouse.commands import ConfirmOrder, PlaceOrder

RUNS = "/admin/inspector/handlerrun/"
MESSAGES = "/admin/inspector/message/"
NOTIFIER = "warehouse.OrderNotificationHandler"


def staff(django_user_model, name, *codenames):
    user = django_user_model.objects.create_user(name, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return SimpleNamespace(user=user, client=client)


VIEW = ("view_handlerrun", "view_message", "view_handlerattempt", "view_handlerrunreplay")


@pytest.fixture
def viewer(django_user_model):
    """Staff who may look at runs but not replay them."""
    return staff(django_user_model, "viewer", *VIEW)


@pytest.fixture
def operator(django_user_model):
    """Staff with the custom permission to replay and resolve runs."""
    return staff(django_user_model, "operator", *VIEW, "replay_handlerrun")


@pytest.fixture
def runs(settings, domain, add_book):
    """A succeeded, a failed and a dead run, made by the warehouse's own handlers."""
    book = add_book()
    settings.WAREHOUSE_MAIL_GATEWAY_DOWN = True  # every notification fails

    def confirmed_order():
        order_id = domain.process(
            PlaceOrder(customer_name="Alice", items=[{"book_id": str(book.id), "quantity": 1}])
        )
        domain.process(ConfirmOrder(order_id=str(order_id)))
        return order_id

    confirmed_order()
    confirmed_order()
    failed, dead = HandlerRun.objects.filter(handler=NOTIFIER).order_by("global_position")
    HandlerRun.objects.filter(pk=dead.pk).update(status=RunStatus.DEAD)  # as after its retries
    succeeded = HandlerRun.objects.get(handler="warehouse.BookEventHandler")
    return SimpleNamespace(
        book=book,
        succeeded=succeeded,
        failed=HandlerRun.objects.get(pk=failed.pk),
        dead=HandlerRun.objects.get(pk=dead.pk),
    )


def post_action(client, action, runs, *, url=RUNS, **extra):
    data = {"action": action, "_selected_action": [str(run.pk) for run in runs], **extra}
    return client.post(url, data)


def statuses(*runs):
    return [HandlerRun.objects.get(pk=run.pk).status for run in runs]


# The event store --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_message_list_shows_the_store_read_only(admin_client, add_book):
    book = add_book()
    message = Message.objects.get(type="warehouse.BookAdded.v1")
    response = admin_client.get(MESSAGES)
    assert response.status_code == 200
    html = response.content.decode()
    for column in ("Global position", "Type", "Kind", "Stream", "Position", "Time"):
        assert column in html
    assert "warehouse.BookAdded.v1" in html
    assert f'href="{MESSAGES}?stream=warehouse%3A%3Abook-{book.id}"' in html
    assert f'href="/inspector/messages/{message.id}/">inspect</a>' in html
    assert "Add message" not in html and 'name="action"' not in html

    change = f"{MESSAGES}{message.id}/change/"
    assert admin_client.get(f"{MESSAGES}add/").status_code == 403
    assert admin_client.post(change, {"type": "x"}).status_code == 403
    assert admin_client.post(f"{MESSAGES}{message.id}/delete/").status_code == 403
    assert Message.objects.get(pk=message.pk).type == "warehouse.BookAdded.v1"


@pytest.mark.django_db(transaction=True)
def test_message_list_filters_by_kind_type_and_category(admin_client, add_book):
    add_book()

    def types(query):
        html = admin_client.get(MESSAGES + query).content.decode()
        return set(re.findall(r'class="field-type">(?:<a [^>]*>)?(warehouse\.\w+\.v1)', html))

    everything = types("")
    assert {"warehouse.AddBook.v1", "warehouse.BookAdded.v1"} <= everything
    assert types("?kind__exact=command") == {"warehouse.AddBook.v1"}
    assert types("?type=warehouse.BookAdded.v1") == {"warehouse.BookAdded.v1"}
    assert types("?category=warehouse%3A%3Abook%3Acommand") == {"warehouse.AddBook.v1"}
    assert types("?category=warehouse%3A%3Abook") == {"warehouse.BookAdded.v1"}
    assert types("?category=warehouse%3A%3Aorder") == set()
    html = admin_client.get(MESSAGES).content.decode()
    assert "?type=warehouse.OrderShipped.v1" in html  # types come from the domain's registry
    assert "?category=warehouse%3A%3Aorder" in html


@pytest.mark.django_db(transaction=True)
def test_message_search_by_id_correlation_id_and_stream(admin_client, add_book):
    add_book(title="One")
    add_book(title="Two")
    added = list(Message.objects.filter(type="warehouse.BookAdded.v1"))

    def found(term):
        response = admin_client.get(MESSAGES, {"q": term})
        assert response.status_code == 200
        return {str(m.pk) for m in response.context["cl"].result_list}

    assert found(str(added[0].id)) == {str(added[0].id)}
    correlated = Message.objects.filter(correlation_id=added[1].correlation_id)
    assert found(str(added[1].correlation_id)) == {str(m.pk) for m in correlated}
    assert {"warehouse.AddBook.v1", "warehouse.BookAdded.v1"} <= {m.type for m in correlated}
    assert found(added[0].stream) == {str(added[0].id)}
    assert found("no-such-stream") == set()


@pytest.mark.django_db(transaction=True)
def test_message_page_pretty_prints_escaped_data_and_links_around(admin_client, add_book):
    add_book(title="<script>alert(1)</script>")
    message = Message.objects.get(type="warehouse.BookAdded.v1")
    html = admin_client.get(f"{MESSAGES}{message.id}/change/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&quot;title&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in html
    assert "&quot;correlation_id&quot;: &quot;" in html  # the metadata
    assert re.search(r'<pre class="inspector-json"[^>]*>\{\n  &quot;', html)  # indented
    assert f"?correlation_id={message.correlation_id}" in html
    assert f"/inspector/messages/{message.id}/" in html
    command = Message.objects.get(type="warehouse.AddBook.v1")
    assert f'href="{MESSAGES}{command.id}/change/">warehouse.AddBook.v1' in html  # caused by
    run = HandlerRun.objects.get(message=message)
    assert f'href="{RUNS}{run.id}/change/">warehouse.BookEventHandler</a>' in html


@pytest.mark.django_db(transaction=True)
def test_message_list_never_counts_the_whole_store(admin_client, add_book):
    for n in range(3):
        add_book(title=f"Book {n}")
    total = Message.objects.count()
    with CaptureQueriesContext(connection) as unfiltered:
        response = admin_client.get(MESSAGES)
    assert response.context["cl"].result_count == total
    with CaptureQueriesContext(connection) as filtered:
        response = admin_client.get(MESSAGES, {"kind__exact": "event"})
    assert response.context["cl"].result_count == Message.objects.filter(kind="event").count()
    with CaptureQueriesContext(connection) as facets:  # "Show counts" is switched off
        assert admin_client.get(MESSAGES, {"_facets": ""}).status_code == 200
    assert "Show counts" not in response.content.decode()
    for queries in (unfiltered, filtered, facets):
        counts = [
            q["sql"]
            for q in queries.captured_queries
            if "COUNT(" in q["sql"].upper() and "inspector_message" in q["sql"]
        ]
        assert all("LIMIT" in sql.upper() for sql in counts), counts
    assert any('MAX("inspector_message"."global_position")' in q["sql"] for q in unfiltered)


@pytest.mark.django_db
def test_a_filtered_count_stops_at_the_cap(monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 3)
    now = timezone.now()
    Message.objects.bulk_create(
        Message(
            kind="event",
            type="t.T.v1",
            stream=f"t::x-{n}",
            category="t::x",
            position=0,
            global_position=10_000 + n,
            data={},
            metadata={},
            correlation_id=uuid.uuid4(),
            time=now,
        )
        for n in range(5)
    )
    paginator = CappedCountPaginator(Message.objects.filter(kind="event"), 2)
    assert (paginator.count, paginator.capped) == (3, True)
    paginator = CappedCountPaginator(Message.objects.filter(stream="t::x-1"), 2)
    assert (paginator.count, paginator.capped) == (1, False)
    assert MessagePaginator(Message.objects.all(), 2).count == 10_005  # last position + 1


@pytest.mark.django_db
def test_a_capped_count_is_shown_as_more_than(admin_client, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 2)
    now = timezone.now()
    Message.objects.bulk_create(
        Message(
            kind="command",
            type="t.T.v1",
            stream=f"t::x-{n}",
            category="t::x",
            position=0,
            global_position=n,
            data={},
            metadata={},
            correlation_id=uuid.uuid4(),
            time=now,
        )
        for n in range(3)
    )
    html = " ".join(admin_client.get(MESSAGES, {"kind__exact": "command"}).content.decode().split())
    assert "More than 2 results" in html and "More than 2 messages" in html
    html = " ".join(admin_client.get(MESSAGES).content.decode().split())
    assert "3 messages" in html and "More than" not in html


# Handler runs -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_run_list_shows_columns_filters_and_search(admin_client, runs):
    html = admin_client.get(RUNS).content.decode()
    for column in ("Handler", "Message type", "Stream", "Status", "Attempts", "Duration"):
        assert column in html
    assert "Last error" in html and "GatewayError: Mail gateway refused" in html
    assert "OrderConfirmed" in html

    def listed(params):
        response = admin_client.get(RUNS, params)
        assert response.status_code == 200
        return {run.pk for run in response.context["cl"].result_list}

    assert listed({"status__exact": "failed"}) == {runs.failed.pk}
    assert listed({"status__exact": "dead"}) == {runs.dead.pk}
    assert listed({"handler": NOTIFIER}) == {runs.failed.pk, runs.dead.pk}
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    assert runs.succeeded.pk in listed({"created_at__gte": str(today)})  # as the "Today" link
    assert listed({"created_at__lt": str(today - timedelta(days=1))}) == set()
    assert "?created_at__gte=" in html
    assert listed({"q": str(runs.failed.message_id)}) == {runs.failed.pk}
    assert listed({"q": str(runs.dead.pk)}) == {runs.dead.pk}
    assert listed({"q": "gateway refused"}) == {runs.failed.pk, runs.dead.pk}
    assert NOTIFIER in html and "?handler=warehouse.InventoryEventHandler" in html


@pytest.mark.django_db(transaction=True)
def test_run_page_shows_every_attempt_traceback_and_its_lineage(admin_client, runs, operator):
    from inspector.services import handler_run_replay

    handler_run_replay(run=runs.failed, user=operator.user, reason="SMTP <fixed>")
    worker = pytest.importorskip("inspector.workers.worker")
    worker.Worker(worker_id="test").drain()  # the gateway still fails: a second attempt
    attempts = list(HandlerAttempt.objects.filter(run=runs.failed).order_by("number"))
    assert [a.number for a in attempts] == [1, 2]

    html = admin_client.get(f"{RUNS}{runs.failed.pk}/change/").content.decode()
    assert html.count("Traceback (most recent call last):") == 3  # the run's last + 2 attempts
    assert "raise GatewayError(" in html
    assert "attempt 1 of" in html and "attempt 2 of" in html
    assert "lineage: who replayed or resolved this run" in html.lower()
    assert "operator" in html and "SMTP &lt;fixed&gt;" in html
    assert "Replayed" in html
    assert f'href="{MESSAGES}{runs.failed.message_id}/change/"' in html
    assert admin_client.post(f"{RUNS}{runs.failed.pk}/change/", {}).status_code == 403
    assert admin_client.get(f"{RUNS}add/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_actions_are_hidden_without_the_replay_permission(runs, viewer, operator, admin_client):
    page = viewer.client.get(RUNS)
    assert page.status_code == 200
    assert "Replay selected runs" not in page.content.decode()
    assert 'name="_selected_action"' not in page.content.decode()
    for client in (operator.client, admin_client):
        html = client.get(RUNS).content.decode()
        assert '<option value="replay_selected">Replay selected runs</option>' in html
        assert '<option value="resolve_selected">Mark selected runs resolved</option>' in html


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["replay_selected", "resolve_selected"])
def test_actions_are_refused_without_the_replay_permission(runs, viewer, action):
    for confirm in ("", "yes"):
        response = post_action(viewer.client, action, [runs.failed, runs.dead], confirm=confirm)
        assert response.status_code == 200  # just the list again: no action runs
        assert "selected handler runs will be" not in response.content.decode()
    assert statuses(runs.failed, runs.dead) == ["failed", "dead"]
    assert not HandlerRunReplay.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("action", "verb"), [("replay_selected", "replayed"), ("resolve_selected", "marked resolved")]
)
def test_the_confirmation_counts_only_failed_and_dead_runs(runs, operator, action, verb):
    selected = [runs.succeeded, runs.failed, runs.dead]
    response = post_action(operator.client, action, selected)
    assert response.status_code == 200
    html = " ".join(response.content.decode().split())
    summary = f"<strong>2</strong> of the 3 selected handler runs will be {verb}: 1 dead, 1 failed."
    assert summary in html
    assert "the other 1 selected run will be left as it is" in html
    for run in selected:  # carried to the confirming POST
        assert f'name="_selected_action" value="{run.pk}"' in html
    assert f'name="action" value="{action}"' in html
    assert statuses(*selected) == ["succeeded", "failed", "dead"]  # nothing done yet
    assert not HandlerRunReplay.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_replay_queues_the_failed_and_dead_runs(runs, operator):
    selected = [runs.succeeded, runs.failed, runs.dead]
    response = post_action(
        operator.client, "replay_selected", selected, confirm="yes", reason="gateway back up"
    )
    assert response.status_code == 302
    assert statuses(*selected) == ["succeeded", "pending", "pending"]
    replays = HandlerRunReplay.objects.order_by("previous_status")
    assert [(r.run_id, r.action, r.previous_status) for r in replays] == [
        (runs.dead.pk, "replay", "dead"),
        (runs.failed.pk, "replay", "failed"),
    ]
    assert {(r.user, r.reason, r.attempts_before) for r in replays} == {
        (operator.user, "gateway back up", 1)
    }
    html = operator.client.get(response["Location"]).content.decode()
    assert (
        "Queued 2 handler runs to run again. 1 of the 3 selected runs was not failed or dead"
        in html
    )


@pytest.mark.django_db(transaction=True)
def test_resolve_closes_the_failed_and_dead_runs(runs, operator):
    selected = [runs.succeeded, runs.failed, runs.dead]
    response = post_action(operator.client, "resolve_selected", selected, confirm="yes")
    assert response.status_code == 302
    assert statuses(*selected) == ["succeeded", "resolved", "resolved"]
    assert list(HandlerRunReplay.objects.values_list("action", flat=True)) == ["resolve"] * 2
    assert "Marked 2 handler runs resolved." in (
        operator.client.get(response["Location"]).content.decode()
    )


@pytest.mark.django_db(transaction=True)
def test_a_selection_without_failed_runs_is_turned_away(runs, operator):
    response = post_action(operator.client, "replay_selected", [runs.succeeded])
    assert response.status_code == 302
    html = operator.client.get(response["Location"]).content.decode()
    assert "None of the 1 selected runs is failed or dead, so none can be replayed." in html
    assert not HandlerRunReplay.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_replaying_after_the_fix_runs_again_and_succeeds(settings, runs, operator):
    worker = pytest.importorskip("inspector.workers.worker")
    settings.WAREHOUSE_MAIL_GATEWAY_DOWN = False  # the gateway is back
    post_action(operator.client, "replay_selected", [runs.failed], confirm="yes")
    worker.Worker(worker_id="test").drain()
    run = HandlerRun.objects.get(pk=runs.failed.pk)
    assert (run.status, run.attempts) == ("succeeded", 2)


@pytest.mark.django_db
def test_ten_thousand_selected_runs_become_a_replay_job(operator):
    """Select all 10,000 failed runs across pages; confirm; a replay job is made over all of
    them, and the request queues none itself."""
    now = timezone.now()
    messages = Message.objects.bulk_create(
        Message(
            kind="event",
            type="warehouse.OrderConfirmed.v1",
            stream=f"warehouse::order-{uuid.uuid4()}",
            category="warehouse::order",
            position=0,
            global_position=n,
            data={},
            metadata={},
            correlation_id=uuid.uuid4(),
            time=now,
        )
        for n in range(100)
    )
    HandlerRun.objects.bulk_create(
        (
            HandlerRun(
                message=message,
                handler=f"bulk.Handler{h}",
                message_type=message.type,
                stream=message.stream,
                position=0,
                global_position=message.global_position,
                status=RunStatus.FAILED,
                attempts=1,
                available_at=now,
                error_type="bulk.Error",
                created_at=now,
                updated_at=now,
            )
            for message in messages
            for h in range(100)
        ),
        batch_size=1000,
    )
    one_page = [str(pk) for pk in HandlerRun.objects.values_list("pk", flat=True)[:50]]
    url = f"{RUNS}?status__exact=failed"
    data = {"action": "replay_selected", "select_across": "1", "_selected_action": one_page}

    confirm = operator.client.post(url, data)
    assert confirm.status_code == 200
    text = " ".join(confirm.content.decode().split())
    assert "<strong>10000</strong> of the 10000 selected handler runs" in text
    assert 'name="select_across" value="1"' in text

    assert "a replay job does it in the background, 100 runs a second" in text

    response = operator.client.post(url, {**data, "confirm": "yes", "reason": "bulk"})
    job = ReplayJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/inspector/jobs/{job.pk}/"
    assert (job.action, job.total, job.reason, job.created_by) == (
        "replay",
        10_000,
        "bulk",
        operator.user,
    )
    assert "status__exact=failed" in job.covers
    assert ReplayJobRun.objects.filter(job=job).count() == 10_000
    assert not HandlerRun.objects.filter(status=RunStatus.PENDING).exists()
    assert not HandlerRunReplay.objects.exists()
    page = operator.client.get(response["Location"]).content.decode()
    assert f"Made replay job {job.pk}: 10000 handler runs to be replayed" in page
