"""The bookshelf shows the inspector inside the shop's page by overriding one template."""

import pytest

pytestmark = pytest.mark.django_db


def test_inspector_pages_keep_the_shops_header(client, django_user_model):
    staff = django_user_model.objects.create_user("operator", password="x", is_staff=True)
    client.force_login(staff)
    html = client.get("/inspector/handlers/").content.decode()
    assert '<a class="brand" href="/">Bookshelf</a>' in html  # templates/inspector/layout.html
    assert 'href="/orders/"' in html  # the shop's navigation
    assert "/static/inspector/layout.css" in html and "/static/bookshelf/shop.css" in html
    assert 'class="inspector-nav"' in html  # the inspector's own tabs inside it
