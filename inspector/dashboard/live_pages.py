"""Live message, flow and failures pages: their diagram, run list and lineage (or failure
groups) re-rendered as runs change.

A message page follows one message (at the depth it draws), a flow page one correlation, the
failures page every run (or one handler's). Each page's socket (`consumers.LivePageConsumer`)
subscribes here; one `PageWatch` per event loop is a client of that loop's feed hub
(`feed.Hub`), so it sees every batch of new messages and changed runs the hub reads, and marks
the pages a batch touches: a new message of the page's correlation, or a changed run of one of
its messages; any changed run for the failures page, whose counts any failure, retry, replay
or resolve changes (and a changed run's item does not say what it was before).

Renders are shared and debounced. Sockets showing the same page to users allowed the same
things (`views.messages.LIVE_PERMISSIONS`) share one render; a page is rendered at most once
per `DEBOUNCE` seconds, however many changes and sockets, and each socket is sent only the
newest render, so 50 operators watching one flow cost one render per change, not 50.
"""

import asyncio
import logging
import uuid
import weakref
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest
from django.middleware import csrf

from inspector.dashboard import feed
from inspector.dashboard.views import failures as failure_pages
from inspector.dashboard.views import messages as pages
from inspector.models import Message

logger = logging.getLogger(__name__)

DEBOUNCE = 0.25  # seconds: the most often one page is rendered again
# The failures page is a read of every group with failed or dead runs, and busy traffic
# changes runs all the time: at most once a second (it polled every two seconds before).
FAILURES_DEBOUNCE = 1.0


@dataclass(frozen=True)
class Page:
    """What a socket shows: a message at a depth, a correlation, or the failures (of one
    handler, or all); and what its user may do."""

    message: uuid.UUID | None
    depth: int | None
    correlation: uuid.UUID | None
    allowed: tuple  # the user's answers to LIVE_PERMISSIONS
    failures: bool = False
    handler: str | None = None  # the failures page's filter

    @property
    def debounce(self):
        return FAILURES_DEBOUNCE if self.failures else DEBOUNCE


def page_for(query, user):
    """The page a socket's query string names (`message` and `depth`, `correlation`, or
    `failures`: a handler's name or nothing), for `user`; None when it names none properly."""

    def uuid_of(name):
        try:
            return uuid.UUID(query.get(name, ""))
        except ValueError:
            return None

    depth = None
    if query.get("depth", "").isdigit():
        depth = int(query["depth"])
    message, correlation = uuid_of("message"), uuid_of("correlation")
    allowed = tuple(user.has_perm(name) for name in pages.LIVE_PERMISSIONS)
    if "failures" in query and message is None and correlation is None:
        handler = query["failures"].strip() or None
        return Page(None, None, None, allowed, failures=True, handler=handler)
    if (message is None) == (correlation is None):
        return None
    return Page(
        message=message,
        depth=depth if message else None,
        correlation=None if message else correlation,
        allowed=allowed,
    )


def correlation_of(page):
    """The correlation a page follows and its messages' ids (None if the message is gone)."""
    correlation = page.correlation
    if correlation is None:
        correlation = (
            Message.objects.filter(pk=page.message).values_list("correlation_id", flat=True).first()
        )
        if correlation is None:
            return None, set()
    ids = set(Message.objects.filter(correlation_id=correlation).values_list("id", flat=True))
    return correlation, ids


def csrf_token_for(scope):
    """A CSRF token for the forms a socket is sent, from its own CSRF secret (the cookie, or the
    session with CSRF_USE_SESSIONS), as `{% csrf_token %}` would write it on the page; "" when
    it has none (the page's htmx requests send the page's token in a header)."""
    if settings.CSRF_USE_SESSIONS:
        session = scope.get("session")
        secret = session.get(csrf.CSRF_SESSION_KEY, "") if session is not None else ""
    else:
        secret = scope.get("cookies", {}).get(settings.CSRF_COOKIE_NAME, "")
    if len(secret) != csrf.CSRF_SECRET_LENGTH or not set(secret) <= set(csrf.CSRF_ALLOWED_CHARS):
        return ""
    request = HttpRequest()
    request.META["CSRF_COOKIE"] = secret
    return csrf.get_token(request)


