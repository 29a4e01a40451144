"""The shop's live updates: stock levels and order statuses change in place on open pages.

A page says which elements it has (`{"shows": [the ids of its elements]}`, sent by
static/bookshelf/live.js when the socket opens and whenever a swap changes them), and gets
swaps for those only: htmx logs an error for an out-of-band swap whose target is missing.
"""

import asyncio
import contextlib
import json
from collections import OrderedDict

from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from bookshelf.models import Order, OrderStatus
from bookshelf.selectors import LOW_STOCK
from inspector.dashboard import feed
from inspector.dashboard.consumers import FORBIDDEN

BUFFER = 200
SHOWN_LIMIT = 5000  # element ids one page may declare; a page shows a few hundred
RECENT = 500  # the latest swap of this many elements is kept for a page that shows them later
STATUS_AFTER = {
    "bookshelf.OrderPlaced.v1": OrderStatus.PENDING,
    "bookshelf.OrderConfirmed.v1": OrderStatus.CONFIRMED,
    "bookshelf.OrderShipped.v1": OrderStatus.SHIPPED,
}
STOCK_EVENTS = {"bookshelf.InventoryCreated.v1", "bookshelf.StockAdjusted.v1"}


def fragment(item):
    """The id of the element one stored event changes on shop pages and its out-of-band
    swap, or None."""
    if item.kind != "message" or not item.data:
        return None
    if item.type in STOCK_EVENTS:
        book_id = item.data["book_id"]
        html = render_to_string(
            "bookshelf/live-stock.html",
            {
                "book_id": book_id,
                "quantity": item.data["quantity"],
                "low_stock": LOW_STOCK,
                "oob": True,
            },
        )
        return f"stock-{book_id}", html
    status = STATUS_AFTER.get(item.type)
    if status is not None:
        order = Order(id=item.data["order_id"], status=status)
        html = render_to_string("bookshelf/status-badge.html", {"order": order, "oob": True})
        return f"order-status-{order.id}", html
    return None


def shown_ids(text_data):
    """The element ids a page's `{"shows": [...]}` message declares, or None for any other
    message (ignored: a page cannot make the consumer fail)."""
    try:
        content = json.loads(text_data or "")
    except ValueError:
        return None
    shows = content.get("shows") if isinstance(content, dict) else None
    if not isinstance(shows, list):
        return None
    return {value for value in shows[:SHOWN_LIMIT] if isinstance(value, str) and len(value) < 100}


class ShopConsumer(AsyncWebsocketConsumer):
    """Sends logged-in shoppers the stock and status changes, whoever made them."""

    channel_layer_alias = feed.NO_CHANNEL_LAYER

    async def connect(self):
        accepted = await feed.wait_out_database_outage(self)
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=FORBIDDEN)
            return
        if not accepted:
            await self.accept()
        self.queue = asyncio.Queue(maxsize=BUFFER)
        self.shown = set()  # nothing until the page says what it shows
        self.latest = OrderedDict()  # element id -> its latest swap, the RECENT last changed
        self.hub = feed.hub_for_this_loop()
        await self.hub.register(self)
        self.sender = asyncio.create_task(self._send_loop())

    async def disconnect(self, code):
        await feed.leave(self)

    async def receive(self, text_data=None, bytes_data=None):
        shown = shown_ids(text_data)
        if shown is None:
            return
        # An element swapped in a moment ago may have changed before the page declared it.
        for element_id in shown - self.shown:
            if element_id in self.latest:
                self._send_later(self.latest[element_id])
        self.shown = shown

    def offer(self, items):
        """Called by the hub; drops updates rather than block it (a reload shows the truth)."""
        for item in items:
            swap = fragment(item)
            if swap is None:
                continue
            element_id, html = swap
            self.latest[element_id] = html
            self.latest.move_to_end(element_id)
            while len(self.latest) > RECENT:
                self.latest.popitem(last=False)
            if element_id in self.shown:
                self._send_later(html)

    def _send_later(self, html):
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(html)

    async def _send_loop(self):
        while True:
            parts = [await self.queue.get()]
            while not self.queue.empty():
                parts.append(self.queue.get_nowait())
            await self.send(text_data="".join(parts))
