"""How the live feed's hub reads the store: at once after another connection's commit on
SQLite (its `data_version`), not a poll interval later; and the run window, re-read after
every commit, sends each run state once."""

import asyncio
import threading
import time
from collections import OrderedDict

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from inspector.dashboard import feed
from inspector.models import HandlerRun, Message
from inspector.runtime import signals
from inspector.runtime.databases import database
from inspector.runtime.unit_of_work import unit_of_work
from inspector.workers.worker import Worker
from tests.asgi import application
from tests.sockets import feed_client, receive_until, session_cookie
from tests.threads import run_in_thread
from tests.warehouse.probe import Ping

pytestmark = pytest.mark.django_db(transaction=True)
FEED = "/ws/inspector/feed/"
POKES = {
    "inspector-feed-messages": signals.messages_appended,
    "inspector-feed-runs": signals.runs_changed,
}


@pytest.fixture
def staff(django_user_model):
    user = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    return session_cookie(user)


@pytest.fixture
def unpoked():
    """Commits in this process poke no hub, as another process's commits do not (without a
    cross-process channel layer)."""
    for uid, signal in POKES.items():
        signal.disconnect(dispatch_uid=uid)
    yield
    for uid, signal in POKES.items():
        signal.connect(feed.poke, dispatch_uid=uid)


def append_elsewhere(domain, n):
    """Append one Ping on another thread, so on a connection of its own; its position."""
    run_in_thread(lambda: _append(domain, n)).join()
    return Message.objects.get(stream=f"probe::ping-{n}").global_position


def _append(domain, n):
    with unit_of_work(domain) as uow:
        uow.append(Ping(n=n), stream=f"probe::ping-{n}")


watches_commits = pytest.mark.skipif(
    not database().watches_commits, reason="a database that shows other connections' commits"
)


def commit_watches():
    return {t for t in threading.enumerate() if t.name == "inspector-feed-watch" and t.is_alive()}


@watches_commits
def test_another_connections_commit_arrives_without_waiting_out_the_poll_interval(
    staff, domain, unpoked
):
    """The first row arrives at the hub's next read; the second is committed just after it,
    when a hub that only polls has its whole interval (5 s here) to wait before reading
    again. Looking at data_version (5 times a poll interval) it reads within a second."""
    inspector = {**settings.INSPECTOR, "feed_poll_interval": 5.0}

    async def scenario():
        ws = await feed_client(application, staff, FEED)
        first = await sync_to_async(append_elsewhere)(domain, 1)
        await receive_until(ws, lambda text: f'data-position="{first}"' in text, timeout=15)
        committed = time.monotonic()
        second = await sync_to_async(append_elsewhere)(domain, 2)
        html = await receive_until(ws, lambda text: f'data-position="{second}"' in text, timeout=15)
        arrived = time.monotonic() - committed
        await ws.disconnect()
        return html, arrived

    with override_settings(INSPECTOR=inspector):
        html, arrived = async_to_sync(scenario)()
    assert "Ping" in html
    assert arrived < 3.0, f"the second row took {arrived:.2f} s (a poll interval is 5 s)"


def test_the_run_window_sends_each_state_once_and_every_new_one(domain):
    """Read again and again, the window of recent runs yields only the states not yet seen:
    runs whose rows were sent with their message are not sent again, and each run a worker
    finished comes once, with its new state."""
    domain.config["event_processing"] = "async"
    since = timezone.now() - feed.RUN_WINDOW
    with unit_of_work(domain) as uow:
        for n in range(3):
            uow.append(Ping(n=n), stream=f"probe::ping-{n}")
    seen = OrderedDict()
    messages, states = feed.message_items(after=-1)
    assert len(messages) == 3 and len(states) == HandlerRun.objects.count() > 0
    for run_id, state in states.items():
        feed._remember(seen, run_id, state)

    items, cursor = feed.run_items(since=since, seen=seen)
    assert items == []  # pending runs: drawn in their messages' rows already
    assert feed.run_items(since=cursor, seen=seen)[0] == []

    Worker(worker_id="feed-reads").drain()
    items, cursor = feed.run_items(since=cursor, seen=seen)
    runs = HandlerRun.objects.all()
    assert sorted(str(item.message_id) for item in items) == sorted(
        str(run.message_id) for run in runs
    )
    assert all(item.statuses == {"succeeded"} for item in items)
    assert all('hx-swap-oob="outerHTML"' in item.html for item in items)
    assert {item.html.split('"')[1] for item in items} == {f"run-{run.id}" for run in runs}
    assert feed.run_items(since=cursor, seen=seen)[0] == []  # nothing new: nothing again


@watches_commits
def test_the_commit_watch_ends_with_the_hubs_last_client(staff):
    """The thread that looks at data_version runs while the hub has clients, and ends (closing
    its connection) soon after the last one left."""
    before = commit_watches()

    async def scenario():
        ws = await feed_client(application, staff, FEED)
        during = commit_watches() - before
        await ws.disconnect()
        deadline = time.monotonic() + 10
        while commit_watches() & during and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return during, commit_watches() & during

    during, left = async_to_sync(scenario)()
    assert len(during) == 1
    assert left == set()
