"""The live feed: one hub per web process follows the store and the handler runs and fans
HTML fragments out to its websocket clients.

The store is the source of truth. The hub reads messages after the last global position it
saw (global positions are assigned in commit order, so nothing is skipped) and runs changed
in the last moments. Any process may *poke* hubs after a commit to cut the wait: hubs in the
same process directly, hubs elsewhere through a cross-process channel layer (Redis). Without
one (the embedded default), a hub on SQLite sees another process's commit by looking at the
database's `data_version` every 10 ms, a PRAGMA, and reads only then; on a database that shows
no such marker it sees them on its next poll.

Redis and the database may go away for a while (a restart, a failover): hubs and their clients
live through it. Without Redis a hub follows the store by polling, and when Redis is back it
joins its group again and reads the store at once, since the pokes sent meanwhile reached no
one. Without the database a hub keeps its clients and reads again until the database is back.
"""

import asyncio
import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from channels.auth import get_user
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from inspector import conf
from inspector.dashboard import fragments as row_html
from inspector.models import HandlerRun, Message
from inspector.runtime import signals
from inspector.runtime.connections import (
    Outage,
    close_broken_connections,
    database_outage,
    lost_database,
)
from inspector.runtime.databases import database
from inspector.runtime.sql import Columns, adapters, placeholders

try:  # the `redis` extra: the errors of a Redis channel layer that cannot reach its server
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # pragma: no cover - no Redis layer without it
    RedisConnectionError = RedisTimeoutError = OSError

logger = logging.getLogger(__name__)

GROUP = "inspector-feed"
# Runs are re-read this far back: commits land up to `UPDATED_AT_LAG` after a run's stamp.
RUN_WINDOW = 3 * signals.UPDATED_AT_LAG
SEEN_RUNS = 20_000
BATCH = 500

# What a cross-process channel layer raises when its server is out of reach.
LAYER_DOWN = (OSError, TimeoutError, RedisConnectionError, RedisTimeoutError)
# Seconds between attempts to reach it again: the first soon, then at most a second apart,
# so that live pages are current again within about a second of the server being back.
LAYER_RETRY = (0.1, 0.2, 0.5, 1.0)

# Seconds between the hub's joins of its group, and channels_redis's default group_expiry.
REJOIN = 3600.0
GROUP_EXPIRY = 86400

# Seconds between the hub's reads while the database is away.
DATABASE_RETRY = 0.25

# On a database that shows other connections' commits (SQLite's `data_version`), a thread
# beside each hub looks at that marker this many times per `feed_poll_interval` (every 10 ms
# by default; a look is one PRAGMA) and wakes the hub when it moved; the hub then reads at
# once, and without a sign of news still every `feed_poll_interval`, at least once a second.
LOOKS_PER_POLL = 5
WATCHED_READ = 1.0

redis_outage = Outage("Redis", "live pages follow the store until it is back", log=logger)

# The scope key inspector.routing's `AuthMiddleware` sets when it could not read the session.
DATABASE_AWAY = "inspector_database_away"

# The `channel_layer_alias` of the feed's consumers: no layer, so channels gives them no
# channel of their own. Their hub delivers everything; a consumer waiting on a Redis layer's
# `receive` for nothing would die with Redis (channels' consumer awaits it beside the socket).
NO_CHANNEL_LAYER = None


@dataclass(frozen=True)
class FeedItem:
    """One fragment for clients: a new message row, or a run's new state."""

    kind: str  # "message" or "run"
    global_position: int
    type: str
    category: str
    statuses: frozenset
    html: str
    data: dict | None = None  # a message's payload, for consumers that render their own view
    message_id: object = None  # the message, or the run's message (live message and flow pages)
    correlation_id: object = None  # a message's correlation (runs: see message_id)

    def matches(self, filters):
        if filters.get("type") and self.type != filters["type"]:
            return False
        if filters.get("category") and self.category != filters["category"]:
            return False
        return not (filters.get("status") and filters["status"] not in self.statuses)


# Reading the store (sync; run through sync_to_async) ----------------------------------------


def current_position():
    return Message.objects.aggregate(last=Max("global_position"))["last"] or -1


