"""Fixtures for the bookshelf's own tests (the shop's pages, forms and commands) and, imported
by tests/browser/conftest.py, for the browser tests."""

import pytest

from bookshelf.commands import AddBook, ConfirmOrder, PlaceOrder, ShipOrder
from bookshelf.domain import domain as bookshelf_domain
from bookshelf.models import Book, Inventory, Notification, Order, OrderItem
from inspector.models import HandlerRun, Message

TABLES = (Message, HandlerRun, Book, Order, OrderItem, Inventory, Notification)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def domain():
    """The bookshelf domain, with its processing modes restored after the test."""
    saved = dict(bookshelf_domain.config)
    yield bookshelf_domain
    bookshelf_domain.config.clear()
    bookshelf_domain.config.update(saved)


@pytest.fixture
def add_book(domain):
    """Add a book through the AddBook command; returns the Book."""

    def add(title="The Great Gatsby", author="F. Scott Fitzgerald", price=12.99, **extra):
        book_id = domain.process(
            AddBook(title=title, author=author, isbn="9780743273565", price_amount=price, **extra)
        )
        return Book.objects.get(pk=book_id)

    return add


@pytest.fixture
def row_counts():
    """Rows per table, to show that a refused action wrote nothing."""

    def count():
        return {model.__name__: model.objects.count() for model in TABLES}

    return count


@pytest.fixture
def shopper(client, django_user_model):
    """A logged-in client: the shop needs a login, not staff rights."""
    user = django_user_model.objects.create_user("shopper", password="not-used")
    client.force_login(user)
    return client


@pytest.fixture
def place_order(domain):
    """Place an order through PlaceOrder; `lines` is a list of (book, quantity)."""

    def place(lines, customer_name="Alice Johnson", customer_email="alice@example.com"):
        order_id = domain.process(
            PlaceOrder(
                customer_name=customer_name,
                customer_email=customer_email,
                items=[{"book_id": str(book.id), "quantity": q} for book, q in lines],
            )
        )
        return Order.objects.get(pk=order_id)

    return place


@pytest.fixture
def advance(domain):
    """Confirm, or confirm and ship, an order through the domain; returns it reloaded."""

    def move(order, to):
        if to in ("CONFIRMED", "SHIPPED"):
            domain.process(ConfirmOrder(order_id=str(order.id)))
        if to == "SHIPPED":
            domain.process(ShipOrder(order_id=str(order.id)))
        return Order.objects.get(pk=order.pk)

    return move
