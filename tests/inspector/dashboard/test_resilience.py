"""What a user or an outage can do to the live page: unknown websocket paths, Redis and
PostgreSQL restarting under a live client, a daphne and a worker (real servers, stopped and
started by the tests)."""

import asyncio
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import OperationalError
from django.db.models import Max
from django.test import override_settings

from inspector.dashboard import feed
from inspector.models import Message
from inspector.runtime import signals
from inspector.runtime.unit_of_work import unit_of_work
from tests.asgi import application
from tests.inspector.conftest import subprocess_env
from tests.services import PostgreSQLCluster, free_port, postgresql_binaries
from tests.sockets import (
    LiveClient,
    daphne,
    feed_client,
    receive_until,
    session_cookie,
    wait_for_port,
)
from tests.warehouse.probe import Ping

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]
FEED = "/ws/inspector/feed/"


@pytest.fixture
def staff(django_user_model):
    """The session cookie of a logged-in staff user."""
    user = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    return session_cookie(user)


def has_position(position):
    return lambda text: f'data-position="{position}"' in text


def assert_clean_log(text, *, went_away, back, outages=1):
    """One line says the service went away and one that it is back, for each outage (a
    number, or a range when the process may not have met one); no
    traceback, and none of the warnings psycopg's pool gives of every connection it drops."""
    assert "Traceback" not in text, text
    assert "Exception inside application" not in text, text
    assert not re.search(r"error connecting in|discarding (closed|broken) connection", text), text
    counts = outages if isinstance(outages, range) else range(outages, outages + 1)
    assert len(re.findall(went_away, text)) in counts, text
    assert len(re.findall(back, text)) == len(re.findall(went_away, text)), text


def http_status(port, path, cookie):
    """The status of a GET of `path` on the daphne at `port` with the session `cookie`."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# Unknown websocket paths ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws/nothing/", "/", "/ws/inspector/feed/extra/"])
def test_an_unknown_websocket_path_is_refused_without_an_error(staff, path, caplog):
    async def scenario():
        headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
        ws = WebsocketCommunicator(application, path, headers=[*headers, (b"cookie", staff)])
        connected, _code = await ws.connect()
        await ws.disconnect()
        return connected

    with caplog.at_level(logging.INFO):
        assert async_to_sync(scenario)() is False
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_daphne_refuses_an_unknown_websocket_path_with_403_and_logs_no_error(tmp_path):
    log = tmp_path / "daphne.log"
    env = subprocess_env(INSPECTOR_EMBEDDED_WORKER="0")
    with daphne("tests.asgi:application", env=env, log=log, cwd=ROOT) as (port, _server):
        client = LiveClient(
            f"ws://127.0.0.1:{port}/ws/nothing/",
            cookie=b"",
            origin=f"http://127.0.0.1:{port}",
            cwd=ROOT,
        )
        try:
            client.process.wait(20)  # the handshake failed: the client had nothing to open
        finally:
            client.close()
        assert client.opened == 0 and len(client.closes) == 1
    text = log.read_text()
    assert re.search(r'"GET /ws/nothing/" 403', text) or "WSREJECT /ws/nothing/" in text, text
    assert "Traceback" not in text and " 500 " not in text and "ERROR" not in text, text


# Redis restarting under a live page -----------------------------------------------------------


class RedisServer:
    """A redis-server of the test's own on a fixed free port, stopped and started at will."""

    def __init__(self, folder):
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start_shell(env, code, **streams):
    """`code` running in `manage.py shell` on `env`; its output and errors are piped unless
    `streams` say otherwise (`communicate()` gives them)."""
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **streams}
    return subprocess.Popen(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=env,
        text=True,
        **streams,
    )


WRITER = """
import sys
from django.db.models import Max
from inspector.models import Message
from tests.warehouse.commands import AddBook
from tests.warehouse.domain import domain
for line in sys.stdin:
    domain.process(AddBook(title=line.strip(), author="Writer", price_amount=1))
    print(Message.objects.aggregate(last=Max("global_position"))["last"], flush=True)
"""


