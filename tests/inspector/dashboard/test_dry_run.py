"""The dry run pages (inspector/dashboard/views/dry_run.py): a run's and a failure group's,
who may use them, what they show (escaped), and the buttons on the message page, the group
page and the admin."""

import re
from html import unescape

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.core import mail
from django.db import connection
from django.urls import reverse

from inspector.models import HandlerRun, RunStatus
from tests.browsers import CHROMIUM, accessibility_violations
from tests.inspector.chromium import inspector_in_chromium, log_in
from tests.inspector.dashboard.test_escaping import HOSTILE, SCRIPT, assert_html_escaped
from tests.warehouse.commands import AdjustStock, ConfirmOrder, PlaceOrder, ShipOrder
from tests.warehouse.models import Inventory

pytestmark = pytest.mark.django_db

INVENTORY = "warehouse.InventoryEventHandler"
NOTIFY = "warehouse.OrderNotificationHandler"


def _login(client, django_user_model, name, perms=()):
    user = django_user_model.objects.create_user(name, password="not-used", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="inspector", codename__in=perms)
    )
    client.force_login(user)
    return client


@pytest.fixture
def operator(client, django_user_model):
    """Staff who may replay runs, and see payloads and the admin's runs."""
    return _login(
        client,
        django_user_model,
        "operator",
        ["replay_handlerrun", "view_message", "view_handlerrun"],
    )


@pytest.fixture
def watcher(client, django_user_model):
    """Staff who may look (payloads, the admin's runs) but not replay."""
    return _login(client, django_user_model, "watcher", ["view_message", "view_handlerrun"])


@pytest.fixture
def oversell(domain, add_book, django_capture_on_commit_callbacks):
    """Ship more copies of a new book than its stock (10), handled in sync: its inventory run
    fails and is recorded in a failure group. Returns the book and that run."""

    def oversell(title="Dune", *, quantity=12, customer="Alice"):
        with django_capture_on_commit_callbacks(execute=True):
            book = add_book(title=title)
            order_id = domain.process(
                PlaceOrder(
                    customer_name=customer,
                    customer_email="alice@example.com",
                    items=[{"book_id": str(book.id), "quantity": quantity}],
                )
            )
            domain.process(ConfirmOrder(order_id=order_id))
            domain.process(ShipOrder(order_id=order_id))
        run = HandlerRun.objects.get(handler=INVENTORY, message__data__order_id=str(order_id))
        assert run.status == (RunStatus.FAILED if quantity > 10 else RunStatus.SUCCEEDED)
        mail.outbox.clear()  # the order's confirmation and shipping, sent for real
        return book, run

    return oversell


def _counts():
    return {model._meta.label: model._base_manager.count() for model in apps.get_models()}


def _text(response):
    """The page's text as a reader sees it, spaces collapsed."""
    html = response.content.decode()
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_the_run_page_says_it_would_fail_then_after_restocking_shows_the_change(
    operator, oversell, domain
):
    book, run = oversell()
    url = reverse("inspector:run-dry-run", args=[run.pk])

    confirm = operator.get(url)
    assert confirm.status_code == 200
    assert "<h1>Dry run</h1>" in confirm.content.decode()
    assert re.search(r'<button type="submit" class="button">Dry run</button>', confirm.text)
    assert "Would" not in _text(confirm)  # a GET runs nothing

    before = _counts()
    failing = operator.post(url)
    assert failing.status_code == 200
    text = _text(failing)
    assert "Would fail again: DomainError" in text
    assert "Not enough stock of 'Dune': 10 in stock, 12 requested" in text
    assert "Traceback" in text

    domain.process(AdjustStock(book_id=str(book.id), amount=5))
    before = _counts()
    succeeding = operator.post(url)
    assert succeeding.status_code == 200
    assert _counts() == before and mail.outbox == []
    assert Inventory.objects.get(book_id=book.id).in_stock == 15
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.attempts == 1
    text = _text(succeeding)
    assert "Would succeed" in text and "Would fail" not in text
    assert "Inventories warehouse.inventory" in text
    assert re.search(r"in_stock 15 → 3\b", text)
    assert "warehouse.StockAdjusted.v1" in text
    assert '"amount": -12' in text  # its payload
    assert "Dry run again" in text


def test_the_notification_run_shows_the_email_it_would_send(operator, oversell, settings):
    settings.WAREHOUSE_MAIL_GATEWAY_DOWN = True
    _book, _run = oversell(quantity=1)
    run = HandlerRun.objects.get(handler=NOTIFY, message__type="warehouse.OrderShipped.v1")
    assert run.status == RunStatus.FAILED
    settings.WAREHOUSE_MAIL_GATEWAY_DOWN = False

    response = operator.post(reverse("inspector:run-dry-run", args=[run.pk]))

    text = _text(response)
    assert "Would succeed" in text
    assert "Emails it would send" in text and "alice@example.com" in text
    assert "Your warehouse order was shipped" in text
    assert mail.outbox == []


def test_hostile_values_are_text_on_the_dry_run_page(operator, oversell, domain):
    book, run = oversell(title=HOSTILE, customer=HOSTILE)
    url = reverse("inspector:run-dry-run", args=[run.pk])
    failing = operator.post(url)
    assert assert_html_escaped(failing.content.decode(), url)  # the stock error's title
    domain.process(AdjustStock(book_id=str(book.id), amount=5))
    succeeding = operator.post(url)
    html = succeeding.content.decode()
    assert "Would succeed" in html
    assert assert_html_escaped(html, url)  # StockAdjusted's title, in its payload
    assert SCRIPT in unescape(html)


