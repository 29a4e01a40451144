from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from bookshelf import views

shop = (
    [
        path("", views.catalog, name="catalog"),
        path("books/add/", views.book_add, name="book-add"),
        path("books/<uuid:book_id>/", views.book_detail, name="book-detail"),
        path("orders/", views.order_list, name="order-list"),
        path("orders/place/", views.order_place, name="order-place"),
        path("orders/<uuid:order_id>/", views.order_detail, name="order-detail"),
        path(
            "orders/<uuid:order_id>/confirm/",
            views.order_action,
            {"action": "confirm"},
            name="order-confirm",
        ),
        path(
            "orders/<uuid:order_id>/ship/",
            views.order_action,
            {"action": "ship"},
            name="order-ship",
        ),
        path("inventory/", views.inventory, name="inventory"),
        path("inventory/<uuid:book_id>/adjust/", views.inventory_adjust, name="inventory-adjust"),
        path("notifications/", views.notification_list, name="notification-list"),
    ],
    "bookshelf",
)

urlpatterns = [
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("admin/", admin.site.urls),
    path("inspector/", include("inspector.urls")),
    path("", include("inspector.ops_urls")),
    path("", include(shop)),
]