def render(page, user):
    """The page's live fragments for `user` (any user the page's `allowed` describes), and
    the ids of the messages of its correlation (none for the failures page)."""
    if page.failures:
        return failure_pages.live_fragment(handler=page.handler), set()
    return pages.live_fragments(
        user=user,
        message=page.message,
        depth=page.depth,
        correlation=page.correlation,
    )


_watches = weakref.WeakKeyDictionary()  # event loop -> PageWatch


def watch_for_this_loop():
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None or watch.loop.is_closed():
        watch = _watches[loop] = PageWatch(loop)
    return watch


class PageWatch:
    """The live pages of one event loop, and their shared renders."""

    def __init__(self, loop):
        self.loop = loop
        self.sockets = {}  # Page -> set of consumers
        self.correlations = {}  # Page -> correlation id
        self.messages = {}  # correlation id -> ids of its messages
        self.scheduled = {}  # Page -> the task that renders it next
        self.tasks = set()  # every render task until it ends (the loop keeps weak references)
        self.rendered_at = {}  # Page -> loop time of its last render
        self.renders = 0  # how many renders this watch made (tests and benchmarks read it)
        self.hub = None

    async def subscribe(self, consumer, page):
        """Follow `page` for `consumer`; False if its message does not exist."""
        if not page.failures and page not in self.correlations:
            correlation, ids = await feed.through_database_outage(
                lambda: sync_to_async(correlation_of)(page)
            )
            if correlation is None:
                return False
            self.correlations[page] = correlation
            self.messages.setdefault(correlation, set()).update(ids)
        if consumer.page != page:  # it went while its page was read
            if page not in self.sockets:
                self._forget(page)
            return False
        self.sockets.setdefault(page, set()).add(consumer)
        if self.hub is None:
            self.hub = feed.hub_for_this_loop()
        await self.hub.register(self)
        # What changed between the page's render and its socket (or while a socket was away
        # and reconnecting) reached no one: render once now.
        self.schedule(page)
        return True

    def unsubscribe(self, consumer, page):
        sockets = self.sockets.get(page)
        if sockets is None:
            return
        sockets.discard(consumer)
        if sockets:
            return
        del self.sockets[page]
        self._forget(page)
        if not self.sockets and self.hub is not None:
            self.hub.unregister(self)

    def _forget(self, page):
        """Drop what was kept for a page no socket shows any more."""
        correlation = self.correlations.pop(page, None)
        task = self.scheduled.pop(page, None)
        if task is not None:
            task.cancel()
        self.rendered_at.pop(page, None)
        if correlation not in self.correlations.values():
            self.messages.pop(correlation, None)

    def offer(self, items):
        """Called by the hub with every batch it read; marks the pages it touches."""
        touched, runs_changed = set(), False
        for item in items:
            if item.kind == "message" and item.correlation_id in self.messages:
                touched.add(item.correlation_id)
                self.messages[item.correlation_id].add(item.message_id)
            elif item.kind == "run":
                runs_changed = True
                touched.update(
                    correlation
                    for correlation, ids in self.messages.items()
                    if item.message_id in ids
                )
        for page, correlation in list(self.correlations.items()):
            if correlation in touched:
                self.schedule(page)
        if runs_changed:
            for page in [page for page in self.sockets if page.failures]:
                self.schedule(page)

    def schedule(self, page):
        """Render `page` again soon: at once, or its debounce after its last render."""
        if page in self.scheduled:
            return  # the render to come reads the store after this change too
        last = self.rendered_at.get(page)
        delay = 0.0 if last is None else max(0.0, last + page.debounce - self.loop.time())
        task = self.scheduled[page] = asyncio.create_task(self._render_later(page, delay))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _render_later(self, page, delay):
        if delay:
            await asyncio.sleep(delay)
        self.scheduled.pop(page, None)  # a change from now on schedules the next render
        sockets = self.sockets.get(page)
        if not sockets:
            return
        self.rendered_at[page] = self.loop.time()
        user = next(iter(sockets)).user
        try:
            html, ids = await feed.through_database_outage(
                lambda: sync_to_async(render)(page, user)
            )
        except Exception:
            logger.exception("Could not render a live page")
            return
        self.renders += 1
        correlation = self.correlations.get(page)
        if correlation is not None:
            self.messages.setdefault(correlation, set()).update(ids)
        if html:
            for consumer in list(self.sockets.get(page, ())):
                if consumer.rendered != html:  # a change elsewhere in the correlation, not drawn
                    consumer.deliver(html)