def test_without_the_permission_403_and_no_buttons(watcher, oversell):
    _book, run = oversell()
    key = run.failure_group
    for url in (
        reverse("inspector:run-dry-run", args=[run.pk]),
        reverse("inspector:failure-group-dry-run", args=[key]),
    ):
        assert watcher.get(url).status_code == 403
        assert watcher.post(url).status_code == 403
    before = _counts()
    message_page = watcher.get(reverse("inspector:message", args=[run.message_id]))
    group_page = watcher.get(reverse("inspector:failure-group", args=[key]))
    admin_page = watcher.get(reverse("admin:inspector_handlerrun_change", args=[run.pk]))
    assert _counts() == before
    assert "Dry run" not in _text(message_page)
    assert "Dry run" not in _text(group_page)
    assert admin_page.status_code == 200 and "Dry run" not in _text(admin_page)


def test_the_buttons_are_there_for_an_operator_and_post_to_the_page(operator, oversell):
    _book, run = oversell()
    url = reverse("inspector:run-dry-run", args=[run.pk])
    message_page = operator.get(reverse("inspector:message", args=[run.message_id])).text
    # A link to the page with the button: the list is re-rendered live without a CSRF token.
    assert f'href="{url}"' in message_page
    assert 'Dry run<span class="visually-hidden"> InventoryEventHandler</span>' in message_page
    group_page = operator.get(reverse("inspector:failure-group", args=[run.failure_group])).text
    group_url = reverse("inspector:failure-group-dry-run", args=[run.failure_group])
    assert f'action="{group_url}"' in group_page and "Dry run the oldest run" in group_page
    admin_page = operator.get(reverse("admin:inspector_handlerrun_change", args=[run.pk])).text
    assert f'formaction="{url}">Dry run</button>' in admin_page
    # The admin's button posts its change form (with its CSRF token) to the page.
    assert "Would fail again" in _text(operator.post(url, {"_continue": "1"}))


def test_the_group_button_dry_runs_the_oldest_run(operator, oversell, domain):
    dune_book, dune = oversell("Dune")
    emma_book, emma = oversell("Emma", quantity=15)
    assert dune.failure_group == emma.failure_group and dune.global_position < emma.global_position
    domain.process(AdjustStock(book_id=str(dune_book.id), amount=5))  # Dune's would succeed
    url = reverse("inspector:failure-group-dry-run", args=[dune.failure_group])

    confirm = operator.get(url)
    response = operator.post(url)

    assert f"#run-{dune.pk}-anchor" in confirm.text and "oldest" in _text(confirm)
    assert f"#run-{dune.pk}-anchor" in response.text
    assert f"#run-{emma.pk}-anchor" not in response.text
    assert "Would succeed" in _text(response)
    assert "warehouse.StockAdjusted.v1" in response.text


def test_only_failed_or_dead_runs_and_only_get_and_post(operator, oversell):
    _book, run = oversell()
    succeeded = HandlerRun.objects.filter(status=RunStatus.SUCCEEDED).first()
    refused = operator.post(reverse("inspector:run-dry-run", args=[succeeded.pk]))
    assert refused.status_code == 409
    assert "only failed or dead runs can be dry run" in _text(refused)
    assert "Would" not in _text(refused)
    assert operator.put(reverse("inspector:run-dry-run", args=[run.pk])).status_code == 405
    assert (
        operator.post(reverse("inspector:failure-group-dry-run", args=["0" * 32])).status_code
        == 404
    )


def restock(domain, book):
    """AdjustStock from inside Playwright's sync API: the connection it used there outlived
    the test on PostgreSQL (reported at the session's end) unless closed at once."""
    try:
        domain.process(AdjustStock(book_id=str(book.id), amount=5))
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium (make test installs it)")
def test_the_dry_run_pages_are_accessible_and_clean_in_a_browser(
    domain, add_book, django_user_model, tmp_path, monkeypatch
):
    """From the message page's link to the result, failing and then succeeding: no WCAG 2
    A/AA violation (axe-core), no console error or failed request."""
    from axe_playwright_python.sync_playwright import Axe

    book = add_book(title="Dune")  # committed: sync dispatch stocks it
    order_id = domain.process(
        PlaceOrder(customer_name="Alice", items=[{"book_id": str(book.id), "quantity": 12}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    domain.process(ShipOrder(order_id=order_id))
    run = HandlerRun.objects.get(handler=INVENTORY, message__data__order_id=str(order_id))
    assert run.status == RunStatus.FAILED
    django_user_model.objects.create_superuser("ada", password="correct horse battery")
    violations, axe = [], Axe()
    with inspector_in_chromium(tmp_path, monkeypatch) as (base, page, problems):
        message_page = f"/inspector/messages/{run.message_id}/"
        log_in(page, base, "ada", "correct horse battery", message_page)

        page.get_by_role("link", name="Dry run InventoryEventHandler").click()
        page.wait_for_url(f"{base}/inspector/runs/{run.pk}/dry-run/")
        violations += accessibility_violations(axe, page, "dry run, the confirmation")
        page.get_by_role("button", name="Dry run", exact=True).click()
        page.get_by_text("Would fail again: DomainError").wait_for()
        violations += accessibility_violations(axe, page, "dry run, failing")
        restock(domain, book)
        page.get_by_role("button", name="Dry run again").click()
        page.get_by_text("Would succeed").wait_for()
        page.wait_for_load_state("networkidle")
        violations += accessibility_violations(axe, page, "dry run, succeeding")
    assert violations == []
    assert problems.unexpected() == []
    assert Inventory.objects.get(book_id=book.id).in_stock == 15
