"""The live feed over websockets: access, live fragments, catch-up without gaps, run states,
and writes from other processes (polling on the embedded default, Redis pokes in scale-out)."""

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings

from inspector.models import HandlerRun, Message
from inspector.runtime.unit_of_work import unit_of_work
from inspector.workers.worker import Worker
from tests.asgi import application
from tests.processes import on_test_database
from tests.sockets import drain_frames, receive_until, session_cookie
from tests.threads import run_in_thread
from tests.warehouse.probe import Ping

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]
PATH = "/ws/inspector/feed/"


def communicator(cookie=None, origin=b"http://testserver"):
    headers = [(b"origin", origin), (b"host", b"testserver")]
    if cookie is not None:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, PATH, headers=headers)


def positions(html):
    return [
        int(p)
        for p in re.findall(r'class="feed-row[^"]*" id="msg-[^"]+" data-position="(\d+)"', html)
    ]


def append_pings(domain, count, *, category="probe::ping", start=0):
    with unit_of_work(domain) as uow:
        for n in range(start, start + count):
            uow.append(Ping(n=n), stream=f"{category}-{n}")


@pytest.fixture
def staff(django_user_model):
    """The session cookie of a logged-in staff user."""
    user = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    return session_cookie(user)


def test_anonymous_and_non_staff_are_refused_with_4403(django_user_model):
    customer = session_cookie(django_user_model.objects.create_user("customer", password="x"))

    async def scenario():
        for user in (None, customer):
            ws = communicator(user)
            connected, code = await ws.connect()
            assert not connected
            assert code == 4403
            await ws.disconnect()

    async_to_sync(scenario)()


def test_foreign_origins_are_refused(staff):
    async def scenario():
        ws = communicator(staff, origin=b"http://evil.example")
        connected, _ = await ws.connect()
        assert not connected
        await ws.disconnect()

    async_to_sync(scenario)()


def test_a_fragment_arrives_after_an_append_from_another_thread(staff, domain):
    async def scenario():
        ws = communicator(staff)
        connected, _ = await ws.connect()
        assert connected
        await ws.send_json_to({"action": "hello", "since": None})
        await receive_until(ws, lambda t: "feed-status" in t)
        thread = run_in_thread(lambda: append_pings(domain, 1))
        html = await receive_until(ws, lambda t: "data-position" in t)
        thread.join()
        assert 'hx-swap-oob="afterbegin:#feed-rows"' in html
        assert "Ping" in html and "probe::ping-0" in html
        assert "RecorderA" in html and "RecorderB" in html  # a badge per handler run
        await ws.disconnect()

    async_to_sync(scenario)()


def test_reconnect_with_a_position_receives_the_missed_messages_in_order_once(staff, domain):
    append_pings(domain, 5)
    seen = Message.objects.order_by("global_position").last().global_position
    append_pings(domain, 50, start=5)  # missed while disconnected

    async def scenario():
        ws = communicator(staff)
        await ws.connect()
        await ws.send_json_to({"action": "hello", "since": seen})
        html = await receive_until(ws, lambda t: len(positions(t)) >= 50)
        thread = run_in_thread(lambda: append_pings(domain, 1, start=55))
        html += await receive_until(ws, lambda t: len(positions(t)) >= 1)
        thread.join()
        html += await drain_frames(ws)  # run badges may follow; no message row may repeat
        await ws.disconnect()
        return html

    html = async_to_sync(scenario)()
    got = positions(html)
    assert got == list(range(seen + 1, seen + 52))  # 50 missed, then 1 live; no gaps, no repeats


def test_filters_are_applied_on_the_server_per_connection(staff, domain):
    async def scenario():
        ws = communicator(staff)
        await ws.connect()
        await ws.send_json_to({"action": "hello", "since": None, "category": "probe::flaky"})
        await receive_until(ws, lambda t: "feed-status" in t)
        thread = run_in_thread(
            lambda: (append_pings(domain, 2), append_pings(domain, 1, category="probe::flaky"))
        )
        html = await receive_until(ws, lambda t: "data-position" in t)
        thread.join()
        html += await drain_frames(ws)
        await ws.disconnect()
        return html

    html = async_to_sync(scenario)()
    assert "probe::flaky-0" in html
    assert "probe::ping" not in html


