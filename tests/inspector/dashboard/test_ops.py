"""/metrics in Prometheus format, read from the database at scrape time; /healthz."""

import pytest
from django.db import OperationalError, connection
from prometheus_client.parser import text_string_to_metric_families

from inspector.dashboard import feed
from inspector.dashboard.selectors import DURATION_BUCKETS
from inspector.dashboard.views import ops
from inspector.models import HandlerRun, HandlerState, Message
from tests.warehouse.commands import ConfirmOrder, PlaceOrder, ShipOrder

pytestmark = pytest.mark.django_db(transaction=True)

INVENTORY = "warehouse.InventoryEventHandler"
NOTIFY = "warehouse.OrderNotificationHandler"
TOKEN = "scrape-me-7f3c"


@pytest.fixture
def shop(domain, add_book):
    """One order shipped, one oversold (its inventory run fails)."""
    book = add_book()
    for quantity in (1, 12):
        order_id = domain.process(
            PlaceOrder(
                customer_name="Alice", items=[{"book_id": str(book.id), "quantity": quantity}]
            )
        )
        domain.process(ConfirmOrder(order_id=order_id))
        domain.process(ShipOrder(order_id=order_id))
    return book


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(
        django_user_model.objects.create_user("staff", password="not-used", is_staff=True)
    )
    return client


@pytest.fixture
def token(settings):
    settings.INSPECTOR = {**settings.INSPECTOR, "metrics_token": TOKEN}
    return TOKEN


def scrape(client, **headers):
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    families = {
        family.name: family for family in text_string_to_metric_families(response.content.decode())
    }
    return families


def samples(family, name=None):
    return {
        tuple(sorted(s.labels.items())): s.value
        for s in family.samples
        if name is None or s.name == name
    }


def test_metrics_have_every_family_with_values_from_the_store(staff, shop):
    families = scrape(staff)

    assert {
        "inspector_messages_appended",
        "inspector_handler_runs",
        "inspector_handler_run_duration_seconds",
        "inspector_handler_pending_runs",
        "inspector_websocket_clients",
        "inspector_store_global_position",
        "inspector_handler_paused",
        "inspector_handler_oldest_unfinished_age_seconds",
    } <= set(families)
    assert families["inspector_messages_appended"].type == "counter"
    assert families["inspector_handler_run_duration_seconds"].type == "histogram"

    appended = samples(families["inspector_messages_appended"], "inspector_messages_appended_total")
    placed = (("kind", "event"), ("type", "warehouse.OrderPlaced.v1"))
    assert appended[placed] == 2
    assert sum(appended.values()) == Message.objects.count()

    runs = samples(families["inspector_handler_runs"])
    assert runs[(("handler", INVENTORY), ("status", "failed"))] == 1
    assert runs[(("handler", INVENTORY), ("status", "succeeded"))] == 1
    assert runs[(("handler", NOTIFY), ("status", "succeeded"))] == 4
    assert sum(runs.values()) == HandlerRun.objects.count()

    last = Message.objects.order_by("-global_position").first().global_position
    assert samples(families["inspector_store_global_position"])[()] == last


def test_the_duration_histogram_counts_succeeded_runs_in_sql_buckets(staff, shop):
    runs = list(HandlerRun.objects.filter(handler=NOTIFY, status="succeeded"))
    for run, duration_us in zip(runs, [500, 3_000, 40_000, 20_000_000], strict=True):
        HandlerRun.objects.filter(pk=run.pk).update(duration_us=duration_us)

    family = scrape(staff)["inspector_handler_run_duration_seconds"]

    handler = ("handler", NOTIFY)
    buckets = {
        dict(key)["le"]: value
        for key, value in samples(family, "inspector_handler_run_duration_seconds_bucket").items()
        if handler in key
    }
    assert len(buckets) == len(DURATION_BUCKETS) + 1
    assert buckets["0.001"] == 1
    assert buckets["0.005"] == 2
    assert buckets["0.05"] == 3
    assert buckets["10.0"] == 3
    assert buckets["+Inf"] == 4
    count = samples(family, "inspector_handler_run_duration_seconds_count")[(handler,)]
    total = samples(family, "inspector_handler_run_duration_seconds_sum")[(handler,)]
    assert count == 4
    assert total == pytest.approx(20.0435)


def test_pending_runs_and_paused_handlers(domain, staff, add_book):
    domain.config["event_processing"] = "async"
    book = add_book()
    order_id = domain.process(
        PlaceOrder(customer_name="Bo", items=[{"book_id": str(book.id), "quantity": 1}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    HandlerState.objects.create(handler=NOTIFY, paused=True)

    families = scrape(staff)

    pending = samples(families["inspector_handler_pending_runs"])
    assert pending[(("handler", NOTIFY),)] >= 1
    assert pending[(("handler", "warehouse.BookEventHandler"),)] == 1
    assert samples(families["inspector_handler_paused"])[(("handler", NOTIFY),)] == 1
    age = samples(families["inspector_handler_oldest_unfinished_age_seconds"])
    assert age[(("handler", NOTIFY),)] >= 0


def test_connected_clients_come_from_the_live_feed(staff, shop, monkeypatch):
    monkeypatch.setattr(feed, "connected_clients", lambda: 3, raising=False)
    assert samples(scrape(staff)["inspector_websocket_clients"])[()] == 3
    monkeypatch.delattr(feed, "connected_clients", raising=False)
    assert samples(scrape(staff)["inspector_websocket_clients"])[()] == 0


def test_each_scrape_reads_the_database_afresh(staff, domain, add_book):
    before = scrape(staff)["inspector_messages_appended"]
    assert not before.samples
    add_book()
    after = samples(
        scrape(staff)["inspector_messages_appended"], "inspector_messages_appended_total"
    )
    assert after[(("kind", "event"), ("type", "warehouse.BookAdded.v1"))] == 1


def test_metrics_need_staff_or_the_bearer_token(client, django_user_model, shop, token):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {token}").status_code == 401

    families = scrape(client, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert "inspector_handler_runs" in families

    client.force_login(django_user_model.objects.create_user("shopper", password="not-used"))
    assert client.get("/metrics").status_code == 401


def test_without_a_configured_token_no_bearer_is_accepted(client, shop):
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer None").status_code == 401


def test_a_scrape_takes_a_fixed_number_of_queries(
    staff, shop, domain, add_book, django_assert_max_num_queries
):
    with django_assert_max_num_queries(9):
        scrape(staff)
    for _ in range(3):
        add_book()
    with django_assert_max_num_queries(9):
        scrape(staff)


def test_healthz_answers_ok_without_a_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    assert client.head("/healthz").status_code == 200


class BrokenConnection:
    """A database that refuses every query."""

    def cursor(self):
        raise OperationalError("could not connect to server")


def test_healthz_is_503_when_the_database_fails(client, monkeypatch):
    monkeypatch.setattr(ops, "connection", BrokenConnection())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert b"database" in response.content


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's connection pool (psycopg_pool)"
)
def test_postgresql_requests_borrow_pooled_connections(client):
    """Connecting cost 8 ms a request; the pool lends a handful of backends over and over."""
    backends = set()
    for _ in range(12):
        assert client.get("/healthz").status_code == 200
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backends.add(cursor.fetchone()[0])
        connection.close()  # as at the end of a request: back to the pool
    assert len(backends) <= 4  # twelve without the pool