class Writer:
    """Another process that adds a book for every `write` (its commits poke the hubs) and
    answers with the last global position of the store."""

    def __init__(self, env, log):
        self.log = log
        with open(log, "w") as out:
            self.process = start_shell(env, WRITER, stdin=subprocess.PIPE, stderr=out)

    def write(self, title):
        self.process.stdin.write(title + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, self.log.read_text()
        return int(line)

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process.stdout.close()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_the_live_page_survives_a_redis_restart_and_is_current_again_at_once(staff, tmp_path):
    redis = RedisServer(tmp_path)
    redis.start()
    # A poll far longer than the test: what arrives came through Redis, or from the store when
    # the hub is back on Redis.
    env = subprocess_env(
        REDIS_URL=redis.url,
        INSPECTOR_REDIS_CHANNELS="1",
        INSPECTOR_EMBEDDED_WORKER="0",
        INSPECTOR_FEED_POLL_INTERVAL="30",
        DJANGO_EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
    )
    log = tmp_path / "daphne.log"
    try:
        with daphne("tests.asgi:application", env=env, log=log, cwd=ROOT) as (port, _server):
            client = LiveClient(
                f"ws://127.0.0.1:{port}{FEED}",
                cookie=staff,
                origin=f"http://127.0.0.1:{port}",
                cwd=ROOT,
            )
            writer = Writer(env, tmp_path / "writer.log")
            try:
                client.wait_for(lambda text: "feed-status" in text)
                time.sleep(0.5)  # the hub has joined the group
                client.wait_for(has_position(writer.write("Before the outage")), timeout=10)

                redis.stop()
                during = [writer.write("During the outage"), writer.write("Still down")]
                time.sleep(1.5)  # the hub and the writer have met the outage
                redis.start()
                back = time.monotonic()
                after = writer.write("After the outage")
                written = time.monotonic()
                arrived = client.wait_for(has_position(after), timeout=10)
                for position in during:
                    client.wait_for(has_position(position), timeout=1)
                time.sleep(0.5)  # anything that was to break has broken
                print(
                    f"after Redis was back: written {written - back:.3f}s later, "
                    f"on the page {arrived - written:.3f}s after its commit"
                )
                assert client.opened == 1 and client.closes == []
                assert arrived - written < 3.0  # about a second on an idle machine
            finally:
                client.close()
                writer.close()
    finally:
        redis.stop()
    assert_clean_log(log.read_text(), went_away=r"Redis went away", back=r"Redis is back")
    assert_clean_log(
        (tmp_path / "writer.log").read_text(), went_away=r"Redis went away", back=r"Redis is back"
    )


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (make test starts Redis)"
)
def test_the_hub_stays_in_its_redis_group_past_the_layers_group_expiry(staff, domain):
    """channels_redis forgets a group's member after `group_expiry`: a hub connected longer
    than that must have joined again, or only polling would bring it news."""
    layer = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]], "group_expiry": 2},
        }
    }
    # A poll far longer than the test: only a poke through Redis wakes the hub in time.
    inspector = {**settings.INSPECTOR, "feed_poll_interval": 60}

    def append_unpoked():
        """A message committed as another process commits it: this process's hubs are not
        woken directly, only through Redis."""
        pokes = {
            "inspector-feed-messages": signals.messages_appended,
            "inspector-feed-runs": signals.runs_changed,
        }
        for uid, signal in pokes.items():
            signal.disconnect(dispatch_uid=uid)
        try:
            with unit_of_work(domain) as uow:
                uow.append(Ping(n=1), stream="probe::ping-1")
        finally:
            for uid, signal in pokes.items():
                signal.connect(feed.poke, dispatch_uid=uid)
        return Message.objects.aggregate(last=Max("global_position"))["last"]

    async def scenario():
        ws = await feed_client(application, staff, FEED)
        await asyncio.sleep(3.2)  # past the group's expiry
        position = await sync_to_async(append_unpoked)()
        await get_channel_layer().group_send(feed.GROUP, {"type": "feed.poke"})
        try:
            # A poke arrives in milliseconds. (channels_redis's receive fails every 5 s here,
            # a Redis read timeout, and the hub joins again and reads after it: not in time.)
            return await receive_until(ws, has_position(position), timeout=1.0)
        finally:
            await ws.disconnect()

    with override_settings(CHANNEL_LAYERS=layer, INSPECTOR=inspector):
        assert "Ping" in async_to_sync(scenario)()


@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="a dropped connection is told by psycopg's errors (SQLite's carry no SQLSTATE)",
)
def test_a_client_starts_and_catches_up_through_reads_that_met_a_dropped_connection(
    staff, domain, monkeypatch
):
    """The hub's first read and a client's catch-up that meet a connection the server
    dropped are read again, not the end of the consumer (its send loop died quietly)."""
    with unit_of_work(domain) as uow:
        for n in range(3):
            uow.append(Ping(n=n), stream=f"probe::ping-{n}")
    last = Message.objects.aggregate(last=Max("global_position"))["last"]
    failures = {"current_position": 2, "message_items": 2}

    def dropped_first(name):
        read = getattr(feed, name)

        def flaky(*args, **kwargs):
            if failures[name]:
                failures[name] -= 1
                error = OperationalError("server closed the connection unexpectedly")
                error.__cause__ = psycopg.OperationalError(str(error))  # no SQLSTATE: cut
                raise error
            return read(*args, **kwargs)

        monkeypatch.setattr(feed, name, flaky)

    for name in failures:
        dropped_first(name)

    async def scenario():
        headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
        ws = WebsocketCommunicator(application, FEED, headers=[*headers, (b"cookie", staff)])
        connected, _ = await ws.connect()
        assert connected
        await ws.send_json_to({"action": "hello", "since": -1})
        try:
            return await receive_until(
                ws, lambda text: has_position(last)(text) and "is-live" in text, timeout=10
            )
        finally:
            await ws.disconnect()

    async_to_sync(scenario)()
    assert failures == {"current_position": 0, "message_items": 0}


# PostgreSQL restarting under a live page and a worker -----------------------------------------


SETUP = """
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
user = get_user_model().objects.create_user("staff", password="x", is_staff=True)
client = Client()
client.force_login(user)
print("sessionid=" + client.cookies["sessionid"].value)
"""


