"""The shop's live updates: stock levels and order statuses change in place on open pages."""

import asyncio
import contextlib

from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from bookshelf.models import Order, OrderStatus
from bookshelf.selectors import LOW_STOCK
from inspector.dashboard import feed
from inspector.dashboard.consumers import FORBIDDEN

BUFFER = 200
STATUS_AFTER = {
    "bookshelf.OrderPlaced.v1": OrderStatus.PENDING,
    "bookshelf.OrderConfirmed.v1": OrderStatus.CONFIRMED,
    "bookshelf.OrderShipped.v1": OrderStatus.SHIPPED,
}
STOCK_EVENTS = {"bookshelf.InventoryCreated.v1", "bookshelf.StockAdjusted.v1"}


def fragment(item):
    """The out-of-band swap a shop page needs for one stored event, or None."""
    if item.kind != "message" or not item.data:
        return None
    if item.type in STOCK_EVENTS:
        return render_to_string(
            "bookshelf/live-stock.html",
            {
                "book_id": item.data["book_id"],
                "quantity": item.data["quantity"],
                "low_stock": LOW_STOCK,
                "oob": True,
            },
        )
    status = STATUS_AFTER.get(item.type)
    if status is not None:
        order = Order(id=item.data["order_id"], status=status)
        return render_to_string("bookshelf/status-badge.html", {"order": order, "oob": True})
    return None


class ShopConsumer(AsyncWebsocketConsumer):
    """Sends logged-in shoppers the stock and status changes, whoever made them."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=FORBIDDEN)
            return
        await self.accept()
        self.queue = asyncio.Queue(maxsize=BUFFER)
        self.hub = feed.hub_for_this_loop()
        await self.hub.register(self)
        self.sender = asyncio.create_task(self._send_loop())

    async def disconnect(self, code):
        await feed.leave(self)

    def offer(self, items):
        """Called by the hub; drops updates rather than block it (a reload shows the truth)."""
        for item in items:
            html = fragment(item)
            if html:
                with contextlib.suppress(asyncio.QueueFull):
                    self.queue.put_nowait(html)

    async def _send_loop(self):
        while True:
            parts = [await self.queue.get()]
            while not self.queue.empty():
                parts.append(self.queue.get_nowait())
            await self.send(text_data="".join(parts))
