"""Failure groups in a real browser against daphne: an oversold book's stock error appears
live on the open failures page, one group for several books, and the group is replayed from
its page after a confirmation that counts its runs, as a replay job whose page shows it done."""

import re

import pytest

from bookshelf.commands import AddBook, AdjustStock, ConfirmOrder, PlaceOrder, ShipOrder
from inspector.models import HandlerRun, HandlerRunReplay

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

INVENTORY = "bookshelf.InventoryEventHandler"


@pytest.fixture
def server_env():
    """daphne with its in-process worker (no retries: failing runs go dead)."""
    return {"INSPECTOR_EMBEDDED_WORKER": "1", "INSPECTOR_RETRIES": "0"}


def oversell(domain, title):
    """A new book (10 in stock) and a shipped order of 12 copies: its inventory run fails."""
    book_id = domain.process(AddBook(title=title, author="Someone", price_amount=9.99))
    order_id = domain.process(
        PlaceOrder(customer_name="Oversold", items=[{"book_id": str(book_id), "quantity": 12}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    domain.process(ShipOrder(order_id=order_id))
    return book_id


def test_stock_errors_appear_live_as_one_group_and_the_group_is_replayed(
    page, log_in, domain, monkeypatch
):
    from playwright.sync_api import expect

    monkeypatch.setattr(domain.handler_named(INVENTORY), "retries", 0)  # dead at once here too
    log_in(page, "/inspector/failures/")
    expect(page.locator("#failures")).to_contain_text("No failed or dead runs")

    books = [oversell(domain, title) for title in ("Dune", "Emma")]
    row = page.locator("#failures tr.failure-group")
    expect(row).to_have_count(1, timeout=10_000)  # over its websocket, without a reload
    expect(row.locator(".count-dead")).to_have_text("2")
    expect(row.locator(".count-streams")).to_have_text("2")
    expect(row).to_contain_text("Not enough stock of 'Dune': 10 in stock, 12 requested")

    for book_id in books:
        domain.process(AdjustStock(book_id=str(book_id), amount=5))
    row.get_by_role("link", name="DomainError").click()
    page.wait_for_url(re.compile(r"/inspector/failures/[0-9a-f]{32}/$"))
    expect(page.locator("pre.traceback")).to_contain_text("in adjust_stock")
    expect(page.locator("table.group-runs tbody tr")).to_have_count(2)

    page.get_by_label("Reason to replay (optional)").fill("restocked")
    page.get_by_role("button", name="Replay handler runs…").click()
    expect(page.locator("#operation-summary")).to_have_text(
        "2 handler runs of this group will be replayed: 2 dead."
    )
    assert not HandlerRunReplay.objects.exists()
    page.get_by_role("button", name="Yes, replay 2 runs").click()
    # A replay job: the embedded worker carries it out while its page shows the progress.
    page.wait_for_url(re.compile(r"/inspector/jobs/\d+/$"))
    expect(page.locator("#messages")).to_contain_text("2 handler runs to be replayed")
    expect(page.locator("#job-progress .count-done")).to_have_text("2", timeout=15_000)
    expect(page.locator("#job-progress .count-left")).to_have_text("0")

    runs = HandlerRun.objects.filter(handler=INVENTORY)
    assert set(runs.values_list("status", "failure_group")) == {("succeeded", "")}
    assert set(HandlerRunReplay.objects.values_list("reason", flat=True)) == {"restocked"}
    page.goto(page.base_url + "/inspector/failures/")
    expect(page.locator("#failures")).to_contain_text("No failed or dead runs")
