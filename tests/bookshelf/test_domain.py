"""The bookshelf from the seed tutorial, run inside Django."""

import pytest

from bookshelf.commands import AddBook, AdjustStock, ConfirmOrder, PlaceOrder, ShipOrder
from bookshelf.models import Book, Inventory, Money, Notification, Order, OrderItem
from inspector.exceptions import DomainError, ObjectNotFound, ValidationError
from inspector.models import HandlerRun, Message

pytestmark = pytest.mark.django_db(transaction=True)

TABLES = (Message, HandlerRun, Book, Order, OrderItem, Inventory, Notification)


def counts():
    return {model.__name__: model.objects.count() for model in TABLES}


def test_the_tutorial_program(domain, mailoutbox):
    book_id = domain.process(
        AddBook(
            title="The Great Gatsby",
            author="F. Scott Fitzgerald",
            isbn="9780743273565",
            price_amount=12.99,
        )
    )
    book = Book.objects.get(pk=book_id)
    assert book.price == Money(amount=12.99)

    inventories = list(Inventory.objects.all())
    assert len(inventories) == 1
    assert (inventories[0].title, inventories[0].quantity) == ("The Great Gatsby", 10)

    order_id = domain.process(
        PlaceOrder(customer_name="Alice Johnson", items=[{"book_id": str(book_id), "quantity": 2}])
    )
    order = Order.objects.get(pk=order_id)
    assert order.status == "PENDING"
    assert [(i.book_title, i.quantity, i.unit_price) for i in order.items.all()] == [
        ("The Great Gatsby", 2, Money(amount=12.99))
    ]
    assert order.total == Money(amount=25.98)

    domain.process(ConfirmOrder(order_id=order_id))
    domain.process(ShipOrder(order_id=order_id))

    assert sorted(m.subject for m in mailoutbox) == [
        "Your bookshelf order was confirmed",
        "Your bookshelf order was shipped",
    ]
    assert Notification.objects.filter(order_id=order_id).count() == 2
    assert Order.objects.get(pk=order_id).status == "SHIPPED"
    assert Inventory.objects.get(book_id=book_id).quantity == 8
    assert not HandlerRun.objects.exclude(status="succeeded").exists()


def test_the_guide_scenario_stock_100_ship_10_leaves_90(domain):
    book = Book(title="Guide", author="Protean", price=Money(amount=10))
    book.save()  # no BookAdded: stock the inventory by hand, as the guide does
    inventory = Inventory(book=book, title="Guide", quantity=100)
    domain.repository_for(Inventory).add(inventory)

    order = Order.place(customer_name="Bob", lines=[(book, 10)])
    domain.repository_for(Order).add(order)
    order.confirm()
    domain.repository_for(Order).add(order)
    order.ship()
    domain.repository_for(Order).add(order)

    stock = domain.repository_for(Inventory).get(inventory.id)
    assert stock.to_dict()["quantity"] == 90
    assert stock.to_dict()["book_id"] == str(book.id)


def test_save_persists_events_like_the_repository(domain):
    book = Book(title="Saved", author="Someone", price=Money(amount=5))
    book.add_to_catalog()
    book.save()
    assert Message.objects.get(stream=book.stream).type == "bookshelf.BookAdded.v1"
    assert Inventory.objects.get(book=book).quantity == 10
    assert book.version == 1
    book.title = "Renamed"
    book.save()
    assert Book.objects.get(pk=book.pk).version == 2