def read_store(*, after, since, seen):
    """What the hub reads after a poke, a commit or its poll interval: the message items after
    the global position `after`, then the run items since `since` (`run_items`), in one trip
    to the database thread. Returns (messages, runs, where the next read of runs starts)."""
    messages, states = message_items(after=after)
    for run_id, state in states.items():  # those runs are drawn in their rows already
        _remember(seen, run_id, state)
    runs, run_cursor = run_items(since=since, seen=seen)
    return messages, runs, run_cursor


class CommitWatch:
    """A thread that looks at the commit marker every `interval` seconds, on a connection of
    its own, and wakes `hub` when it moved: another connection committed. The looks stay off
    the event loop, which sleeps until there is news (through the loop, each look was a trip
    to the database thread and back: a sixth of a core for an idle hub on this machine)."""

    def __init__(self, hub, interval):
        self.hub = hub
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="inspector-feed-watch", daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped.set()

    @staticmethod
    def _look():
        """The marker, on this thread's connection, through the driver's own cursor: Django's
        wrapping and its connection checks cost more than the PRAGMA, 100 times a second."""
        connection.ensure_connection()
        cursor = connection.connection.cursor()
        try:
            return database().commit_marker(cursor)
        finally:
            cursor.close()

    def _run(self):
        marker = None
        try:
            while not self.stopped.wait(self.interval):
                try:
                    now = self._look()
                except Exception:  # the hub's next read meets the error, with its handling
                    connection.close()  # and the next look opens a new connection
                    now = None
                if now != marker or now is None:
                    marker = now
                    try:
                        self.hub.loop.call_soon_threadsafe(self.hub.wake.set)
                    except RuntimeError:  # the loop is closed
                        return
        finally:
            connection.close()


# The columns a row and a badge show (`fragments.feed_row`, `fragments.run_badge`), and what
# the hub keeps of a run: payloads, tracebacks and the like stay in the store.
MESSAGE_FIELDS = (
    "id",
    "kind",
    "type",
    "category",
    "stream",
    "position",
    "global_position",
    "time",
    "correlation_id",
    "data",  # for consumers that render their own view (the shop's stock and order updates)
)
RUN_FIELDS = (
    "id",
    "message_id",
    "handler",
    "status",
    "attempts",
    "updated_at",
    "duration_us",
    "message_type",
    "stream",
    "global_position",
    "error_type",
)
# What a run's state is compared by: its id and these, as the database has them.
RUN_STATE = ("id", "status", "attempts", "updated_at")


def _in_model_order(model, names):
    """`Model.from_db` takes a subset of the fields in the model's order."""
    order = [field.attname for field in model._meta.concrete_fields]
    return sorted(names, key=order.index)


# The hub reads after every commit: its statements are written once (`runtime.sql`), since
# the ORM's compiling of a query cost more than running it (a hub's read with the run window
# of 100 events/s: 12-14 ms of CPU through the ORM, 2.5-3.3 ms so; bench/README.md).
_MESSAGE_COLUMNS = Columns(Message, _in_model_order(Message, MESSAGE_FIELDS), "m")
_RUN_COLUMNS = Columns(HandlerRun, _in_model_order(HandlerRun, RUN_FIELDS), "r")
_UPDATED_AT = Columns(HandlerRun, ["updated_at"], "r")
STATE = len(RUN_STATE)  # a run row: its state's columns, then `_RUN_COLUMNS`
UPDATED = RUN_STATE.index("updated_at")


