"""The shop's data in the admin: lists, filters, search, and no way around the commands."""

import pytest

from bookshelf.models import Book, Inventory, Notification, Order

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(add_book, place_order, advance):
    dune = add_book(title="Dune", price=10.0)
    emma = add_book(title="Emma", price=2.5)
    order = advance(place_order([(dune, 2), (emma, 1)], customer_name="Alice Johnson"), "SHIPPED")
    advance(place_order([(dune, 7)], customer_name="Bob Smith"), "SHIPPED")
    return {"dune": dune, "emma": emma, "order": order}


@pytest.mark.parametrize("model", ["book", "order", "inventory", "notification"])
def test_lists_and_pages_load_read_only(admin_client, shop, model):
    base = f"/admin/bookshelf/{model}/"
    response = admin_client.get(base)
    assert response.status_code == 200
    obj = response.context["cl"].result_list[0]
    assert admin_client.get(f"{base}{obj.pk}/change/").status_code == 200
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.post(f"{base}{obj.pk}/delete/").status_code == 403
    assert 'name="action"' not in response.content.decode()


def test_book_list_shows_price_and_stock_and_searches(admin_client, shop):
    response = admin_client.get("/admin/bookshelf/book/", {"q": "dune"})
    assert [b.title for b in response.context["cl"].result_list] == ["Dune"]
    html = response.content.decode()
    assert "USD 10.00" in html and '<td class="field-stock">1</td>' in html
    page = admin_client.get(f"/admin/bookshelf/book/{shop['dune'].pk}/change/").content.decode()
    assert f"stream=bookshelf%3A%3Abook-{shop['dune'].pk}" in page
    assert f"/books/{shop['dune'].pk}/" in page  # view on site


def test_order_page_shows_items_inline_and_total(admin_client, shop):
    order = shop["order"]
    html = admin_client.get(f"/admin/bookshelf/order/{order.pk}/change/").content.decode()
    assert "Dune" in html and "Emma" in html and "USD 22.50" in html
    assert "Your bookshelf order was shipped" in html  # notifications inline
    listed = admin_client.get("/admin/bookshelf/order/", {"status__exact": "SHIPPED"})
    assert {o.customer_name for o in listed.context["cl"].result_list} == {
        "Alice Johnson",
        "Bob Smith",
    }
    found = admin_client.get("/admin/bookshelf/order/", {"q": "johnson"})
    assert [o.pk for o in found.context["cl"].result_list] == [order.pk]
    by_id = admin_client.get("/admin/bookshelf/order/", {"q": str(order.pk)})
    assert [o.pk for o in by_id.context["cl"].result_list] == [order.pk]


def test_inventory_filters_low_stock(admin_client, shop):
    low = admin_client.get("/admin/bookshelf/inventory/", {"stock": "low"})
    assert [i.title for i in low.context["cl"].result_list] == ["Dune"]
    ok = admin_client.get("/admin/bookshelf/inventory/", {"stock": "ok"})
    assert [i.title for i in ok.context["cl"].result_list] == ["Emma"]
    assert Inventory.objects.get(book=shop["dune"]).quantity == 1


def test_notifications_filter_and_link_their_event(admin_client, shop):
    response = admin_client.get(
        "/admin/bookshelf/notification/", {"message_type": "bookshelf.OrderShipped.v1"}
    )
    listed = response.context["cl"].result_list
    assert len(listed) == 2 and {n.subject for n in listed} == {"Your bookshelf order was shipped"}
    notification = Notification.objects.filter(order=shop["order"]).first()
    html = admin_client.get(f"/admin/bookshelf/notification/{notification.pk}/change/").content
    assert f"/admin/inspector/message/{notification.message_id}/change/".encode() in html
    found = admin_client.get("/admin/bookshelf/notification/", {"q": str(notification.message_id)})
    assert [n.pk for n in found.context["cl"].result_list] == [notification.pk]
    assert Book.objects.count() == 2 and Order.objects.count() == 2