def test_run_state_changes_arrive(staff, domain):
    domain.config["event_processing"] = "async"

    async def scenario():
        ws = communicator(staff)
        await ws.connect()
        await ws.send_json_to({"action": "hello", "since": None})
        await receive_until(ws, lambda t: "feed-status" in t)
        thread = run_in_thread(lambda: append_pings(domain, 1))
        html = await receive_until(ws, lambda t: "data-position" in t)
        thread.join()
        assert html.count("status-pending") == 2
        thread = run_in_thread(lambda: Worker(worker_id="feed-test").drain())
        html = await receive_until(ws, lambda t: t.count("status-succeeded") >= 2)
        thread.join()
        assert html.count('hx-swap-oob="outerHTML"') >= 2  # badges replaced in place
        await ws.disconnect()

    async_to_sync(scenario)()


def test_a_paused_client_receives_nothing_then_catches_up_on_resume(staff, domain):
    async def scenario():
        ws = communicator(staff)
        await ws.connect()
        await ws.send_json_to({"action": "hello", "since": None})
        await receive_until(ws, lambda t: "feed-status" in t)
        await ws.send_json_to({"action": "pause"})
        await asyncio.sleep(0.1)
        thread = run_in_thread(lambda: append_pings(domain, 3))
        thread.join()
        assert await ws.receive_nothing(timeout=0.6)
        await ws.send_json_to({"action": "resume"})
        html = await receive_until(ws, lambda t: len(positions(t)) >= 3)
        await ws.disconnect()
        return html

    html = async_to_sync(scenario)()
    assert len(positions(html)) == 3


def test_a_slow_client_overflows_its_buffer_and_is_told_to_catch_up(staff, domain):
    with override_settings(INSPECTOR={**settings.INSPECTOR, "feed_buffer": 5}):

        async def scenario():
            ws = communicator(staff)
            await ws.connect()
            await ws.send_json_to({"action": "hello", "since": None})
            await receive_until(ws, lambda t: "feed-status" in t)
            thread = run_in_thread(lambda: append_pings(domain, 40))
            thread.join()
            html = await receive_until(ws, lambda t: len(positions(t)) >= 40, timeout=10)
            await ws.disconnect()
            return html

        html = async_to_sync(scenario)()
    assert "caught up from the store" in html
    got = positions(html)
    assert got == sorted(set(got)) and len(got) == 40


def _write_from_another_process(extra_env):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", **extra_env)
    env["INSPECTOR_EMBEDDED_WORKER"] = "0"
    env["DJANGO_EMAIL_BACKEND"] = "django.core.mail.backends.dummy.EmailBackend"
    on_test_database(env)
    code = (
        "from tests.warehouse.domain import domain; from tests.warehouse.commands import AddBook; "
        "domain.process(AddBook(title='From another process', author='X', price_amount=1))"
    )
    return subprocess.Popen([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env)


def test_writes_from_another_process_reach_the_embedded_default_by_polling(staff):
    async def scenario():
        ws = communicator(staff)
        await ws.connect()
        await ws.send_json_to({"action": "hello", "since": None})
        await receive_until(ws, lambda t: "feed-status" in t)
        process = _write_from_another_process({"REDIS_URL": ""})
        html = await receive_until(ws, lambda t: "BookAdded" in t, timeout=30)
        assert process.wait(30) == 0
        await ws.disconnect()
        return html

    html = async_to_sync(scenario)()
    assert "AddBook" in html and "BookCommandHandler" in html


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (make test starts Redis)"
)
def test_writes_from_another_process_are_carried_by_redis_between_processes(staff):
    redis_layer = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]]},
        }
    }
    # A poll interval far longer than the test: only a Redis poke can deliver in time.
    inspector = {**settings.INSPECTOR, "feed_poll_interval": 60}
    with override_settings(CHANNEL_LAYERS=redis_layer, INSPECTOR=inspector):

        async def scenario():
            ws = communicator(staff)
            await ws.connect()
            await ws.send_json_to({"action": "hello", "since": None})
            await receive_until(ws, lambda t: "feed-status" in t)
            await asyncio.sleep(0.5)  # the hub has joined the group
            started = time.monotonic()
            process = _write_from_another_process(
                {"REDIS_URL": os.environ["REDIS_URL"], "INSPECTOR_REDIS_CHANNELS": "1"}
            )
            html = await receive_until(ws, lambda t: "BookAdded" in t, timeout=30)
            elapsed = time.monotonic() - started
            assert process.wait(30) == 0
            await ws.disconnect()
            return html, elapsed

        html, elapsed = async_to_sync(scenario)()
    assert "AddBook" in html
    assert elapsed < 30


