"""The shop's data in the admin, read-only: changes go through commands, so the store has them."""

from django.contrib import admin
from django.db.models import Count, F
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from bookshelf.models import Book, Inventory, Notification, Order, OrderItem
from bookshelf.selectors import LOW_STOCK
from bookshelf.submissions import message_name
from inspector.runtime.names import short_id


def _stream_link(aggregate):
    url = reverse("admin:inspector_message_changelist")
    return format_html(
        '<a href="{}?{}">{}</a>', url, urlencode({"stream": aggregate.stream}), aggregate.stream
    )


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shows shop rows; adding, editing and deleting happen in the shop, through commands."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Book)
class BookAdmin(ReadOnlyAdmin):
    list_display = ("title", "author", "isbn", "price", "stock", "added_at")
    search_fields = ("title", "author", "isbn")
    list_filter = ("added_at",)
    fields = (
        "id",
        "title",
        "author",
        "isbn",
        "price",
        "description",
        "added_at",
        "version",
        "stream",
    )
    readonly_fields = ("id", "version", "stream")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(stock=F("inventory__quantity"))

    @admin.display(ordering="stock")
    def stock(self, book):
        return "—" if book.stock is None else book.stock

    @admin.display(description="stream")
    def stream(self, book):
        return _stream_link(book)

    def view_on_site(self, book):
        return reverse("bookshelf:book-detail", args=[book.id])


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    fields = ("book_title", "quantity", "unit_price", "subtotal")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class NotificationInline(admin.TabularInline):
    model = Notification
    fields = ("recipient", "subject", "sent_at", "message_type")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "notifications sent"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = (
        "short_id",
        "customer_name",
        "customer_email",
        "status",
        "item_count",
        "total",
        "placed_at",
    )
    list_filter = ("status", "placed_at")
    search_fields = ("customer_name", "customer_email", "=id")
    date_hierarchy = "placed_at"
    inlines = [OrderItemInline, NotificationInline]
    fields = (
        "id",
        "customer_name",
        "customer_email",
        "status",
        "placed_at",
        "total",
        "version",
        "stream",
    )
    readonly_fields = ("id", "total", "version", "stream")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(item_count=Count("items"))
            .prefetch_related("items")
        )

    @admin.display(description="order", ordering="id")
    def short_id(self, order):
        return short_id(order.id)

    @admin.display(description="items", ordering="item_count")
    def item_count(self, order):
        return order.item_count

    @admin.display(description="total")
    def total(self, order):
        return order.total

    @admin.display(description="stream")
    def stream(self, order):
        return _stream_link(order)

    def view_on_site(self, order):
        return reverse("bookshelf:order-detail", args=[order.id])


class LowStockFilter(admin.SimpleListFilter):
    title = "stock"
    parameter_name = "stock"

    def lookups(self, request, model_admin):
        return [("low", f"Low ({LOW_STOCK} or fewer)"), ("ok", f"More than {LOW_STOCK}")]

    def queryset(self, request, queryset):
        if self.value() == "low":
            return queryset.filter(quantity__lte=LOW_STOCK)
        if self.value() == "ok":
            return queryset.filter(quantity__gt=LOW_STOCK)
        return queryset


@admin.register(Inventory)
class InventoryAdmin(ReadOnlyAdmin):
    list_display = ("title", "quantity", "low_stock")
    list_filter = (LowStockFilter,)
    search_fields = ("title", "book__isbn")
    fields = ("id", "book", "title", "quantity", "version", "stream")
    readonly_fields = ("id", "version", "stream")

    @admin.display(boolean=True, description="low stock", ordering="quantity")
    def low_stock(self, inventory):
        return inventory.quantity <= LOW_STOCK

    @admin.display(description="stream")
    def stream(self, inventory):
        return _stream_link(inventory)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("subject", "recipient", "caused_by", "order_link", "sent_at")
    list_filter = ("message_type", "sent_at")
    search_fields = ("recipient", "subject", "=message_id")
    date_hierarchy = "sent_at"
    list_select_related = ("order",)
    fields = ("recipient", "subject", "body", "sent_at", "order_link", "caused_by")
    readonly_fields = ("order_link", "caused_by")

    @admin.display(description="caused by", ordering="message_type")
    def caused_by(self, notification):
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:inspector_message_change", args=[notification.message_id]),
            message_name(notification.message_type),
        )

    @admin.display(description="order")
    def order_link(self, notification):
        if notification.order is None:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:bookshelf_order_change", args=[notification.order_id]),
            short_id(notification.order_id),
        )
