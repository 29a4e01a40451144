"""The edit and replay page: who may use it, the form built from the message class, the diff,
the dry run, the replay, and how the message page and its diagrams show the edit."""

import json
import re
from html import unescape

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from inspector.models import HandlerRun, HandlerRunReplay
from tests.browsers import CHROMIUM, accessibility_violations
from tests.hostile import row_counts
from tests.inspector.chromium import inspector_in_chromium, log_in
from tests.inspector.edits import UNKNOWN_BOOK, drain, ship_unknown_book, stored
from tests.warehouse.models import Inventory

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = "<script>alert('x')</script>"


def login(client, django_user_model, name, *perms, staff=True):
    user = django_user_model.objects.create_user(name, password="not-used", is_staff=staff)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="inspector", codename__in=perms)
    )
    client.force_login(user)
    return user


@pytest.fixture
def editor(client, django_user_model):
    """Staff who may edit and replay and see payloads (and nothing else)."""
    client.user = login(client, django_user_model, "editor", "edit_handlerrun", "view_message")
    return client


def edit_url(run):
    return reverse("inspector:run-edit", args=[run.pk])


def message_url(run):
    return reverse("inspector:message", args=[run.message_id])


def form_data(run, book, *, quantity=2, **overrides):
    """The edit page's form, as a browser posts it: the payload's inputs, then `overrides`."""
    data = {
        "data-order_id": run.message.data["order_id"],
        "data-customer_name": run.message.data["customer_name"],
        "data-items": json.dumps([{"book_id": str(book.id), "quantity": quantity}]),
        "reason": "wrong book id",
        "action": "diff",
    }
    data.update(overrides)
    return data


def text(html):
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def diff_rows(body):
    """(field, original, edited) of the diff tables in `body`, as JSON values."""
    rows = []
    for table in re.findall(r'<table class="data-table edit-diff">(.*?)</table>', body, re.S):
        for field, original, edited in re.findall(
            r"<tr><th scope=\"row\"><code>(.*?)</code></th><td><pre>(.*?)</pre></td>"
            r"<td><pre>(.*?)</pre></td></tr>",
            table,
            re.S,
        ):
            rows.append(
                (unescape(field), json.loads(unescape(original)), json.loads(unescape(edited)))
            )
    return rows


def test_only_staff_with_the_edit_permission_see_the_link_and_the_page(
    client, django_user_model, shipped_unknown_book
):
    run = shipped_unknown_book
    login(client, django_user_model, "watcher", "replay_handlerrun")  # replay is not edit
    assert edit_url(run) not in client.get(message_url(run)).content.decode()
    assert client.get(edit_url(run)).status_code == 403
    assert client.post(edit_url(run), {"action": "replay"}).status_code == 403

    login(client, django_user_model, "outsider", "edit_handlerrun", staff=False)
    response = client.get(edit_url(run))
    assert response.status_code == 302 and "/login/" in response["Location"]

    login(client, django_user_model, "editor", "edit_handlerrun")
    body = client.get(message_url(run)).content.decode()
    assert f'href="{edit_url(run)}"' in body
    assert "Edit and replay" in text(body)
    # Only failed and dead runs get it: the book's own run succeeded.
    book_run = HandlerRun.objects.get(handler="warehouse.BookEventHandler")
    assert edit_url(book_run) not in client.get(message_url(book_run)).content.decode()
    assert HandlerRunReplay.objects.count() == 0


def test_the_form_is_built_from_the_message_class_and_prefilled(editor, shipped_unknown_book):
    run = shipped_unknown_book
    response = editor.get(edit_url(run))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<h1>Edit and replay</h1>" in body
    assert re.search(
        r'<input type="text" name="data-customer_name" value="Alice"[^>]*maxlength="150"', body
    )
    assert re.search(r'name="data-order_id"[^>]*required', body)
    items = re.search(r'<textarea name="data-items"[^>]*>(.*?)</textarea>', body, re.S).group(1)
    assert json.loads(unescape(items)) == [{"book_id": UNKNOWN_BOOK, "quantity": 2}]
    assert "Show the diff" in body
    assert "Replay with this payload" not in body  # not before the diff is shown