def test_repository_get_of_a_missing_aggregate(domain):
    with pytest.raises(ObjectNotFound, match="Order .* does not exist"):
        domain.repository_for(Order).get("7d6b4bc4-bb83-4c07-8fd6-83bd4e3fbc55")
    with pytest.raises(ObjectNotFound):
        domain.repository_for(Order).get("not-a-uuid")


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (lambda: AddBook(title="", author="A", price_amount=1), "title"),
        (lambda: AddBook(title="x" * 201, author="A", price_amount=1), "title"),
        (lambda: AddBook(title="T", author="A", price_amount=0), "price_amount"),
        (lambda: AddBook(title="T", author="A", price_amount="ten"), "price_amount"),
        (
            lambda: PlaceOrder(customer_name="A", items=[{"book_id": "x", "quantity": 0}]),
            "items[0].quantity",
        ),
    ],
)
def test_invalid_commands_are_refused_before_anything_is_written(domain, command, field):
    before = counts()
    with pytest.raises(ValidationError) as caught:
        domain.process(command())
    assert field in caught.value.errors
    assert counts() == before


def test_unknown_book_is_refused_and_writes_nothing(domain, add_book):
    book = add_book()
    before = counts()
    with pytest.raises(ValidationError) as caught:
        domain.process(
            PlaceOrder(
                customer_name="Alice",
                items=[
                    {"book_id": str(book.id), "quantity": 1},
                    {"book_id": "7d6b4bc4-bb83-4c07-8fd6-83bd4e3fbc55", "quantity": 1},
                ],
            )
        )
    assert list(caught.value.errors) == ["items[1].book_id"]
    assert counts() == before


def test_order_rules_raise_domain_errors_and_write_nothing(domain, add_book):
    book = add_book()
    order_id = domain.process(
        PlaceOrder(customer_name="Alice", items=[{"book_id": str(book.id), "quantity": 1}])
    )
    before = counts()
    with pytest.raises(DomainError, match="only a CONFIRMED order can be shipped"):
        domain.process(ShipOrder(order_id=order_id))
    assert counts() == before

    domain.process(ConfirmOrder(order_id=order_id))
    before = counts()
    with pytest.raises(DomainError, match="only a PENDING order can be confirmed"):
        domain.process(ConfirmOrder(order_id=order_id))
    assert counts() == before
    with pytest.raises(ObjectNotFound):
        domain.process(ConfirmOrder(order_id="7d6b4bc4-bb83-4c07-8fd6-83bd4e3fbc55"))
    assert counts() == before


def test_adjust_stock_restocks_and_refuses_to_go_negative(domain, add_book):
    book = add_book()
    assert domain.process(AdjustStock(book_id=str(book.id), amount=5)) == 15
    before = counts()
    with pytest.raises(DomainError, match="Not enough stock"):
        domain.process(AdjustStock(book_id=str(book.id), amount=-16))
    with pytest.raises(ValidationError) as caught:
        domain.process(AdjustStock(book_id=str(book.id), amount=0))
    assert list(caught.value.errors) == ["amount"]
    assert counts() == before
    assert Inventory.objects.get(book=book).quantity == 15
    assert Message.objects.filter(type="bookshelf.StockAdjusted.v1").count() == 1


def test_one_iteration_of_the_workload_issues_a_bounded_number_of_queries(
    domain, add_book, django_assert_max_num_queries
):
    add_book(title="warm-up")
    for _ in range(2):  # the bound holds however large the store already is
        with django_assert_max_num_queries(64):
            book_id = domain.process(
                AddBook(title="Dune", author="Frank Herbert", price_amount=9.99)
            )
            order_id = domain.process(
                PlaceOrder(customer_name="Alice", items=[{"book_id": str(book_id), "quantity": 2}])
            )
            domain.process(ConfirmOrder(order_id=order_id))
            domain.process(ShipOrder(order_id=order_id))


def test_the_bookshelf_domain_is_checked_when_django_starts():
    from bookshelf.domain import domain

    assert domain.initialized
    names = {spec.name for spec in domain.handlers()}
    assert {
        "bookshelf.BookCommandHandler",
        "bookshelf.OrderCommandHandler",
        "bookshelf.InventoryCommandHandler",
        "bookshelf.BookEventHandler",
        "bookshelf.InventoryEventHandler",
        "bookshelf.OrderNotificationHandler",
    } <= names
