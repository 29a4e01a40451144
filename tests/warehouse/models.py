"""The warehouse's aggregates (books, orders with their lines, inventory), the notifications
its handler writes, and the probe's rows (what the probe handlers saw, and their switches)."""

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from inspector.aggregates import AggregateRoot, Entity, ValueObjectField
from inspector.exceptions import DomainError
from inspector.fields import Float, String
from inspector.runtime.names import short_id
from tests.warehouse.domain import domain
from tests.warehouse.events import (
    BookAdded,
    InventoryCreated,
    OrderConfirmed,
    OrderPlaced,
    OrderShipped,
    StockAdjusted,
)


@domain.value_object
class Money:
    currency = String(max_length=3, default="USD")
    amount = Float(required=True, min_value=0)

    def __str__(self):
        return f"{self.currency} {self.amount:.2f}"

    def __mul__(self, quantity):
        return Money(currency=self.currency, amount=round(self.amount * quantity, 2))


@domain.aggregate
class Book(AggregateRoot):
    title = models.CharField(max_length=200)
    author = models.CharField(max_length=150)
    isbn = models.CharField(max_length=13, blank=True)
    price = ValueObjectField(Money, null=True, blank=True)
    description = models.TextField(blank=True)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["title"]

    def __str__(self):
        return self.title

    def add_to_catalog(self):
        self.raise_(
            BookAdded(
                book_id=self.id,
                title=self.title,
                author=self.author,
                price_amount=self.price.amount if self.price else 0,
            )
        )


class OrderStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    CONFIRMED = "CONFIRMED", "Confirmed"
    SHIPPED = "SHIPPED", "Shipped"


@domain.aggregate
class Order(AggregateRoot):
    customer_name = models.CharField(max_length=150)
    customer_email = models.EmailField(blank=True)
    status = models.CharField(
        max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING
    )
    placed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-placed_at"]

    def __str__(self):
        return f"Order {short_id(self.id)} for {self.customer_name}"

    @classmethod
    def place(cls, *, customer_name, lines, customer_email=""):
        """A new pending order for `lines`, a list of (book, quantity)."""
        if not lines:
            raise DomainError("An order needs at least one item")
        order = cls(customer_name=customer_name, customer_email=customer_email)
        for book, quantity in lines:
            order.add_item(book, quantity)
        order.raise_(
            OrderPlaced(
                order_id=order.id,
                customer_name=customer_name,
                total_items=sum(quantity for _, quantity in lines),
            )
        )
        return order

    def add_item(self, book, quantity):
        if self.status != OrderStatus.PENDING:
            raise DomainError(f"{self} is {self.status}; items can only be added while PENDING")
        if quantity < 1:
            raise DomainError(f"Quantity of {book.title!r} must be at least 1")
        return self.track(
            OrderItem(
                order=self,
                book=book,
                book_title=book.title,
                quantity=quantity,
                unit_price=book.price,
            )
        )

    def confirm_order(self):
        if self.status != OrderStatus.PENDING:
            raise DomainError(f"{self} is {self.status}; only a PENDING order can be confirmed")
        self.status = OrderStatus.CONFIRMED
        self.raise_(OrderConfirmed(order_id=self.id, customer_name=self.customer_name))

    def ship_order(self):
        """The guide's `ship_order()`: the order is on its way, and says so with OrderShipped."""
        if self.status != OrderStatus.CONFIRMED:
            raise DomainError(f"{self} is {self.status}; only a CONFIRMED order can be shipped")
        self.status = OrderStatus.SHIPPED
        items = [
            {"book_id": str(item.book_id), "book_title": item.book_title, "quantity": item.quantity}
            for item in self.items.all()
        ]
        self.raise_(OrderShipped(order_id=self.id, customer_name=self.customer_name, items=items))

    @property
    def total(self):
        items = list(self.items.all())
        amount = sum(item.unit_price.amount * item.quantity for item in items)
        currency = items[0].unit_price.currency if items else "USD"
        return Money(currency=currency, amount=round(amount, 2))


@domain.entity(part_of=Order)
class OrderItem(Entity):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    book = models.ForeignKey(Book, on_delete=models.PROTECT, related_name="order_items")
    book_title = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    unit_price = ValueObjectField(Money)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity__gte=1), name="warehouse_orderitem_qty_gte_1"
            ),
        ]

    def __str__(self):
        return f"{self.quantity} × {self.book_title}"


@domain.aggregate
class Inventory(AggregateRoot):
    """The guide's Inventory: how many of a book are `in_stock`."""

    book = models.OneToOneField(Book, on_delete=models.CASCADE, related_name="inventory")
    title = models.CharField(max_length=200)
    in_stock = models.IntegerField(default=0)

    class Meta:
        ordering = ["title"]
        verbose_name_plural = "inventories"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(in_stock__gte=0), name="warehouse_inventory_in_stock_gte_0"
            ),
        ]

    def __str__(self):
        return f"{self.title}: {self.in_stock}"

    @classmethod
    def stock(cls, *, book_id, title, in_stock):
        """A new inventory record for a book, announced with InventoryCreated."""
        inventory = cls(book_id=book_id, title=title, in_stock=in_stock)
        inventory.raise_(InventoryCreated(book_id=book_id, title=title, in_stock=in_stock))
        return inventory

    def adjust_stock(self, amount):
        """Change the stock by `amount`; stock never goes below zero."""
        if self.in_stock + amount < 0:
            raise DomainError(
                f"Not enough stock of {self.title!r}: {self.in_stock} in stock, {-amount} requested"
            )
        self.in_stock += amount
        self.raise_(
            StockAdjusted(
                book_id=self.book_id, title=self.title, amount=amount, in_stock=self.in_stock
            )
        )


class Notification(models.Model):
    """An email sent to a customer, and the event that caused it."""

    order = models.ForeignKey(
        Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="notifications"
    )
    recipient = models.CharField(max_length=254)
    subject = models.CharField(max_length=255)
    body = models.TextField()
    sent_at = models.DateTimeField(default=timezone.now)
    message_id = models.UUIDField(db_index=True)
    message_type = models.CharField(max_length=255)

    class Meta:
        ordering = ["-sent_at"]

    def __str__(self):
        return f"{self.subject} → {self.recipient}"


# The probe (tests.warehouse.probe) ---------------------------------------------------------


class Seen(models.Model):
    """One row per successful handling: which handler saw which message, in commit order."""

    handler = models.CharField(max_length=100)
    message_id = models.UUIDField()
    stream = models.CharField(max_length=255)
    position = models.BigIntegerField()
    n = models.IntegerField()

    def __str__(self):
        return f"{self.handler} saw {self.stream}@{self.position}"


class Switch(models.Model):
    """A flag a test flips to make a handler fail or succeed."""

    name = models.CharField(max_length=50, primary_key=True)
    on = models.BooleanField(default=False)

    def __str__(self):
        return f"{self.name}={self.on}"
