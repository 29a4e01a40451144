"""What the warehouse is asked to do, in the imperative."""

from inspector.fields import Float, Identifier, Integer, List, String, Text, ValueObject
from tests.warehouse.domain import domain


@domain.value_object
class OrderLine:
    book_id = Identifier(required=True)
    quantity = Integer(required=True, min_value=1)


@domain.command(part_of="Book")
class AddBook:
    title = String(max_length=200, required=True)
    author = String(max_length=150, required=True)
    isbn = String(max_length=13)
    price_amount = Float(required=True, min_value=0.01)
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
    amount = Integer(required=True)
