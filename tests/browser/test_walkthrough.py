"""A staff member walks through every shop, inspector and inspector-admin page while demo
traffic with failing notifications runs: on each page live updates arrive for a moment, then
axe-core checks it against WCAG 2 A/AA. The guard (conftest.py) fails the walk on any console
error or failed request, such as an out-of-band swap for an element that is not there."""

import re
import subprocess
import sys
import time
import uuid

import pytest
from django.urls import reverse

from bookshelf.models import Book, Order
from inspector.models import HandlerRun, Message
from tests.browser.conftest import ROOT, process_environment
from tests.browsers import accessibility_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAILURES = {
    "INSPECTOR_DEMO_FAILURE_RATE": "0.3",  # the notification gateway fails 30% of sends
    "INSPECTOR_RETRIES": "1",
    "INSPECTOR_BACKOFF_BASE": "0.2",
    "INSPECTOR_BACKOFF_CAP": "0.5",
}
LIVE = 1.0  # seconds a page with live updates stays open before it is checked (5 commands/s)
STILL = 0.2  # the others: their htmx requests settle


@pytest.fixture
def server_env():
    """daphne with its worker, retrying the failed notifications (some fail again: dead)."""
    return {"INSPECTOR_EMBEDDED_WORKER": "1", **FAILURES}


class DemoTraffic:
    """`bookshelf_demo --traffic` in its own process on the test database: the catalog and
    orders, then a steady stream of placed, confirmed and shipped orders."""

    def __init__(self, log_path):
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "bookshelf_demo", "--traffic", "--rate", "5"]
            + ["--seed", "12"],
            cwd=ROOT,
            env=process_environment(INSPECTOR_EMBEDDED_WORKER="0", **FAILURES),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_sending(self, timeout=60):
        """Until the catalog is loaded and the traffic has started."""
        deadline = time.monotonic() + timeout
        while "Sending traffic" not in self.log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the demo did not start: " + self.log_path.read_text())
            time.sleep(0.2)

    def stop(self):
        self.process.terminate()  # it stops after its current command
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def demo_traffic(transactional_db, tmp_path):
    """The demo, started before daphne (both take seconds to start) and stopped before the
    test database is emptied."""
    traffic = DemoTraffic(tmp_path / "demo.log")
    try:
        yield traffic
    finally:
        traffic.stop()


def failed_run(timeout=20):
    """The latest handler run that failed (the traffic's notifications fail 30% of sends)."""
    deadline = time.monotonic() + timeout
    while True:
        run = (
            HandlerRun.objects.filter(attempts__gt=0, status__in=["failed", "dead"])
            .order_by("-updated_at")
            .first()
        )
        if run is not None:
            return run
        assert time.monotonic() < deadline, "no handler run failed under the demo traffic"
        time.sleep(0.2)


class Walk:
    """Opens pages and keeps every accessibility violation found, to report them together."""

    def __init__(self, page):
        from axe_playwright_python.sync_playwright import Axe

        self.page = page
        self.axe = Axe()
        self.violations = []
        self.checked = []
        self.swaps = {}  # page -> out-of-band swaps seen there: the live updates did arrive
        page.add_init_script(
            "window.liveSwaps = 0;"
            'document.addEventListener("htmx:oobAfterSwap", () => { window.liveSwaps++; });'
        )

    def open(self, path, *, wait=STILL):
        self.page.goto(self.page.base_url + path)
        self.check(path, wait=wait)

    def check(self, label, *, wait=STILL):
        """Let live updates and htmx requests arrive, then run axe on the page as it is."""
        self.page.wait_for_timeout(wait * 1000)
        self.page.wait_for_load_state("networkidle")
        self.violations += accessibility_violations(self.axe, self.page, label)
        self.checked.append(label)
        self.swaps[label] = self.page.evaluate("window.liveSwaps")