def handled(position, runs):
    """The live page shows the messages up to `position` and `runs` runs of the book's event
    handler that succeeded (a run's badge is sent again whenever its state changes)."""

    def holds(text):
        succeeded = re.findall(
            r'id="(run-[^"]+)"[^>]* class="run-badge status-succeeded"[^>]*>BookEventHandler', text
        )
        return f'data-position="{position}"' in text and len(set(succeeded)) >= runs

    return holds


@pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")),
    reason="brings its own PostgreSQL cluster: runs once, in the SQLite run of the suite",
)
@pytest.mark.skipif(postgresql_binaries() is None, reason="needs the PostgreSQL server binaries")
def test_the_live_page_and_a_worker_survive_a_postgresql_restart(tmp_path):
    """A live page and a worker through a restart; then, on the same cluster, a page right
    after a restart nothing in daphne saw (its pool's idle connections were cut), and a live
    page opened while the database is down: held open, and live once the database is back."""
    cluster = PostgreSQLCluster(["fsync = off"])
    env = dict(
        subprocess_env(
            INSPECTOR_EMBEDDED_WORKER="0",
            INSPECTOR_EVENT_PROCESSING="async",
            # A run the restart cut is a failed attempt, retried after its backoff: short
            # here, so the test waits for the retry and not for the default's doubling.
            INSPECTOR_BACKOFF_BASE="0.2",
            INSPECTOR_BACKOFF_CAP="1",
            DJANGO_EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
        ),
        DATABASE_URL=cluster.url,
    )
    env.pop("INSPECTOR_SQLITE_PATH", None)
    log, worker_log = tmp_path / "daphne.log", tmp_path / "worker.log"
    # What needs no table yet starts while the cluster is made: daphne, and a writer for
    # before the restart and one for after it (each connects when it is first asked to write).
    with ThreadPoolExecutor(1) as background:
        started = background.submit(cluster.start)
        writers = [Writer(env, tmp_path / f"writer-{n}.log") for n in range(3)]
        setup = worker = None
        try:
            with daphne("tests.asgi:application", env=env, log=log, cwd=ROOT) as (port, _server):
                started.result()
                setup = start_shell(env, SETUP)
                output, errors = setup.communicate(timeout=120)
                assert setup.returncode == 0, errors
                with open(worker_log, "w") as out:
                    worker = subprocess.Popen(
                        [sys.executable, "manage.py", "run_handlers"],
                        cwd=ROOT,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                cookie = output.strip()

                def live_client():
                    return LiveClient(
                        f"ws://127.0.0.1:{port}{FEED}",
                        cookie=cookie.encode(),
                        origin=f"http://127.0.0.1:{port}",
                        cwd=ROOT,
                    )

                client = live_client()
                try:
                    client.wait_for(lambda text: "feed-status" in text, timeout=15)
                    first = writers[0].write("Before the restart")
                    client.wait_for(handled(first, runs=1), timeout=15)

                    # Committed as the restart begins: its run may be left to after it.
                    writers[0].write("Just before the restart")
                    cluster.pg_ctl("restart", "-m", "fast")
                    restarted = time.monotonic()
                    after = writers[1].write("After the restart")
                    arrived = client.wait_for(handled(after, runs=3), timeout=30)
                    print(f"handled and on the page {arrived - restarted:.3f}s after the restart")
                    time.sleep(1.0)  # anything that was to break has broken
                    assert client.opened == 1 and client.closes == []
                    assert worker.poll() is None
                finally:
                    client.close()

                # No live page: nothing in daphne reads the store, or meets the restart.
                time.sleep(0.5)
                cluster.pg_ctl("restart", "-m", "fast")
                assert http_status(port, "/inspector/", cookie) == 200

                cluster.pg_ctl("stop", "-m", "fast")
                waiting = live_client()
                try:
                    deadline = time.monotonic() + 15
                    while not waiting.opened and time.monotonic() < deadline:
                        time.sleep(0.1)
                    time.sleep(1.0)  # the handshake met the outage (it would fail by now)
                    assert waiting.opened == 1 and waiting.closes == [] and waiting.text == ""
                    cluster.pg_ctl("start")
                    waiting.wait_for(lambda text: "is-live" in text, timeout=15)
                    last = writers[2].write("After the outage")
                    waiting.wait_for(has_position(last), timeout=15)
                    assert waiting.opened == 1 and waiting.closes == []
                finally:
                    waiting.close()
        finally:
            for writer in writers:
                writer.close()
            if setup is not None and setup.poll() is None:
                setup.kill()
                setup.communicate()
            if worker is not None:
                worker.terminate()
                worker.wait(15)
            started.exception()  # the cluster is made before it is removed
            cluster.remove()
    # The worker met every outage; daphne the first restart (under the live page), not the
    # restart nothing in it saw, and the stop if the page's first read of its session failed
    # before the database was back (rather than waiting for a connection until then).
    for path, outages in ((log, range(1, 3)), (worker_log, 3)):
        assert_clean_log(
            path.read_text(),
            went_away=r"The database went away",
            back=r"The database is back",
            outages=outages,
        )
