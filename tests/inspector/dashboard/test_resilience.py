"""What a user or an outage can do to the live page: unknown websocket paths, Redis and
PostgreSQL restarting under a live client, a daphne and a worker (real servers, stopped and
started by the tests)."""

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from tests.asgi import application
from tests.inspector.conftest import subprocess_env
from tests.sockets import LiveClient, daphne, free_port, session_cookie, wait_for_port

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


def assert_clean_log(text, *, went_away, back):
    """One line says the service went away and one that it is back; no traceback."""
    assert "Traceback" not in text, text
    assert "Exception inside application" not in text, text
    assert len(re.findall(went_away, text)) == 1, text
    assert len(re.findall(back, text)) == 1, text


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
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "shell", "--no-imports", "-c", WRITER],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=out,
                text=True,
            )

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


# PostgreSQL restarting under a live page and a worker -----------------------------------------


def postgresql_binaries():
    """The newest Debian server binaries (as scripts/test-all finds them), else None."""
    found = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "pg_ctl").exists()]
    return max(found, key=lambda d: int(d.parent.name)) if found else None


class PostgreSQLCluster:
    """A throwaway cluster of the test's own in a folder of its own under the system's
    temporary folder (run as `postgres` when the tests run as root: PostgreSQL refuses root,
    and `postgres` cannot enter pytest's folders), restarted at will."""

    def __init__(self):
        folder = self.folder = Path(tempfile.mkdtemp(prefix="inspector-pg."))
        self.port = free_port()
        self.data = folder / "pgdata"
        self.prefix = []
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres")
            folder.chmod(0o700)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, tool, *args):
        command = [*self.prefix, str(postgresql_binaries() / tool), *map(str, args)]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self):
        self.run(
            "initdb", "-D", self.data, "-N", "--auth=trust", "-U", "postgres", "--locale=C.UTF-8"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.folder}'\nfsync = off\n"
            )
        self.pg_ctl("start")

    def pg_ctl(self, *args):
        log = self.folder / "postgres.log"
        self.run("pg_ctl", "-D", self.data, "-l", log, "-w", "-t", "30", *args)

    def remove(self):
        if (self.data / "postmaster.pid").exists():
            self.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


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


def start_shell(env, code):
    """`code` running in `manage.py shell` on `env`; `communicate()` gives its output."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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
    cluster = PostgreSQLCluster()
    env = dict(
        subprocess_env(
            INSPECTOR_EMBEDDED_WORKER="0",
            INSPECTOR_EVENT_PROCESSING="async",
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
        writers = [Writer(env, tmp_path / f"writer-{n}.log") for n in range(2)]
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
                client = LiveClient(
                    f"ws://127.0.0.1:{port}{FEED}",
                    cookie=output.strip().encode(),
                    origin=f"http://127.0.0.1:{port}",
                    cwd=ROOT,
                )
                try:
                    client.wait_for(lambda text: "feed-status" in text, timeout=15)
                    first = writers[0].write("Before the restart")
                    client.wait_for(handled(first, runs=1), timeout=15)

                    # Committed as the restart begins: its run may be left to after it.
                    writers[0].write("Just before the restart")
                    cluster.pg_ctl("restart", "-m", "fast")
                    restarted = time.monotonic()
                    after = writers[1].write("After the restart")
                    arrived = client.wait_for(handled(after, runs=3), timeout=15)
                    print(f"handled and on the page {arrived - restarted:.3f}s after the restart")
                    time.sleep(1.0)  # anything that was to break has broken
                    assert client.opened == 1 and client.closes == []
                    assert worker.poll() is None
                finally:
                    client.close()
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
    for path in (log, worker_log):
        assert_clean_log(
            path.read_text(), went_away=r"The database went away", back=r"The database is back"
        )
