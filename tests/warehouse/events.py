"""What happened in the warehouse, in the past tense."""

from inspector.fields import Dict, Float, Identifier, Integer, List, String
from tests.warehouse.domain import domain


@domain.event(part_of="Book")
class BookAdded:
    book_id = Identifier(required=True)
    title = String(max_length=200, required=True)
    author = String(max_length=150, required=True)
    price_amount = Float()


@domain.event(part_of="Order")
class OrderPlaced:
    order_id = Identifier(required=True)
    customer_name = String(max_length=150, required=True)
    total_items = Integer(required=True)


@domain.event(part_of="Order")
class OrderConfirmed:
    order_id = Identifier(required=True)
    customer_name = String(max_length=150, required=True)


@domain.event(part_of="Order")
class OrderShipped:
    order_id = Identifier(required=True)
    customer_name = String(max_length=150, required=True)
    items = List(content_type=Dict, required=True)


@domain.event(part_of="Inventory")
class InventoryCreated:
    book_id = Identifier(required=True)
    title = String(max_length=200, required=True)
    in_stock = Integer(required=True, min_value=0)


@domain.event(part_of="Inventory")
class StockAdjusted:
    book_id = Identifier(required=True)
    title = String(max_length=200, required=True)
    amount = Integer(required=True)
    in_stock = Integer(required=True, min_value=0)