def _badges(html):
    """The run ids whose badges `html` swaps in place (out of band), not those inside rows."""
    return set(re.findall(r'<a id="run-([0-9a-f-]+)" hx-swap-oob="outerHTML"', html))


def _run_ids(position):
    return {
        str(run_id)
        for run_id in HandlerRun.objects.filter(global_position=position).values_list(
            "id", flat=True
        )
    }


def test_run_badges_come_only_for_the_rows_the_client_shows(staff, domain):
    """A badge for a row that is not on the page is an htmx error in the browser console."""
    domain.config["event_processing"] = "async"
    append_pings(domain, 2)  # two rows, their runs pending; the page shows only the first
    shown, hidden = Message.objects.order_by("global_position").values_list(
        "global_position", flat=True
    )

    async def scenario():
        ws = communicator(staff)
        await ws.connect()
        await ws.send_json_to({"action": "hello", "since": hidden, "rows": [shown], "keep": 500})
        await receive_until(ws, lambda t: "feed-status" in t)
        thread = run_in_thread(lambda: Worker(worker_id="feed-test").drain())
        html = await receive_until(ws, lambda t: len(_badges(t)) >= 2 and "succeeded" in t)
        thread.join()
        html += await drain_frames(ws)
        await ws.disconnect()
        return html

    html = async_to_sync(scenario)()
    assert _badges(html) == _run_ids(shown)
    assert HandlerRun.objects.filter(global_position=hidden, status="succeeded").count() == 2


def test_rows_the_client_trimmed_get_no_more_badges(staff, domain):
    """The client keeps its newest `keep` rows; a row pushed out by a new one is gone."""
    domain.config["event_processing"] = "async"
    append_pings(domain, 1)
    old = Message.objects.get().global_position

    async def scenario():
        ws = communicator(staff)
        await ws.connect()
        await ws.send_json_to({"action": "hello", "since": old, "rows": [old], "keep": 1})
        await receive_until(ws, lambda t: "feed-status" in t)
        thread = run_in_thread(lambda: append_pings(domain, 1, start=1))
        html = await receive_until(ws, lambda t: len(positions(t)) >= 1)
        thread.join()
        thread = run_in_thread(lambda: Worker(worker_id="feed-test").drain())
        html += await receive_until(ws, lambda t: len(_badges(t)) >= 2)
        thread.join()
        html += await drain_frames(ws)
        await ws.disconnect()
        return html

    html = async_to_sync(scenario)()
    (new,) = positions(html)
    assert new > old
    assert _badges(html) == _run_ids(new)
    assert HandlerRun.objects.filter(global_position=old, status="succeeded").count() == 2


def test_junk_in_the_hello_is_ignored(staff, domain):
    async def scenario():
        ws = communicator(staff)
        await ws.connect()
        await ws.send_json_to(
            {"action": "hello", "since": None, "rows": [True, "1", None, {"x": 1}], "keep": "all"}
        )
        await receive_until(ws, lambda t: "feed-status" in t)
        thread = run_in_thread(lambda: append_pings(domain, 1))
        html = await receive_until(ws, lambda t: "data-position" in t)
        thread.join()
        await ws.disconnect()
        return html

    assert len(positions(async_to_sync(scenario)())) == 1