def _select(template, params):
    """Rows of `template`, its tables and columns named as in `str.format`: {messages},
    {runs}, {message_columns}, {run_columns} and {state} (a run's `RUN_STATE` columns)."""
    qn = connection.ops.quote_name
    statement = template.format(
        messages=qn(Message._meta.db_table),
        runs=qn(HandlerRun._meta.db_table),
        message_columns=_MESSAGE_COLUMNS.sql,
        run_columns=_RUN_COLUMNS.sql,
        state=", ".join(f"r.{qn(name)}" for name in RUN_STATE),
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def message_items(*, after, limit=BATCH):
    """Fragments for the messages after a global position, with their runs' badges; and
    those runs' states, as `run_items` compares them."""
    close_broken_connections()
    rows = _select(
        "SELECT {message_columns} FROM {messages} m WHERE m.global_position > %s"
        " ORDER BY m.global_position LIMIT %s",
        [after, limit],
    )
    runs, states = {}, {}
    if rows:
        ids = [row[0] for row in rows]  # as the database has them: fit for its parameters
        for row in _select(
            "SELECT {state}, {run_columns} FROM {runs} r"
            f" WHERE r.message_id IN ({placeholders(len(ids))}) ORDER BY r.handler",
            ids,
        ):
            run = _RUN_COLUMNS.load(row, offset=STATE)
            runs.setdefault(run.message_id, []).append(run)
            states[row[0]] = row[1:STATE]
    items = []
    for message in map(_MESSAGE_COLUMNS.load, rows):
        message_runs = runs.get(message.id, [])
        html = row_html.feed_row(message, message_runs, oob=True)
        items.append(
            FeedItem(
                kind="message",
                global_position=message.global_position,
                type=message.type,
                category=message.category,
                statuses=frozenset(run.status for run in message_runs),
                html=html,
                data=message.data,
                message_id=message.id,
                correlation_id=message.correlation_id,
            )
        )
    return items, states


RUN_LIMIT = BATCH * 4


def run_items(*, since, seen):
    """Fragments for runs whose state changed since `since`, skipping states already sent.

    Returns the items and where the next read starts: a window back from the latest change
    seen (commits land late), or the latest change itself when this read was cut at the
    limit, so a burst of changes is walked through instead of re-read.

    A hub reading after every commit reads the window again and again: it is read as bare
    states, as the database has them, and only the runs whose state is new are read whole.
    """
    close_broken_connections()
    (adapt,) = adapters(HandlerRun, ["updated_at"], connection)
    states = _select(
        "SELECT {state} FROM {runs} r WHERE r.updated_at >= %s ORDER BY r.updated_at LIMIT %s",
        [adapt(since), RUN_LIMIT],
    )
    latest = _UPDATED_AT.load(states[-1], offset=UPDATED).updated_at if states else since
    ids = [run_id for run_id, *state in states if seen.get(run_id) != tuple(state)]
    rows = []
    for start in range(0, len(ids), BATCH):  # within any SQLite's limit on parameters
        chunk = ids[start : start + BATCH]
        rows += _select(
            "SELECT {state}, {run_columns} FROM {runs} r"
            f" WHERE r.id IN ({placeholders(len(chunk))})",
            chunk,
        )
    items = []
    for row in sorted(rows, key=lambda row: row[UPDATED]):
        _remember(seen, row[0], row[1:STATE])
        run = _RUN_COLUMNS.load(row, offset=STATE)
        items.append(
            FeedItem(
                kind="run",
                global_position=run.global_position,
                type=run.message_type,
                category=run.stream.partition("-")[0],
                statuses=frozenset([run.status]),
                html=row_html.run_badge(run, oob=True),
                message_id=run.message_id,
            )
        )
    if len(states) == RUN_LIMIT:
        return items, latest
    return items, max(since, latest - RUN_WINDOW)


def _remember(seen, run_id, state):
    seen[run_id] = state
    seen.move_to_end(run_id)
    while len(seen) > SEEN_RUNS:
        seen.popitem(last=False)


# The hub ------------------------------------------------------------------------------------

_hubs = weakref.WeakKeyDictionary()  # event loop -> Hub
_hubs_lock = threading.Lock()


def hub_for_this_loop():
    loop = asyncio.get_running_loop()
    with _hubs_lock:
        hub = _hubs.get(loop)
        if hub is None:
            hub = _hubs[loop] = Hub(loop)
    return hub


async def leave(client):
    """Stop delivering to a disconnected client and end its sending task."""
    hub = getattr(client, "hub", None)
    if hub is not None:
        hub.unregister(client)
    sender = getattr(client, "sender", None)
    if sender is not None:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def through_database_outage(read):
    """`await read()`, again every `DATABASE_RETRY` seconds while it fails for want of the
    database (the outage is logged once each way, without a traceback)."""
    while True:
        try:
            result = await read()
        except Exception as error:
            # On the thread that met the error: sync_to_async's shared one, as `read`'s.
            if not await sync_to_async(lost_database)(error):
                raise
            await asyncio.sleep(DATABASE_RETRY)
            continue
        database_outage.is_back()
        return result


async def wait_out_database_outage(consumer):
    """If `consumer`'s handshake came while the database was away (its session and user could
    not be read), accept it and wait until the user can be read; whether it did (the socket is
    then accepted, and the consumer goes on to check the user as usual).

    Held open rather than refused: a server cannot close with "try again later" (1013, on which
    the htmx ws extension reconnects; autobahn sends 1000 or 3000-4999 only), and a refused
    handshake has the browser back off for up to a minute. So the page says "Reconnecting…"
    through the outage and is live again as soon as the database is back. Nothing is sent
    before the user is known: an anonymous socket learns nothing by being held.
    """
    scope = consumer.scope
    if not scope.get(DATABASE_AWAY):
        return False
    await consumer.accept()
    scope["user"] = await through_database_outage(lambda: get_user(scope))
    return True


def connected_clients():
    with _hubs_lock:
        return sum(len(hub.clients) for hub in _hubs.values())


class Hub:
    """Follows the store for the clients connected to this process's event loop."""

    def __init__(self, loop):
        self.loop = loop
        self.clients = set()
        self.wake = asyncio.Event()
        self.poll_interval = conf.setting("feed_poll_interval")
        self.watches_commits = database().watches_commits
        self.read_interval = self.poll_interval
        if self.watches_commits:
            self.read_interval = max(self.poll_interval, WATCHED_READ)
        self.cursor = None
        self.run_cursor = None
        self.seen_runs = OrderedDict()
        self._task = None

    async def register(self, client):
        """Start delivering to `client`; return the position the hub has reached."""
        if self.cursor is None:
            self.cursor = await through_database_outage(sync_to_async(current_position))
            self.run_cursor = timezone.now() - RUN_WINDOW  # where the next read of runs starts
        self.clients.add(client)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow())
        return self.cursor

    def unregister(self, client):
        self.clients.discard(client)

    async def _follow(self):
        pokes = asyncio.create_task(self._listen_for_pokes())
        watch = None
        if self.watches_commits:
            watch = CommitWatch(self, self.poll_interval / LOOKS_PER_POLL)
        last_tick = self.loop.time()
        try:
            while self.clients:
                # The poll period includes the read: wait only for what is left of it.
                remaining = self.read_interval - (self.loop.time() - last_tick)
                if remaining > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), remaining)
                last_tick = self.loop.time()
                self.wake.clear()
                try:
                    await self.tick()
                except Exception as error:
                    if await sync_to_async(lost_database)(error):
                        await asyncio.sleep(max(self.poll_interval, DATABASE_RETRY))
                    else:
                        logger.exception("Live feed could not read the store")
                        await asyncio.sleep(self.poll_interval)
        finally:
            pokes.cancel()
            if watch is not None:
                watch.stop()
            self.cursor = None  # the next client starts the hub from the then-current end

    async def tick(self):
        """Read what changed and offer it to every client."""
        items, runs, self.run_cursor = await sync_to_async(read_store)(
            after=self.cursor,
            since=self.run_cursor,
            seen=self.seen_runs,
        )
        database_outage.is_back()
        if items:
            self.cursor = items[-1].global_position
        batch = items + runs
        if batch:
            for client in list(self.clients):
                client.offer(batch)
        return batch

    async def _receive_pokes(self, layer, channel, *, until):
        """Wake the hub for every poke that arrives on `channel` until the loop's time `until`."""
        while (left := until - self.loop.time()) > 0:
            try:
                await asyncio.wait_for(layer.receive(channel), left)
            except TimeoutError:
                return
            self.wake.set()

    async def _listen_for_pokes(self):
        layer = get_channel_layer()
        if layer is None or isinstance(layer, InMemoryChannelLayer):
            return  # in-process writers wake the hub directly
        channel = await layer.new_channel()
        rejoin = rejoin_interval(layer)
        failures = 0
        try:
            while True:
                try:
                    await layer.group_add(GROUP, channel)
                    if failures:  # the pokes sent while the hub was out of the group are lost
                        self.wake.set()
                        failures = 0
                    redis_outage.is_back()
                    await self._receive_pokes(layer, channel, until=self.loop.time() + rejoin)
                    continue  # joined again: the layer forgets members after its group_expiry
                except LAYER_DOWN as error:
                    # The first failure is tried again at once: Redis may have cut a connection
                    # as it restarted, and the layer opens a new one.
                    if failures:
                        redis_outage.went_away(error)
                except Exception:
                    logger.exception("Live feed could not listen for pokes; polling the store")
                if failures:
                    await asyncio.sleep(retry_delay(failures))
                failures += 1
        except asyncio.CancelledError:
            pass
        finally:
            try:
                await layer.group_discard(GROUP, channel)
            except Exception:
                logger.debug("Could not leave the feed group", exc_info=True)


