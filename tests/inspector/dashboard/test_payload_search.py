"""Payload search through the store indexer's index and the unindexed tail: the same answers
as a full scan, across pages and with the other filters."""

import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inspector.dashboard import selectors
from inspector.models import HandlerRun, Message, PayloadValue, RunStatus
from inspector.readmodel import indexer, payload_index

pytestmark = pytest.mark.django_db(transaction=True)

NOTIFY = "warehouse.OrderNotificationHandler"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def operator(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("operator", "op@example.com"))
    return client


def search(client, **params):
    response = client.get(reverse("inspector:search"), params)
    assert response.status_code == 200, response.content.decode()[:2000]
    return response


def found(client, **params):
    return [m.global_position for m in search(client, **params).context["page"].items]


def expected(key, value, *, types=(), category=""):
    """The matching global positions newest first, by reading every payload in Python."""
    rows = Message.objects.order_by("-global_position")
    if types:
        rows = rows.filter(type__in=types)
    if category:
        rows = rows.filter(category=category)
    return [
        m.global_position for m in rows if payload_index.holds(m.data, key, payload_value(value))
    ]


def payload_value(text):
    from inspector.dashboard.views.search import parse_field_value

    return parse_field_value(text)


def all_pages(client, params):
    """Every global position a search lists, following its "older" links to the end."""
    seen, url = [], reverse("inspector:search") + "?" + "&".join(f"{k}={v}" for k, v in params)
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += [m.global_position for m in response.context["page"].items]
        match = re.search(r'rel="next" href="([^"]+)"', response.content.decode())
        url = unescape(match.group(1)) if match else None
    return seen


def indexed_tables_used(queries):
    return any(PayloadValue._meta.db_table in q["sql"] for q in queries)


def test_a_payload_search_reads_the_index_and_the_messages_appended_after_it(operator, book, order):
    early = [order(book, customer="Alice"), order(book, customer="Bob")]
    assert indexer.catch_up() > 0
    indexed_up_to = payload_index.indexed_position()
    late = order(book, customer="Alice")  # appended after the indexer's position
    assert Message.objects.filter(global_position__gt=indexed_up_to).exists()

    with CaptureQueriesContext(connection) as queries:
        positions = found(operator, field="customer_name=Alice")

    assert indexed_tables_used(queries)
    assert positions == expected("customer_name", "Alice")
    streams = {Message.objects.get(global_position=p).stream for p in positions}
    assert {f"warehouse::order-{early[0]}", f"warehouse::order-{late}"} <= streams
    assert not any(early[1] in s for s in streams)
    assert any(p > indexed_up_to for p in positions)
    assert any(p <= indexed_up_to for p in positions)


def test_payload_search_matches_values_as_the_store_does(operator, book, order):
    order(book, customer="Alice", quantity=2)
    order(book, customer=HOSTILE, quantity=3, ship=False)
    indexer.catch_up()

    def types(**params):
        return [m.type.split(".")[1] for m in search(operator, **params).context["page"].items]

    assert types(field="total_items=2") == ["OrderPlaced"]  # a number
    assert types(field='total_items="2"') == []  # the text "2" is not stored
    assert types(field="total_items=2.0") == ["OrderPlaced"]  # 2.0 is the number 2
    assert types(field=f"customer_name={HOSTILE}") == ["OrderPlaced", "PlaceOrder"]
    assert types(field="price_amount=12.99") == ["BookAdded", "AddBook"]
    assert types(field="customer_email=null") == ["PlaceOrder", "PlaceOrder"]
    assert types(field="customer_name=Nobody") == []
    assert types(field="items.0.quantity=2")[-1] == "PlaceOrder"  # nested: scanned as before
    body = search(operator, field=f"customer_name={HOSTILE}").content.decode()
    assert HOSTILE not in body and "&lt;script&gt;" in body  # payloads render escaped


@pytest.mark.parametrize(
    "params",
    [
        {"field": "customer_name=Alice"},
        {"field": "customer_name=Alice", "type": "OrderPlaced"},
        {"field": "customer_name=Alice", "category": "warehouse::order"},
        {"field": "customer_name=Alice", "category": "warehouse::order:command"},
        {"field": "customer_name=Alice", "type": "OrderPlaced", "category": "warehouse::book"},
        {"field": "total_items=1"},
        {"field": "total_items=1", "type": "OrderShipped"},
        {"field": "customer_name=Nobody", "type": "OrderPlaced"},
    ],
)
def test_payload_search_with_type_and_category_equals_a_full_scan(operator, book, order, params):
    for n in range(4):
        order(book, customer="Alice" if n % 2 == 0 else "Bob")
    indexer.catch_up()
    order(book, customer="Alice", ship=False)  # the tail

    key, _, value = params["field"].partition("=")
    types = selectors.types_named(params["type"]) if "type" in params else ()
    assert found(operator, **params) == expected(
        key, value, types=types, category=params.get("category", "")
    )


def test_payload_search_pages_run_across_the_indexed_position(
    operator, book, order, monkeypatch, domain
):
    monkeypatch.setattr(selectors, "PAGE_SIZE", 3)
    for _ in range(4):
        order(book, customer="Alice")
    indexer.catch_up()
    for _ in range(2):
        order(book, customer="Alice")

    everything = expected("customer_name", "Alice")
    assert len(everything) > 3 * 4
    assert all_pages(operator, [("field", "customer_name%3DAlice")]) == everything
    placed = expected("customer_name", "Alice", types=["warehouse.OrderPlaced.v1"])
    assert (
        all_pages(operator, [("type", "OrderPlaced"), ("field", "customer_name%3DAlice")]) == placed
    )


def test_payload_search_with_run_and_time_filters_checks_each_candidate(operator, book, order):
    alice = order(book, customer="Alice")
    order(book, customer="Bob")
    over = order(book, customer="Alice", quantity=5000)  # too little stock: its run fails
    indexer.catch_up()

    failed = found(operator, field="customer_name=Alice", run_status="failed")
    assert [Message.objects.get(global_position=p).stream for p in failed] == [
        f"warehouse::order-{over}"
    ]
    succeeded = found(operator, field="customer_name=Alice", run_status="succeeded", handler=NOTIFY)
    assert succeeded == [
        p
        for p in expected("customer_name", "Alice")
        if HandlerRun.objects.filter(
            global_position=p, handler=NOTIFY, status=RunStatus.SUCCEEDED
        ).exists()
    ]
    assert succeeded
    order(book, customer="Alice")  # not indexed yet: the tail is checked run by run too
    tail = found(operator, field="customer_name=Alice", run_status="succeeded")
    assert tail == [
        p
        for p in expected("customer_name", "Alice")
        if HandlerRun.objects.filter(global_position=p, status=RunStatus.SUCCEEDED).exists()
    ]
    assert tail[0] > payload_index.indexed_position()
    since = Message.objects.get(stream=f"warehouse::order-{alice}", position=0).time
    recent = found(operator, field="customer_name=Alice", since=since.strftime("%Y-%m-%d %H:%M"))
    assert recent == expected("customer_name", "Alice")


def test_payload_search_before_the_first_step_scans_as_before(operator, book, order):
    order(book, customer="Alice")
    assert payload_index.indexed_position() == -1
    assert found(operator, field="customer_name=Alice") == expected("customer_name", "Alice")