def test_invalid_input_shows_the_errors_with_400_and_writes_nothing(
    editor, shipped_unknown_book, stocked_book
):
    run = shipped_unknown_book
    before, counts = stored(run.message_id), row_counts()
    cases = [
        ({"data-items": "[{"}, "data-items", "Enter a valid JSON."),
        ({"data-customer_name": ""}, "data-customer_name", "This field is required."),
        ({"data-customer_name": "x" * 151}, "data-customer_name", "at most 150 characters"),
        # Valid JSON, refused by the message class: a number that is not finite.
        ({"data-items": '[{"quantity": NaN}]'}, "data-items", "[0]: Number nan is not finite"),
        ({"data-items": '"two copies"'}, "data-items", "Expected a list, got str."),
    ]
    for overrides, field, error in cases:
        for action in ("diff", "replay", "dry_run"):
            response = editor.post(
                edit_url(run), form_data(run, stocked_book, action=action, **overrides)
            )
            assert response.status_code == 400, (overrides, action)
            body = response.content.decode()
            errors = re.search(
                rf'name="{field}".*?<ul class="errorlist"[^>]*>(.*?)</ul>', body, re.S
            )
            assert errors and error in unescape(errors.group(1)), (overrides, body)
            assert "Replay with this payload" not in body
    # An edit that changes nothing: the payload as it is stored.
    unchanged = form_data(
        run, stocked_book, action="replay", **{"data-items": json.dumps(run.message.data["items"])}
    )
    response = editor.post(edit_url(run), unchanged)
    assert response.status_code == 400
    assert "already runs with" in response.content.decode()

    assert row_counts() == counts
    assert stored(run.message_id) == before
    assert HandlerRun.objects.get(pk=run.pk).status == "dead"


def test_the_diff_then_a_dry_run_then_the_replay_with_the_edit(
    editor, django_user_model, shipped_unknown_book, stocked_book
):
    run = shipped_unknown_book
    before, counts = stored(run.message_id), row_counts()

    response = editor.post(edit_url(run), form_data(run, stocked_book))
    assert response.status_code == 200
    body = response.content.decode()
    assert diff_rows(body) == [
        (
            "items",
            [{"book_id": UNKNOWN_BOOK, "quantity": 2}],
            [{"book_id": str(stocked_book.id), "quantity": 2}],
        )
    ]
    assert "Dry run the edited payload" in body and "Replay with this payload" in body

    response = editor.post(edit_url(run), form_data(run, stocked_book, action="dry_run"))
    assert response.status_code == 200
    body = text(response.content.decode())
    assert "Would succeed" in body
    assert "warehouse.StockAdjusted.v1" in body
    assert row_counts() == counts  # the diff and the dry run wrote nothing
    assert Inventory.objects.get(book=stocked_book).in_stock == 10

    response = editor.post(edit_url(run), form_data(run, stocked_book, action="replay"))
    assert response.status_code == 302
    assert response["Location"] == f"{message_url(run)}#run-{run.pk}-anchor"
    run.refresh_from_db()
    replay = HandlerRunReplay.objects.get(run=run)
    assert (run.status, run.edit_id) == ("pending", replay.pk)
    assert (replay.user, replay.reason) == (editor.user, "wrong book id")
    assert drain() == 1
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert Inventory.objects.get(book=stocked_book).in_stock == 8
    assert stored(run.message_id) == before

    page = editor.get(message_url(run)).content.decode()
    assert re.search(
        r"Replayed with an edited payload by editor at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ?: "
        r"“wrong book id” \(was dead after 4 attempts\)",
        text(page),
    )
    assert diff_rows(page) == [
        (
            "items",
            [{"book_id": UNKNOWN_BOOK, "quantity": 2}],
            [{"book_id": str(stocked_book.id), "quantity": 2}],
        )
    ]
    assert f'href="{edit_url(run)}"' not in page  # it succeeded: nothing left to edit
    flow = editor.get(reverse("inspector:flow", args=[run.message.correlation_id]))
    assert "Replayed with an edited payload by editor at" in text(flow.content.decode())
    login(editor, django_user_model, "viewer")  # staff who may not see payloads
    page = editor.get(message_url(run)).content.decode()
    assert "Replayed with an edited payload by editor" in text(page)
    assert not diff_rows(page) and str(stocked_book.id) not in page
    assert "“view message” permission to see what the edit changed" in page

    svg = editor.get(reverse("inspector:message-svg", args=[run.message_id])).content.decode()
    assert "replayed with an edited payload by editor: wrong book id" in svg
    assert "deliver OrderShipped · attempt 5 · edited payload" in svg
    assert "with the payload edited by editor at" in svg
    mermaid = editor.get(reverse("inspector:message-mermaid", args=[run.message_id])).content
    mermaid = mermaid.decode()
    assert "Note over" in mermaid and "replayed with an edited payload by editor" in mermaid
    assert "deliver OrderShipped · attempt 5 · edited payload" in mermaid


def test_a_run_that_is_not_failed_or_dead_cannot_be_edited(editor, shipped_unknown_book):
    run = HandlerRun.objects.get(handler="warehouse.BookEventHandler")
    response = editor.get(edit_url(run))
    assert response.status_code == 409
    assert "Only failed or dead runs can be edited and replayed" in text(response.content.decode())
    response = editor.post(edit_url(run), {"action": "replay", "data-title": "Other"})
    assert response.status_code == 409
    assert not HandlerRunReplay.objects.exists()


