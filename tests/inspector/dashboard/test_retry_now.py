"""Retry now from the message page, a failure group's page and the admin; the operator's
note and name shown wherever the run is."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from inspector.models import HandlerRun, HandlerRunReplay, Message
from inspector.services import handler_run_resolve, handler_run_retry_now
from tests.warehouse.commands import AddBook, ConfirmOrder, PlaceOrder, ShipOrder

pytestmark = pytest.mark.django_db(transaction=True)
HOSTILE = "<script>alert(1)</script>"
INVENTORY = "warehouse.InventoryEventHandler"


def login(client, django_user_model, name, *perms):
    user = django_user_model.objects.create_user(name, password="x", is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return user


@pytest.fixture
def waiting(domain):
    """A shipped order whose inventory run failed (12 ordered, 10 in stock) and waits an hour
    for its next attempt."""
    book_id = domain.process(AddBook(title="Dune", author="Frank Herbert", price_amount=9.99))
    order_id = domain.process(
        PlaceOrder(customer_name="Alice", items=[{"book_id": str(book_id), "quantity": 12}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    domain.process(ShipOrder(order_id=order_id))
    run = HandlerRun.objects.get(handler=INVENTORY, message__type="warehouse.OrderShipped.v1")
    assert run.status == "failed"
    HandlerRun.objects.filter(pk=run.pk).update(available_at=timezone.now() + timedelta(hours=1))
    return run


def test_retry_now_on_the_message_page_needs_the_permission(client, django_user_model, waiting):
    page = f"/inspector/messages/{waiting.message_id}/"
    url = f"/inspector/runs/{waiting.id}/retry-now/"
    login(client, django_user_model, "watcher")
    assert "Retry now" not in client.get(page).content.decode()
    assert client.post(url, HTTP_HX_REQUEST="true").status_code == 403
    assert not HandlerRunReplay.objects.exists()

    login(client, django_user_model, "operator", "replay_handlerrun")
    assert f'action="{url}"' in client.get(page).content.decode()
    response = client.post(url, {"reason": HOSTILE}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Retried now by operator at" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and HOSTILE not in html
    waiting.refresh_from_db()
    assert waiting.status == "failed" and waiting.available_at <= timezone.now()


def test_retry_now_refuses_a_run_that_is_not_failed(client, django_user_model, waiting):
    login(client, django_user_model, "operator", "replay_handlerrun")
    HandlerRun.objects.filter(pk=waiting.pk).update(status="dead")
    response = client.post(f"/inspector/runs/{waiting.id}/retry-now/", HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    assert "only failed runs waiting for their next attempt" in response.content.decode()
    assert "Retry now" not in response.content.decode()  # no button on a dead run
    assert not HandlerRunReplay.objects.exists()


def test_a_resolve_note_and_who_show_on_the_message_flow_and_group_pages(
    client, django_user_model, waiting
):
    user = login(client, django_user_model, "operator", "replay_handlerrun")
    handler_run_retry_now(run=waiting, user=user, reason=f"retry {HOSTILE}")
    group = waiting.failure_group
    group_page = client.get(f"/inspector/failures/{group}/").content.decode()
    assert "Retried now by operator at" in group_page
    assert "retry &lt;script&gt;" in group_page and HOSTILE not in group_page

    handler_run_resolve(run=waiting, user=user, reason=f"fixed by hand {HOSTILE}")
    escaped = "fixed by hand &lt;script&gt;alert(1)&lt;/script&gt;"
    message_page = client.get(f"/inspector/messages/{waiting.message_id}/").content.decode()
    assert "Resolved by operator at" in message_page and escaped in message_page
    assert HOSTILE not in message_page
    correlation = Message.objects.get(pk=waiting.message_id).correlation_id
    flow_page = client.get(f"/inspector/flows/{correlation}/").content.decode()
    assert "InventoryEventHandler: Resolved by operator at" in flow_page
    assert escaped in flow_page and HOSTILE not in flow_page
    admin_page = client.get(f"/admin/inspector/handlerrun/{waiting.id}/change/")
    assert admin_page.status_code == 403  # no view permission: the admin keeps its own


def test_a_groups_retry_now_makes_its_failed_runs_due(client, django_user_model, waiting):
    url = f"/inspector/failures/{waiting.failure_group}/retry-now/"
    login(client, django_user_model, "watcher")
    assert client.post(url).status_code == 403
    login(client, django_user_model, "operator", "replay_handlerrun")
    page = client.get(f"/inspector/failures/{waiting.failure_group}/").content.decode()
    assert f'action="{url}"' in page
    response = client.post(url, follow=True)
    assert "Made 1 handler run of this group due now." in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.available_at <= timezone.now()
    assert HandlerRunReplay.objects.get().action == "retry"


def test_admin_retries_a_run_from_its_page_and_a_selection(client, django_user_model, waiting):
    user = login(client, django_user_model, "operator", "replay_handlerrun", "view_handlerrun")
    change = f"/admin/inspector/handlerrun/{waiting.id}/change/"
    page = client.get(change).content.decode()
    assert f'formaction="/inspector/runs/{waiting.id}/retry-now/"' in page
    response = client.post(f"/inspector/runs/{waiting.id}/retry-now/", {"next": change})
    assert response.status_code == 302 and response["Location"] == change
    assert "Retried now by operator at" in client.get(change).content.decode()

    HandlerRun.objects.filter(pk=waiting.pk).update(available_at=timezone.now() + timedelta(1))
    others = HandlerRun.objects.exclude(pk=waiting.pk).values_list("pk", flat=True)[:2]
    response = client.post(
        "/admin/inspector/handlerrun/",
        {"action": "retry_selected_now", "_selected_action": [waiting.pk, *others]},
        follow=True,
    )
    html = response.content.decode()
    assert "Made 1 handler run due now. 2 of the 3 selected runs were not failed" in html
    assert HandlerRunReplay.objects.filter(run=waiting, action="retry", user=user).count() == 2
    waiting.refresh_from_db()
    assert waiting.available_at <= timezone.now()
