"""Websocket consumers: the staff feed of messages and handler runs, and the live message,
flow and failures pages."""

import asyncio
import contextlib
import heapq
from collections import deque

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import QueryDict
from django.template.loader import render_to_string

from inspector import conf
from inspector.dashboard import feed, live_pages
from inspector.dashboard.views.messages import LIVE_CSRF_TOKEN

FORBIDDEN = 4403
BAD_PAGE = 4400  # the query names no page properly
NOT_FOUND = 4404
HELLO_WAIT = 1.0  # seconds a client has to say where it left off before it gets "live from now"
CATCH_UP_LIMIT = 2000
KEPT_ROWS = 500  # rows a client keeps unless it says otherwise (live.js trims to its MAX_ROWS)
KEPT_ROWS_LIMIT = 5000  # the most rows the consumer follows for one client
FRAME_ITEMS = 100  # fragments sent in one websocket message, at most


class FeedConsumer(AsyncJsonWebsocketConsumer):
    """Streams new messages and run state changes as htmx out-of-band fragments.

    The client sends {"action": "hello", "since": <last global position>, "rows": [the
    global positions of the rows it shows], "keep": <how many rows it keeps>, filters...} when
    it opens (and on every reconnect), then "filter", "pause" and "resume" messages.

    A run's badge is sent only while its message's row is on the client's page (htmx logs an
    error for an out-of-band swap whose target is missing): the rows it said it had, plus the
    rows sent since, the newest `keep` of them, as the client trims its table.
    """

    channel_layer_alias = feed.NO_CHANNEL_LAYER

    async def connect(self):
        accepted = await feed.wait_out_database_outage(self)
        user = self.scope.get("user")
        if user is None or not user.is_active or not user.is_staff:
            await self.close(code=FORBIDDEN)
            return
        if not accepted:
            await self.accept()
        self.filters = {}
        self.paused = False
        self.cursor = None
        self.overflowed = False
        # The hub's batches, as it offered them: one entry per read, not per fragment, since
        # a few hundred clients each take every batch.
        self.batches = deque()
        self.queued = 0  # fragments in `batches`
        self.buffer = conf.setting("feed_buffer")
        self.ready = asyncio.Event()  # something to send, or to catch up on
        self.started = asyncio.Event()
        self.since = None
        self.rows = set()  # global positions of the message rows the client shows
        self.rows_oldest_first = []  # the same positions, a heap
        self.keep = KEPT_ROWS
        self.hub = feed.hub_for_this_loop()
        self.hub_position = await self.hub.register(self)
        self.sender = asyncio.create_task(self._send_loop())

    async def disconnect(self, code):
        await feed.leave(self)

    async def receive_json(self, content, **kwargs):
        action = content.get("action") or "filter"
        if action in ("hello", "filter"):
            self.filters = {
                key: str(content.get(key) or "").strip()
                for key in ("type", "category", "status")
                if content.get(key)
            }
        if action == "hello":
            since = content.get("since")
            try:
                self.since = int(since) if since not in (None, "") else None
            except (TypeError, ValueError):
                self.since = None
            self._hold_rows(content.get("rows"), content.get("keep"))
            self.started.set()
        elif action == "pause":
            self.paused = True
        elif action == "resume" and self.paused:
            self.paused = False
            self.overflowed = True  # catch up from the store on what came in meanwhile
            self._nudge()

    def offer(self, items):
        """Called by the hub for every batch; never blocks it. A client with more than
        `feed_buffer` fragments waiting has fallen behind: its sender tells it and catches up
        from the store instead."""
        if self.paused or self.overflowed or not items:
            return
        if self.queued + len(items) > self.buffer:
            self.overflowed = True
            self._drain_queue()
        else:
            self.batches.append(items)
            self.queued += len(items)
        self.ready.set()

    def _hold_rows(self, rows, keep):
        """Start from the rows the client says it shows (junk is ignored, not trusted)."""
        self.keep = KEPT_ROWS
        if isinstance(keep, int) and not isinstance(keep, bool) and keep >= 0:
            self.keep = min(keep, KEPT_ROWS_LIMIT)
        self.rows, self.rows_oldest_first = set(), []
        if isinstance(rows, list):
            for position in rows[:KEPT_ROWS_LIMIT]:
                if isinstance(position, int) and not isinstance(position, bool):
                    self._hold(position)

    def _hold(self, position):
        """The client shows this row now; beyond `keep` it drops the oldest, and so do we."""
        if position in self.rows:
            return
        self.rows.add(position)
        heapq.heappush(self.rows_oldest_first, position)
        while len(self.rows) > self.keep:
            self.rows.discard(heapq.heappop(self.rows_oldest_first))

    def _nudge(self):
        self.ready.set()

    def _drain_queue(self):
        self.batches.clear()
        self.queued = 0

    def _next_frame(self):
        """The queued fragments for one websocket message: whole batches, `FRAME_ITEMS` or a
        little more."""
        frame = []
        while self.batches and len(frame) < FRAME_ITEMS:
            batch = self.batches.popleft()
            self.queued -= len(batch)
            frame.extend(batch)
        return frame

    async def _send_loop(self):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.started.wait(), HELLO_WAIT)
        if self.since is None:
            self.cursor = self.hub_position
        else:
            self.cursor = self.since
            await self._catch_up()
        await self.send(text_data=render_to_string("inspector/feed-status.html", {"live": True}))
        while True:
            await self.ready.wait()
            self.ready.clear()
            if self.overflowed:
                self.overflowed = False
                self._drain_queue()
                if not self.paused:
                    await self.send(
                        text_data=render_to_string(
                            "inspector/feed-status.html", {"live": True, "caught_up": True}
                        )
                    )
                    await self._catch_up()
                continue
            while self.batches and not self.overflowed:
                await self._send_items(self._next_frame())

    async def _catch_up(self):
        """Send what the client missed after its cursor, from the store, in order (a paused
        client gets it when it resumes). While the database is away the read is tried again
        until it is back: the socket stays open, the page is not yet told it is live."""
        while not self.paused:
            items, _ = await feed.through_database_outage(
                lambda: sync_to_async(feed.message_items)(after=self.cursor)
            )
            if not items:
                return
            await self._send_items(items)
            if len(items) < feed.BATCH:
                return

    async def _send_items(self, items):
        html = []
        for item in items:
            if self.paused:
                break
            if item.kind == "message":
                if item.global_position <= self.cursor:
                    continue  # already sent (catch-up and live overlap)
                self.cursor = item.global_position
                if item.matches(self.filters):
                    html.append(item.html)
                    self._hold(item.global_position)
            elif item.global_position in self.rows:  # a run's badge, in its message's row
                html.append(item.html)
        if html:
            await self.send(text_data="".join(html))