def test_hostile_values_are_escaped_everywhere_the_edit_shows(editor, async_domain, stocked_book):
    run = ship_unknown_book(async_domain, customer_name=HOSTILE)
    data = form_data(run, stocked_book, reason=HOSTILE, **{"data-customer_name": HOSTILE + "!"})
    for action in ("diff", "dry_run"):
        body = editor.post(edit_url(run), {**data, "action": action}).content.decode()
        assert HOSTILE not in body
        assert "&lt;script&gt;" in body
    assert editor.post(edit_url(run), {**data, "action": "replay"}).status_code == 302
    drain()
    urls = [
        message_url(run),
        reverse("inspector:message-svg", args=[run.message_id]),
        reverse("inspector:flow", args=[run.message.correlation_id]),
    ]
    for url in urls:
        body = editor.get(url).content.decode()
        assert HOSTILE not in body, url
        assert "&lt;script&gt;" in body, url
    mermaid = editor.get(reverse("inspector:message-mermaid", args=[run.message_id])).content
    assert b"<script>" not in mermaid


def test_the_admin_run_page_shows_the_edit_and_links_the_edit_page(
    client, django_user_model, shipped_unknown_book, stocked_book
):
    run = shipped_unknown_book
    change = reverse("admin:inspector_handlerrun_change", args=[run.pk])
    perms = ["view_handlerrun", "view_handlerrunreplay", "view_message"]
    login(client, django_user_model, "auditor", *perms)
    body = client.get(change).content.decode()
    assert "the message as stored" in body
    assert edit_url(run) not in body  # no edit permission, no link

    editor = login(client, django_user_model, "fixer", *perms, "edit_handlerrun")
    body = client.get(change).content.decode()
    assert f'<a class="button" href="{edit_url(run)}">Edit and replay</a>' in body
    assert (
        client.post(edit_url(run), form_data(run, stocked_book, action="replay")).status_code == 302
    )

    body = client.get(change).content.decode()
    assert re.search(
        r"edited by fixer at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(“wrong book id”\)\. The run runs "
        r"with the edited payload",
        unescape(body),
    )
    assert diff_rows(body) == [
        (
            "items",
            [{"book_id": UNKNOWN_BOOK, "quantity": 2}],
            [{"book_id": str(stocked_book.id), "quantity": 2}],
        )
    ]
    assert HandlerRunReplay.objects.get(run=run).user == editor

    login(client, django_user_model, "no-payloads", "view_handlerrun", "view_handlerrunreplay")
    body = client.get(change).content.decode()
    assert "edited by fixer" in body and not diff_rows(body)
    assert str(stocked_book.id) not in body


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium (make test installs it)")
def test_the_edit_in_a_browser_is_accessible_and_its_console_clean(
    django_user_model, shipped_unknown_book, stocked_book, tmp_path, monkeypatch
):
    """The form, its diff and its dry run in Chromium: no WCAG 2 A/AA violation (axe-core),
    no console error or failed request; then the replay lands on the message page."""
    from axe_playwright_python.sync_playwright import Axe

    run = shipped_unknown_book
    perms = ["edit_handlerrun", "view_message"]
    login_user = django_user_model.objects.create_user("ed", password="pw", is_staff=True)
    login_user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    violations, axe = [], Axe()
    with inspector_in_chromium(tmp_path, monkeypatch) as (base, page, problems):
        log_in(page, base, "ed", "pw", message_url(run))
        page.get_by_role("link", name="Edit and replay InventoryEventHandler").click()
        page.get_by_role("heading", name="Edit and replay").wait_for()
        violations += accessibility_violations(axe, page, "edit form")

        items = json.dumps([{"book_id": str(stocked_book.id), "quantity": 2}])
        page.get_by_label("items").fill(items)
        page.get_by_role("button", name="Show the diff").click()
        page.get_by_role("heading", name="Diff against the stored payload").wait_for()
        violations += accessibility_violations(axe, page, "diff")
        page.get_by_role("button", name="Dry run the edited payload").click()
        page.get_by_text("Would succeed").wait_for()
        violations += accessibility_violations(axe, page, "dry run")

        page.get_by_label("Why this edit?").fill("wrong book id")
        page.get_by_role("button", name="Replay with this payload").click()
        page.wait_for_url(f"{base}{message_url(run)}*")
        page.locator("p.lineage", has_text="Replayed with an edited payload by ed").wait_for()
    assert violations == []
    assert problems.unexpected() == []
    assert HandlerRun.objects.get(pk=run.pk).status == "pending"
