"""What the warehouse is asked to do, in the imperative."""

from inspector.fields import Float, Identifier, Integer, List, String, Text, ValueObject
from tests.warehouse.domain import domain

# As the bookshelf's (bookshelf/commands.py): stock and order lines are 32-bit columns.
MAX_COPIES = 1_000_000
MAX_PRICE = 999_999.99


@domain.value_object
class OrderLine:
    book_id = Identifier(required=True)
    quantity = Integer(required=True, min_value=1, max_value=MAX_COPIES)


@domain.command(part_of="Book")
class AddBook:
    title = String(max_length=200, required=True)
    author = String(max_length=150, required=True)
    isbn = String(max_length=13)
    price_amount = Float(required=True, min_value=0.01, max_value=MAX_PRICE)
    description = Text()


@domain.command(part_of="Order")
class PlaceOrder:
    customer_name = String(max_length=150, required=True)
    customer_email = String(max_length=254)
    items = List(content_type=ValueObject(OrderLine), required=True)


@domain.command(part_of="Order")
class ConfirmOrder:
    order_id = Identifier(required=True, identifier=True)


@domain.command(part_of="Order")
class ShipOrder:
    order_id = Identifier(required=True, identifier=True)


@domain.command(part_of="Inventory")
class AdjustStock:
    book_id = Identifier(required=True, identifier=True)
    amount = Integer(required=True, min_value=-MAX_COPIES, max_value=MAX_COPIES)
