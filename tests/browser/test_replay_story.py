"""Replay you can trust, the operator's story end to end in Chromium against daphne (with its
embedded worker): demo traffic orders more than the stock; the failures page shows one group
for the inventory handler's stock error over several books; a dry run says it would still fail;
the books are restocked through the shop; a dry run now shows the stock change and the
StockAdjusted it would raise, and nothing changed; the group is replayed as a background job
whose progress and the open message page's diagram turn green; a run whose payload is wrong is
fixed with edit-and-replay, and its page shows the diff and who made it. A staff user without
the permissions sees none of the buttons and gets 403 from their URLs."""

import json
import random
import re
import time
import uuid

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.core.management import call_command

from bookshelf.events import OrderShipped
from bookshelf.management.commands.bookshelf_demo import Traffic
from bookshelf.models import Book, Inventory, Order
from inspector.models import FailureGroup, HandlerRun, IndexerPosition, Message
from inspector.runtime.unit_of_work import unit_of_work

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

INVENTORY = "bookshelf.InventoryEventHandler"
STOCK_ERROR = re.compile(r"Not enough stock of '(?P<title>[^']+)'")


@pytest.fixture
def server_env():
    """daphne with its in-process worker; failing runs go dead at once (no retries)."""
    return {"INSPECTOR_EMBEDDED_WORKER": "1", "INSPECTOR_RETRIES": "0"}


def oversold_traffic(domain, *, books_wanted=2, runs_wanted=3, steps=400):
    """The demo's data, then its traffic with every new order asking for more than the stock,
    until the inventory handler has dead runs for `books_wanted` books or more."""
    call_command("bookshelf_demo", verbosity=0)
    traffic = Traffic(rng=random.Random(8), oversell=1.0, write=lambda line: None)
    dead = HandlerRun.objects.filter(handler=INVENTORY, status="dead")
    for _ in range(steps):
        traffic.step()
        titles = {
            STOCK_ERROR.match(e).group("title")
            for e in dead.values_list("error_message", flat=True)
            if STOCK_ERROR.match(e)
        }
        if len(titles) >= books_wanted and dead.count() >= runs_wanted:
            return titles
    pytest.fail(f"{steps} steps of oversold traffic left {dead.count()} dead inventory runs")


def snapshot():
    """Row counts of every model, the stock levels and the runs' states: what a dry run must
    leave exactly as it found it."""
    return (
        {model._meta.label: model._default_manager.count() for model in apps.get_models()},
        dict(Inventory.objects.values_list("book__title", "quantity")),
        sorted(HandlerRun.objects.values_list("id", "status", "attempts", "updated_at")),
    )


def settled_snapshot():
    """The snapshot once the server's background work has stopped changing it: the store
    indexer has read every message, and no run is left to run."""
    from inspector.readmodel.indexer import INDEXER

    for _ in range(100):
        last = Message.objects.order_by("-global_position").values_list("global_position")[:1]
        indexed = IndexerPosition.objects.filter(name=INDEXER, position=last[0][0]).exists()
        busy = HandlerRun.objects.filter(status__in=["pending", "running"]).exists()
        if indexed and not busy:
            return snapshot()
        time.sleep(0.1)
    pytest.fail("the server's indexer and worker did not settle in 10 s")