class LivePageConsumer(AsyncJsonWebsocketConsumer):
    """A message page's, a flow page's or the failures page's socket: it names its page in the
    query string (`?message=<id>&depth=<n>`, `?correlation=<id>` or `?failures=<handler or
    nothing>`) and is sent the page's diagram, run list and lineage (the failures table) as
    out-of-band fragments whenever a run or message it shows changes (`live_pages`): the
    newest render only, if it falls behind. Staff only, like the pages; the fragments show
    what the page shows its user (payloads only with `view_message`)."""

    channel_layer_alias = feed.NO_CHANNEL_LAYER

    async def connect(self):
        self.page = None
        accepted = await feed.wait_out_database_outage(self)
        user = self.scope.get("user")
        if user is None or not user.is_active or not user.is_staff:
            await self.close(code=FORBIDDEN)
            return
        query = QueryDict(self.scope.get("query_string", b"").decode("latin-1"))
        page = await sync_to_async(live_pages.page_for)(query, user)
        if not accepted:
            await self.accept()
        if page is None:
            await self.close(code=BAD_PAGE)
            return
        self.user = user
        self.csrf_token = await sync_to_async(live_pages.csrf_token_for)(self.scope)
        self.rendered = self.latest = None  # the shared render, and this socket's copy of it
        self.ready = asyncio.Event()
        self.watch = live_pages.watch_for_this_loop()
        self.page = page  # before subscribing: a socket that goes meanwhile is let go of
        if not await self.watch.subscribe(self, page):
            await self.close(code=NOT_FOUND)
            return
        self.sender = asyncio.create_task(self._send_loop())

    async def disconnect(self, code):
        if self.page is not None:
            self.watch.unsubscribe(self, self.page)
            self.page = None
        await feed.leave(self)

    async def receive_json(self, content, **kwargs):
        """The page has nothing to say: its query string named what it shows."""

    def deliver(self, html):
        """Called by the watch with each new render; never blocks it. The render's forms get
        this socket's own CSRF token."""
        self.rendered = html
        self.latest = html.replace(LIVE_CSRF_TOKEN, self.csrf_token)
        self.ready.set()

    async def _send_loop(self):
        while True:
            await self.ready.wait()
            self.ready.clear()
            await self.send(text_data=self.latest)
