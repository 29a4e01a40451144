"""The live inspector in a real browser against daphne (websockets and the embedded worker)."""

import re
import time

import pytest

from bookshelf.commands import AddBook, ConfirmOrder, PlaceOrder, ShipOrder
from inspector.models import HandlerRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def server_env():
    """daphne with its in-process worker (no retries: failing runs go dead)."""
    return {"INSPECTOR_EMBEDDED_WORKER": "1", "INSPECTOR_RETRIES": "0"}


@pytest.fixture
def browser_pages(browser_context, server_url, django_user_model):
    """Two logged-in pages of one staff user: the dashboard and the shop."""
    django_user_model.objects.create_superuser("grace", password="correct horse battery")
    login = browser_context.new_page()
    login.goto(f"{server_url}/admin/login/?next=/inspector/")
    login.get_by_label("Username").fill("grace")
    login.get_by_label("Password").fill("correct horse battery")
    login.get_by_role("button", name="Log in").click()
    login.wait_for_url(f"{server_url}/inspector/")
    return login, browser_context.new_page(), server_url


def test_an_order_placed_in_one_page_appears_live_in_the_dashboard(browser_pages, domain):
    from playwright.sync_api import expect

    dashboard, shop, url = browser_pages
    book_id = domain.process(AddBook(title="Dune", author="Frank Herbert", price_amount=9.99))
    expect(dashboard.locator("#feed-status")).to_have_text("Live")

    shop.goto(f"{url}/orders/")
    shop.get_by_label("Customer name").fill("Ada Lovelace")
    shop.get_by_label("Book, line 1").select_option(str(book_id))
    shop.get_by_label("Quantity, line 1").fill("2")
    shop.get_by_role("button", name="Place order").click()
    expect(shop.get_by_text("OrderPlaced")).to_be_visible()  # the shop's receipt
    placed_at = time.monotonic()

    row = dashboard.locator("#feed-rows .feed-row", has_text="OrderPlaced")
    expect(row).to_be_visible(timeout=1000)
    assert time.monotonic() - placed_at < 1.5
    expect(dashboard.locator("#feed-rows .feed-row", has_text="PlaceOrder")).to_be_visible()

    row.get_by_role("link", name="OrderPlaced").click()
    dashboard.wait_for_url(re.compile(r"/inspector/messages/"))
    diagram = dashboard.locator(".diagram svg")
    expect(diagram).to_be_visible()
    for participant in ("PlaceOrder", "OrderCommandHandler", "Order", "Event store"):
        expect(diagram.locator("g.participant", has_text=participant).first).to_be_visible()
    expect(dashboard.locator(".payload pre").first).to_contain_text(
        '"customer_name": "Ada Lovelace"'
    )


def test_a_failed_run_turns_green_on_the_open_dashboard_after_replay(
    browser_pages, domain, monkeypatch
):
    from playwright.sync_api import expect

    dashboard, shop, url = browser_pages
    # No automatic retries in this process either: the run is dead until someone replays it.
    monkeypatch.setattr(domain.handler_named("bookshelf.InventoryEventHandler"), "retries", 0)
    book_id = domain.process(AddBook(title="Dune", author="Frank Herbert", price_amount=9.99))
    order_id = domain.process(
        PlaceOrder(customer_name="Oversold", items=[{"book_id": str(book_id), "quantity": 12}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    domain.process(ShipOrder(order_id=order_id))  # 10 in stock: the inventory run fails
    run = HandlerRun.objects.get(handler="bookshelf.InventoryEventHandler")
    assert run.status == "dead"

    dashboard.reload()
    badge = dashboard.locator(f"#run-{run.id}")
    expect(badge).to_have_attribute("data-status", "dead")

    from bookshelf.commands import AdjustStock

    domain.process(AdjustStock(book_id=str(book_id), amount=5))
    shop.goto(f"{url}/inspector/messages/{run.message_id}/")
    shop.get_by_label("Why replay InventoryEventHandler?").fill("restocked")
    shop.get_by_role("button", name="Replay InventoryEventHandler").click()

    # The embedded worker in daphne runs it; the open dashboard's badge changes in place.
    expect(badge).to_have_attribute("data-status", "succeeded", timeout=10_000)
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.replays.get().reason == "restocked"


def test_an_open_inventory_page_shows_the_stock_drop_without_a_reload(browser_pages, domain):
    from playwright.sync_api import expect

    inventory, _, url = browser_pages
    book_id = domain.process(AddBook(title="Dune", author="Frank Herbert", price_amount=9.99))
    inventory.goto(f"{url}/inventory/")
    stock = inventory.locator(f"#stock-{book_id}")
    expect(stock).to_have_text("10")
    inventory.evaluate("window.notReloaded = true")
    inventory.wait_for_timeout(300)  # the socket is open

    order_id = domain.process(
        PlaceOrder(customer_name="Ada", items=[{"book_id": str(book_id), "quantity": 8}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    domain.process(ShipOrder(order_id=order_id))

    expect(stock).to_contain_text("2")
    expect(stock.get_by_text("Low stock")).to_be_visible()
    assert inventory.evaluate("window.notReloaded") is True