def test_every_page_is_clean_and_accessible_under_demo_traffic(
    demo_traffic, page, django_user_model, browser_problems
):
    from playwright.sync_api import expect

    demo_traffic.wait_until_sending()
    walk = Walk(page)
    django_user_model.objects.create_superuser("ada", password="correct horse battery")

    # Logged out: the shop's login page, then in through it.
    walk.open("/accounts/login/?next=/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(page.base_url + "/")

    # The shop.
    browser_problems.expect(422, r"/books/add/$")  # the form's answer to bad input
    page.get_by_role("button", name="Add book to catalog").click()
    expect(page.locator("#catalog [aria-invalid=true]").first).to_be_visible()
    walk.check("/ (catalog, add book refused)", wait=LIVE)
    page.get_by_label("Title").fill("The Dispossessed")
    page.get_by_label("Author").fill("Ursula K. Le Guin")
    page.get_by_label("Price").fill("11.50")
    page.get_by_role("button", name="Add book to catalog").click()
    expect(page.locator("#messages")).to_contain_text("BookAdded")
    walk.check("/ (add book, done)", wait=LIVE)
    book = Book.objects.order_by("title").first()
    walk.open(reverse("bookshelf:book-detail", args=[book.id]), wait=LIVE)

    walk.open("/orders/", wait=LIVE)
    browser_problems.expect(422, r"/orders/place/$")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator("#place-order [aria-invalid=true]").first).to_be_visible()
    walk.check("/orders/ (place order, refused)")
    page.get_by_label("Customer name").fill("Ada Lovelace")
    page.get_by_label("Book, line 1").select_option(str(book.id))
    page.get_by_label("Quantity, line 1").fill("1")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator("#messages")).to_contain_text("OrderPlaced")
    page.wait_for_timeout(LIVE * 1000)  # the receipt was checked on the catalog
    order = Order.objects.order_by("-placed_at").first()
    walk.open(reverse("bookshelf:order-detail", args=[order.id]), wait=LIVE)
    walk.open("/inventory/", wait=LIVE)
    walk.open("/notifications/", wait=LIVE)
    missing = f"/orders/{uuid.uuid4()}/"
    browser_problems.expect(404, re.escape(missing) + "$")
    walk.open(missing)
    expect(page.get_by_role("heading", name="No such order")).to_be_visible()

    # The inspector: the live page, paused while the traffic goes on, then resumed (it catches
    # up from the store: rows, and badges only for rows it shows).
    page.goto(page.base_url + "/inspector/")
    expect(page.locator("#feed-status")).to_have_text("Live")
    page.wait_for_timeout(LIVE * 1000)
    page.get_by_role("button", name="Pause").click()
    page.wait_for_timeout(LIVE * 1000)
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#feed-status")).to_contain_text("caught up")
    walk.check("/inspector/ (paused and resumed)", wait=LIVE)

    # The pages of a message whose run failed (the traffic's notifications fail).
    run = failed_run()
    message = Message.objects.get(pk=run.message_id)
    walk.open(reverse("inspector:message", args=[message.id]))
    walk.open(reverse("inspector:flow", args=[message.correlation_id]))
    walk.open(reverse("inspector:streams"))
    walk.open(reverse("inspector:category", args=[message.category]))
    walk.open(reverse("inspector:stream", args=[message.stream]))
    walk.open(reverse("inspector:handlers"))
    # Failure groups: the page asks for its table again every 2 s while failures come in.
    walk.open(reverse("inspector:failures"), wait=LIVE * 3)
    group = page.locator("#failures tr.failure-group").first
    expect(group).to_be_visible()
    walk.open(reverse("inspector:failure-group", args=[group.get_attribute("data-group")]))
    expect(page.get_by_role("heading", name=re.compile(r" in "))).to_be_visible()
    walk.open(reverse("inspector:map"))
    walk.open(reverse("inspector:search"))
    walk.open(reverse("inspector:search") + "?type=OrderPlaced&field=customer_name%3DAda+Lovelace")
    expect(page.locator("tr[data-global-position]").first).to_be_visible()

    # The admin of the inspector's models (a stream's messages: the rows look alike).
    walk.open(reverse("admin:inspector_message_changelist") + f"?stream={message.stream}")
    walk.open(reverse("admin:inspector_message_change", args=[message.pk]))
    walk.open(reverse("admin:inspector_handlerrun_changelist") + f"?status__exact={run.status}")
    walk.open(reverse("admin:inspector_handlerrun_change", args=[run.pk]))

    shop = sum(count for label, count in walk.swaps.items() if not label.startswith("/inspector"))
    assert shop > 0, walk.swaps
    assert walk.swaps["/inspector/ (paused and resumed)"] > 0, walk.swaps
    assert not walk.violations, (
        f"WCAG 2 A/AA violations on {len(walk.checked)} pages checked:\n"
        + "\n".join(f"- {v}" for v in walk.violations)
    )
