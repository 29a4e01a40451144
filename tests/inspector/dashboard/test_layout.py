"""The app's own page: its layout, static files and websocket route, with no project around it
(these settings have no templates or static folders of their own)."""

import pytest
from django.contrib.staticfiles import finders
from django.urls import resolve

from inspector.dashboard.consumers import FeedConsumer

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_user("operator", password="x", is_staff=True)
    client.force_login(user)
    return client


def test_the_live_page_stands_on_the_apps_own_layout(staff, domain, add_book):
    add_book(title="Dune")
    html = staff.get("/inspector/").content.decode()
    assert '<a class="brand" href="/inspector/">Inspector</a>' in html
    for asset in ("inspector/layout.css", "inspector/inspector.css", "django_htmx/htmx-2.min.js"):
        assert f"/static/{asset}" in html
        assert finders.find(asset), asset  # shipped by the app (or django-htmx), not a project
    assert 'href="/admin/"' in html and "operator" in html  # the admin link and who is in
    assert "BookAdded" in html  # the warehouse's message, live


def test_the_live_page_connects_to_the_websocket_route_the_app_declares(staff):
    html = staff.get("/inspector/").content.decode()
    assert 'ws-connect="/ws/inspector/feed/"' in html
    match = resolve("/ws/inspector/feed/", urlconf="inspector.routing")
    assert match.func.consumer_class is FeedConsumer