# Pokes: any process, after a commit -------------------------------------------------------


class _RemotePoker:
    """One thread per process sends pokes through a cross-process layer (Redis).

    `poke()` only sets an event, so a commit never waits on the network; the thread keeps
    one event loop (and so one Redis connection) and sends at most one poke per gap.
    """

    GAP = 0.02

    def __init__(self):
        self.wanted = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.thread = None
        self.lock = threading.Lock()
        atexit.register(self.flush)

    def flush(self, timeout=2.0):
        """Send what is still wanted before the process exits (a script's last commit)."""
        deadline = time.monotonic() + timeout
        while (self.wanted.is_set() or not self.idle.is_set()) and time.monotonic() < deadline:
            if self.thread is None or not self.thread.is_alive():
                return
            time.sleep(0.01)

    def request(self):
        self.idle.clear()
        self.wanted.set()
        if self.thread is None or not self.thread.is_alive():
            with self.lock:
                if self.thread is None or not self.thread.is_alive():
                    self.thread = threading.Thread(
                        target=self._run, name="inspector-feed-poker", daemon=True
                    )
                    self.thread.start()

    def _run(self):
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        failures, retry_at = 0, 0.0
        while True:
            self.wanted.wait()
            self.wanted.clear()
            # While Redis is away pokes are dropped (hubs follow the store) and it is tried
            # again at most a second apart; hubs read the store when they are back in touch.
            if time.monotonic() >= retry_at:
                error = self._send(loop)
                if error is None:
                    redis_outage.is_back()
                    failures = 0
                else:
                    redis_outage.went_away(error)
                    failures += 1
                    retry_at = time.monotonic() + retry_delay(failures)
            time.sleep(self.GAP)
            if not self.wanted.is_set():
                self.idle.set()

    @staticmethod
    def _send(loop):
        """Send one poke; the error if Redis cannot be reached. A failure is tried again at
        once: Redis may have cut the connection as it restarted, and the layer opens another."""
        error, layer = None, get_channel_layer()
        for _attempt in range(2):
            try:
                loop.run_until_complete(layer.group_send(GROUP, {"type": "feed.poke"}))
                return None
            except LAYER_DOWN as exc:
                error = exc
            except Exception:
                logger.warning("Could not poke the live feed", exc_info=True)  # not an outage
                return None
        return error


def rejoin_interval(layer):
    """Seconds between the hub's joins of its group: channels_redis drops a member after
    `group_expiry` (a day by default), and a hub connected longer would only poll. An hour, or
    a quarter of a shorter expiry."""
    expiry = getattr(layer, "group_expiry", None) or GROUP_EXPIRY
    return min(REJOIN, expiry / 4)


def retry_delay(failures):
    """Seconds before the next attempt to reach the channel layer after `failures` in a row."""
    return LAYER_RETRY[min(failures, len(LAYER_RETRY)) - 1]


_remote_poker = _RemotePoker()


def poke(**_signal_arguments):
    """Tell hubs that something was committed, so they read the store now; connected to the
    runtime's `messages_appended` and `runs_changed` signals."""
    with _hubs_lock:
        hubs = list(_hubs.values())
    for hub in hubs:
        if hub.clients and not hub.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                hub.loop.call_soon_threadsafe(hub.wake.set)
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return  # other processes' hubs poll; this process's hubs were woken above
    _remote_poker.request()
