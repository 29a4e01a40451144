"""What the bookshelf is asked to do, in the imperative."""

from bookshelf.domain import domain
from inspector.fields import Float, Identifier, Integer, List, String, Text, ValueObject

# The most copies one order line or one stock adjustment may move: stock and order lines are
# 32-bit columns, so a bounded amount is refused on its field rather than overflowing a row.
MAX_COPIES = 1_000_000
# The dearest book, as the catalog form allows it: totals of many copies stay finite.
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
