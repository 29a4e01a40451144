"""The message and flow pages follow their runs over the websocket: a replay from the page turns
the diagram and the run list green without a reload and without polling."""

import re

import pytest

from bookshelf.commands import AddBook, AdjustStock, ConfirmOrder, PlaceOrder, ShipOrder
from inspector.models import HandlerRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
INVENTORY = "bookshelf.InventoryEventHandler"


@pytest.fixture
def server_env():
    """daphne with its in-process worker (no retries: failing runs go dead)."""
    return {"INSPECTOR_EMBEDDED_WORKER": "1", "INSPECTOR_RETRIES": "0"}


@pytest.fixture
def operator_page(browser_context, server_url, django_user_model):
    """A logged-in page of a staff user who may replay runs."""
    django_user_model.objects.create_superuser("grace", password="correct horse battery")
    page = browser_context.new_page()
    page.goto(f"{server_url}/admin/login/?next=/inspector/")
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server_url}/inspector/")
    return page, server_url


@pytest.fixture
def dead_run(domain, monkeypatch):
    """A shipped order of 12 copies with 10 in stock: its inventory run is dead. Restocked."""
    monkeypatch.setattr(domain.handler_named(INVENTORY), "retries", 0)
    book_id = domain.process(AddBook(title="Dune", author="Frank Herbert", price_amount=9.99))
    order_id = domain.process(
        PlaceOrder(customer_name="Oversold", items=[{"book_id": str(book_id), "quantity": 12}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    domain.process(ShipOrder(order_id=order_id))
    run = HandlerRun.objects.get(handler=INVENTORY)
    assert run.status == "dead"
    domain.process(AdjustStock(book_id=str(book_id), amount=5))
    return run


def requests_after_load(page):
    """The requests the page makes from now on (method, path)."""
    made = []
    page.on("request", lambda request: made.append((request.method, request.url)))
    return made


def inventory_arrow(page, status):
    return page.locator(f'#diagram g.arrow.run.{status}[data-source*="InventoryEventHandler"]')


def test_a_replay_from_the_message_page_turns_it_and_the_flow_page_green_without_polling(
    operator_page, dead_run
):
    from playwright.sync_api import expect

    page, url = operator_page
    flow = page.context.new_page()  # the same flow open in a second tab
    flow.goto(f"{url}/inspector/flows/{dead_run.message.correlation_id}/")
    tree_badge = flow.locator(f"#causation-tree #run-{dead_run.id}")
    expect(tree_badge).to_have_attribute("data-status", "dead")
    page.goto(f"{url}/inspector/messages/{dead_run.message_id}/")
    badge = page.locator(f"#runs #run-{dead_run.id}")
    expect(badge).to_have_attribute("data-status", "dead")
    expect(inventory_arrow(page, "dead")).to_have_count(1)
    page.wait_for_timeout(500)  # the sockets' first renders have come
    page.evaluate("window.notReloaded = true")
    made, made_by_flow = requests_after_load(page), requests_after_load(flow)

    page.get_by_label("Why replay InventoryEventHandler?").fill("restocked")
    page.get_by_role("button", name="Replay InventoryEventHandler").click()

    # The embedded worker runs it; the sockets bring the run list, the diagram and lineage.
    expect(badge).to_have_attribute("data-status", "succeeded", timeout=10_000)
    expect(inventory_arrow(page, "succeeded")).to_have_count(1)
    expect(page.locator("#message-effects")).to_contain_text("StockAdjusted")
    expect(page.locator("#runs")).to_contain_text("Replayed by grace")
    # The action's notice stays where the page shows notices, through the live swaps.
    expect(page.locator("#messages")).to_have_text(f"Replay of {INVENTORY} queued.")
    expect(tree_badge).to_have_attribute("data-status", "succeeded")
    expect(inventory_arrow(flow, "succeeded")).to_have_count(1)
    expect(flow.locator("#causation-tree")).to_contain_text("StockAdjusted")
    page.wait_for_timeout(1500)  # long enough for the old page's one-second poll to show
    assert page.evaluate("window.notReloaded") is True
    paths = [(method, re.sub(r"^https?://[^/]+", "", address)) for method, address in made]
    assert paths == [("POST", f"/inspector/runs/{dead_run.id}/replay/")]  # nothing polled
    assert made_by_flow == []


def test_a_live_swap_that_comes_before_the_answer_to_a_replay_does_not_lose_the_answer(
    operator_page, dead_run
):
    """The socket brings the run list (without the Replay form, now the run is queued) before
    the replay's own answer: the answer's notice still shows and nothing goes to the console
    (htmx looked for it inside the detached old list: htmx:oobErrorNoTarget)."""
    from playwright.sync_api import expect

    page, url = operator_page
    page.goto(f"{url}/inspector/messages/{dead_run.message_id}/")
    badge = page.locator(f"#runs #run-{dead_run.id}")
    expect(badge).to_have_attribute("data-status", "dead")
    page.wait_for_timeout(500)  # the socket's first render has come

    def answer_late(route):
        response = route.fetch()  # the replay is made; its commit sends the live run list
        page.wait_for_timeout(1500)  # which arrives first
        route.fulfill(response=response)

    page.route(f"**/inspector/runs/{dead_run.id}/replay/", answer_late)
    page.get_by_role("button", name="Replay InventoryEventHandler").click()
    expect(page.locator("#messages")).to_have_text(f"Replay of {INVENTORY} queued.")
    expect(badge).to_have_attribute("data-status", "succeeded", timeout=10_000)
    expect(page.locator("#runs")).to_contain_text("Replayed by grace")