def test_the_operators_story_from_failure_group_to_green_diagrams(
    page, log_in, domain, monkeypatch, browser_context, browser_problems, django_user_model
):
    from playwright.sync_api import expect

    monkeypatch.setattr(domain.handler_named(INVENTORY), "retries", 0)
    titles = oversold_traffic(domain)
    dead = HandlerRun.objects.filter(handler=INVENTORY, status="dead")
    group = FailureGroup.objects.get(key=dead.first().failure_group)
    assert set(dead.values_list("failure_group", flat=True)) == {group.key}  # one cause
    count = dead.count()

    # The failures page: one group for the stock error, over several books.
    log_in(page, "/inspector/failures/")
    row = page.locator("#failures tr.failure-group", has_text="Not enough stock")
    expect(row).to_have_count(1)
    expect(row.locator(".count-dead")).to_have_text(str(count))
    row.get_by_role("link", name="DomainError").click()
    page.wait_for_url(re.compile(rf"/inspector/failures/{group.key}/$"))
    for title in titles:
        expect(page.locator("table.group-runs")).to_contain_text(f"Not enough stock of '{title}'")
    group_url = page.url

    # A dry run says a replay would fail again, as things are.
    page.get_by_role("button", name="Dry run the oldest run").click()
    expect(page.get_by_role("heading", name="Dry run", exact=True)).to_be_visible()
    expect(page.locator("#dry-run-outcome")).to_contain_text("Would fail again: DomainError")

    # The books are restocked through the shop.
    involved = set()
    for run in dead.select_related("message"):
        involved.update(item["book_id"] for item in run.message.data["items"])
    page.goto(f"{page.base_url}/inventory/")
    for book in Book.objects.filter(id__in=involved):
        restocked = Inventory.objects.get(book=book).quantity + 60
        page.get_by_label(f"Copies of {book.title} to add").fill("60")
        page.get_by_role("button", name=f"Restock {book.title}").click()
        expect(page.locator(f"#inventory-{book.id} td.number")).to_have_text(
            re.compile(rf"^\s*{restocked}\s*$")
        )

    # Now a dry run shows the stock it would take and the StockAdjusted it would raise ...
    before = settled_snapshot()
    page.goto(group_url)
    page.get_by_role("button", name="Dry run the oldest run").click()
    outcome = page.locator("#dry-run-outcome")
    expect(outcome).to_contain_text("Would succeed")
    oldest = dead.order_by("global_position").first()
    changes = page.locator("#dry-run-rows table.dry-run-updated")
    expect(page.locator("#dry-run-rows")).to_contain_text("bookshelf.inventory")
    for item in oldest.message.data["items"]:
        stock = Inventory.objects.get(book_id=item["book_id"]).quantity
        quantity = changes.locator("tr", has=page.locator("code", has_text="quantity")).filter(
            has_text=f"{stock}"
        )
        expect(quantity.first).to_contain_text(f"→ {stock - item['quantity']}")
    expect(page.locator("#dry-run-events")).to_contain_text("StockAdjusted")
    # ... and nothing changed: no row, no stock level, no run.
    after = snapshot()
    assert after == before, [
        (part, {k: (v, after[n].get(k)) for k, v in before[n].items() if after[n].get(k) != v})
        if isinstance(before[n], dict)
        else (part, set(after[n]) ^ set(before[n]))
        for n, part in enumerate(("rows", "stock", "runs"))
        if after[n] != before[n]
    ]

    # The oldest failed order's message page stays open in a second tab.
    watch = browser_context.new_page()
    watch.goto(f"{page.base_url}/inspector/messages/{oldest.message_id}/")
    arrow = '#diagram g.arrow.run.{}[data-source*="InventoryEventHandler"]'.format
    expect(watch.locator(arrow("dead"))).to_have_count(1)
    expect(watch.locator(arrow("succeeded"))).to_have_count(0)

    # The group is replayed as a background job, after a confirmation that counts its runs.
    page.goto(group_url)
    page.get_by_label("Reason to replay (optional)").fill("restocked in the shop")
    page.get_by_role("button", name="Replay handler runs…").click()
    expect(page.locator("#operation-summary")).to_have_text(
        f"{count} handler runs of this group will be replayed: {count} dead."
    )
    page.get_by_role("button", name=f"Yes, replay {count} runs").click()
    page.wait_for_url(re.compile(r"/inspector/jobs/\d+/$"))
    progress = page.locator("#job-progress")
    expect(progress.locator(".count-total")).to_have_text(str(count))
    expect(progress.locator(".count-done")).to_have_text(str(count), timeout=20_000)
    expect(progress.locator(".count-left")).to_have_text("0")
    # The open message page's diagram drew the new attempt, green, without a reload.
    expect(watch.locator(arrow("succeeded"))).to_have_count(1, timeout=10_000)
    assert not dead.exists()
    assert set(HandlerRun.objects.filter(handler=INVENTORY).values_list("status", flat=True)) == {
        "succeeded"
    }

    # A shipped order whose event names a book that does not exist: no replay can help it.
    order = Order.objects.filter(status="SHIPPED").first()
    book = Book.objects.order_by("title").first()
    wrong = str(uuid.uuid4())
    with unit_of_work(domain) as uow:
        uow.append(
            OrderShipped(
                order_id=order.id,
                customer_name=order.customer_name,
                items=[{"book_id": wrong, "quantity": 1}],
            ),
            stream=order.stream,
        )
    broken = HandlerRun.objects.get(handler=INVENTORY, status="dead")
    assert f"No inventory for book {wrong}" in broken.error_message
    stored = Message.objects.values("data", "metadata").get(pk=broken.message_id)
    page.goto(f"{page.base_url}/inspector/messages/{broken.message_id}/")
    page.get_by_role("link", name="Edit and replay InventoryEventHandler").click()
    expect(page.get_by_role("heading", name="Edit and replay", exact=True)).to_be_visible()
    items = page.get_by_label(re.compile(r"^items:?$"))
    items.fill(json.dumps([{"book_id": str(book.id), "quantity": 1}]))
    page.get_by_role("button", name="Show the diff").click()
    diff = page.locator(
        "section", has=page.get_by_role("heading", name="Diff against the stored payload")
    )
    expect(diff).to_contain_text(wrong)
    expect(diff).to_contain_text(str(book.id))
    page.get_by_role("button", name="Dry run the edited payload").click()
    expect(page.locator("#dry-run-outcome")).to_contain_text("Would succeed")
    expect(page.locator("#dry-run-events")).to_contain_text("StockAdjusted")
    page.get_by_label("Why this edit?").fill("the book id was mistyped")
    page.get_by_role("button", name="Replay with this payload").click()
    page.wait_for_url(re.compile(rf"/inspector/messages/{broken.message_id}/"))
    badge = page.locator(f"#runs #run-{broken.id}")
    expect(badge).to_have_attribute("data-status", "succeeded", timeout=15_000)
    runs = page.locator("#runs")
    expect(runs).to_contain_text("Replayed with an edited payload by ada")
    expect(runs).to_contain_text("the book id was mistyped")
    expect(runs.locator(".edit-details")).to_contain_text(str(book.id))
    assert Message.objects.values("data", "metadata").get(pk=broken.message_id) == stored

    # A staff user without the permissions: none of the buttons the operator sees on a dead
    # run's page and its group's page, and 403 from their URLs.
    with unit_of_work(domain) as uow:
        uow.append(
            OrderShipped(
                order_id=order.id,
                customer_name=order.customer_name,
                items=[{"book_id": str(uuid.uuid4()), "quantity": 1}],
            ),
            stream=order.stream,
        )
    broken = HandlerRun.objects.get(handler=INVENTORY, status="dead")
    actions = re.compile(r"^(Replay(?! jobs$)|Dry run|Edit and replay|Retry now|Mark handler runs)")
    pages = [
        f"{page.base_url}/inspector/messages/{broken.message_id}/",
        f"{page.base_url}/inspector/failures/{broken.failure_group}/",
    ]
    for url in pages:  # the operator's view of them
        page.goto(url)
        expect(
            page.get_by_role("button", name=actions)
            .or_(page.get_by_role("link", name=actions))
            .first
        ).to_be_visible()
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_message"))
    other = browser_context.browser.new_context(viewport={"width": 1366, "height": 860})
    other.on("page", browser_problems.watch)
    try:
        look = other.new_page()
        look.goto(f"{page.base_url}/admin/login/?next=/inspector/failures/")
        look.get_by_label("Username").fill("viewer")
        look.get_by_label("Password").fill("pw-viewer")
        look.get_by_role("button", name="Log in").click()
        look.wait_for_url(f"{page.base_url}/inspector/failures/")
        for url in pages:
            look.goto(url)
            expect(look.locator("main")).to_contain_text("ObjectNotFound")
            expect(look.get_by_role("button", name=actions)).to_have_count(0)
            expect(look.get_by_role("link", name=actions)).to_have_count(0)
        group = FailureGroup.objects.get(key=broken.failure_group)
        forbidden = {
            "GET": [f"/inspector/runs/{broken.id}/dry-run/", f"/inspector/runs/{broken.id}/edit/"],
            "POST": [
                f"/inspector/runs/{broken.id}/dry-run/",
                f"/inspector/runs/{broken.id}/edit/",
                f"/inspector/runs/{broken.id}/retry-now/",
                f"/inspector/failures/{group.key}/dry-run/",
                f"/inspector/failures/{group.key}/retry-now/",
            ],
        }
        token = next(c["value"] for c in other.cookies() if c["name"] == "csrftoken")
        for method, paths in forbidden.items():
            for path in paths:
                response = look.request.fetch(
                    f"{page.base_url}{path}",
                    method=method,
                    headers={"X-CSRFToken": token, "Referer": page.base_url + "/"},
                )
                assert response.status == 403, (method, path, response.status)
    finally:
        other.close()
