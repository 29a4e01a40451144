"""A person in Chromium: orders placed, confirmed and shipped; a failed run replayed."""

import re

import pytest
from playwright.sync_api import expect

from bookshelf.models import Inventory, Order
from inspector.models import HandlerRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def place_order(page, customer, lines):
    """Fill the Place order form: `lines` is a list of (book, quantity)."""
    page.get_by_label("Customer name").fill(customer)
    for number, (book, quantity) in enumerate(lines, start=1):
        page.get_by_label(f"Book, line {number}").select_option(str(book.id))
        page.get_by_label(f"Quantity, line {number}").fill(str(quantity))
    page.get_by_role("button", name="Place order").click()


def test_place_confirm_and_ship_two_books_then_see_the_stock_drop(page, log_in, add_book):
    dune = add_book(title="Dune", price=10.0)
    emma = add_book(title="Emma", price=2.5)
    log_in(page, "/orders/")
    page.evaluate("window.stillTheSamePage = true")  # gone if anything reloads the page

    place_order(page, "Alice Johnson", [(dune, 2), (emma, 3)])
    expect(page.locator("#messages")).to_contain_text("OrderPlaced → 0 handler runs")
    row = page.locator("tr", has_text="Alice Johnson")
    expect(row).to_contain_text("2 × Dune, 3 × Emma")
    expect(row).to_contain_text("USD 27.50")

    row.get_by_role("button", name=re.compile(r"^Confirm order \w+ for Alice Johnson$")).click()
    expect(row.locator(".badge")).to_have_text("Confirmed")
    expect(page.locator("#messages")).to_contain_text("OrderConfirmed → 1 handler run")

    row.get_by_role("button", name=re.compile(r"^Ship order \w+ to Alice Johnson$")).click()
    expect(row.locator(".badge")).to_have_text("Shipped")
    receipt = page.locator("#messages a", has_text="OrderShipped → 2 handler runs")
    expect(receipt).to_have_attribute("href", re.compile(r"^/inspector/messages/[0-9a-f-]{36}/$"))
    assert page.evaluate("window.stillTheSamePage") is True  # htmx swapped the row in place

    page.get_by_role("link", name="Inventory").click()
    expect(page.locator(f"#inventory-{dune.id} td.number")).to_have_text(re.compile(r"^\s*8\s*$"))
    expect(page.locator(f"#inventory-{emma.id} td.number")).to_have_text(re.compile(r"^\s*7\s*$"))
    assert Order.objects.get().status == "SHIPPED"


def test_an_oversold_order_fails_a_run_that_is_replayed_after_a_restock(page, log_in, add_book):
    dune = add_book(title="Dune", price=10.0)  # ten in stock
    log_in(page, "/orders/")

    place_order(page, "Bob Smith", [(dune, 12)])
    row = page.locator("tr", has_text="Bob Smith")
    row.get_by_role("button", name=re.compile("^Confirm order")).click()
    expect(row.locator(".badge")).to_have_text("Confirmed")
    row.get_by_role("button", name=re.compile("^Ship order")).click()
    expect(page.locator("#messages")).to_contain_text("OrderShipped → 2 handler runs, 1 failed")

    # The operator finds the failed run in the admin.
    page.goto(f"{page.base_url}/admin/inspector/handlerrun/?status__exact=failed")
    failed_row = page.locator("#result_list tbody tr")
    expect(failed_row).to_have_count(1)
    expect(failed_row).to_contain_text("bookshelf.InventoryEventHandler")
    expect(failed_row).to_contain_text("Not enough stock of 'Dune': 10 in stock, 12 requested")
    run = HandlerRun.objects.get(status="failed")

    # Someone restocks the book in the shop.
    page.goto(f"{page.base_url}/inventory/")
    page.get_by_label("Copies of Dune to add").fill("5")
    page.get_by_role("button", name="Restock Dune").click()
    expect(page.locator(f"#inventory-{dune.id} td.number")).to_have_text(re.compile(r"^\s*15\s*$"))

    # The operator replays the run, through the confirmation page.
    page.goto(f"{page.base_url}/admin/inspector/handlerrun/?status__exact=failed")
    page.locator(f'input[name="_selected_action"][value="{run.pk}"]').check()
    page.locator('select[name="action"]').select_option("replay_selected")
    page.get_by_role("button", name="Go").click()
    expect(page.locator("#operation-summary")).to_contain_text(
        "1 of the 1 selected handler run will be replayed: 1 failed."
    )
    page.get_by_label("Reason (optional)").fill("Restocked Dune")
    page.get_by_role("button", name="Yes, replay 1 run").click()
    expect(page.locator(".messagelist")).to_contain_text("Queued 1 handler run to run again.")
    run.refresh_from_db()
    assert run.status == "pending"
    assert run.replays.get().reason == "Restocked Dune"

    from inspector.workers.worker import Worker

    Worker(worker_id="test").drain()

    page.goto(f"{page.base_url}/admin/inspector/handlerrun/{run.pk}/change/")
    expect(page.locator(".field-status_label")).to_contain_text("Succeeded")
    expect(page.locator(".field-attempts")).to_contain_text("2")
    page.goto(f"{page.base_url}/inventory/")
    expect(page.locator(f"#inventory-{dune.id}")).to_contain_text("Low stock")
    assert Inventory.objects.get(book=dune).quantity == 3
