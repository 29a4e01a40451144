"""Websocket test helpers shared by the inspector's feed tests and the shop's live tests, and
real servers for the tests that need them: daphne in a subprocess and a websocket client in
a process of its own."""

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time

from django.test import Client

from tests.services import free_port


def session_cookie(user):
    """The Cookie header of a logged-in session of `user`."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def receive_until(ws, predicate, timeout=5.0):
    """Collect frames until predicate(all text so far) holds; return the text."""
    text = ""
    deadline = time.monotonic() + timeout
    while not predicate(text):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out; received so far: {text[-2000:]}")
        try:
            text += await ws.receive_from(timeout=remaining)
        except TimeoutError:
            continue
    return text


async def feed_client(application, cookie, path="/ws/inspector/feed/", **hello):
    """A live feed client of `cookie`'s user: connected, greeted, and told the feed's status."""
    from channels.testing import WebsocketCommunicator

    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver"), (b"cookie", cookie)]
    ws = WebsocketCommunicator(application, path, headers=headers)
    await ws.connect()
    await ws.send_json_to({"action": "hello", "since": None, **hello})
    await receive_until(ws, lambda text: "feed-status" in text)
    return ws


async def drain_frames(ws, quiet=0.5):
    """Everything that arrives until the socket stays quiet for `quiet` seconds."""
    text = ""
    while not await ws.receive_nothing(timeout=quiet):
        text += await ws.receive_from()
    return text


# Real servers: daphne as a subprocess, and a websocket client in a process of its own --------


def wait_for_port(port, *, process, timeout=30.0, log=None):
    """Until something listens on 127.0.0.1:`port`; fails the test if `process` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    process.kill()
    output = log.read_text() if log is not None else ""
    raise AssertionError(f"nothing listened on port {port}:\n{output}")


@contextlib.contextmanager
def daphne(application, *, env, log, cwd):
    """daphne serving `application` in a subprocess; yields (port, process), stops it after."""
    port = free_port()
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), application],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process=server, log=log)
        yield port, server
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


class LiveClient:
    """A websocket client in a child process (autobahn on asyncio: this process's Django set-up
    imported daphne, which pins autobahn's txaio to Twisted). It says hello, then reports every
    frame and how the connection ends; `text` is every frame received so far."""

    def __init__(self, url, *, cookie, origin, cwd):
        self.events = []  # (time.monotonic() of receipt, event dict)
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from tests.sockets import _client; _client()", url, origin],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.process.stdin.write(cookie.decode() + "\n")
        self.process.stdin.flush()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            with self._changed:
                self.events.append((time.monotonic(), json.loads(line)))
                self._changed.notify_all()

    def _of(self, kind):
        with self._changed:
            return [event[kind] for _, event in self.events if kind in event]

    @property
    def text(self):
        return "".join(self._of("frame"))

    @property
    def opened(self):
        return len(self._of("open"))

    @property
    def closes(self):
        return self._of("close")

    def wait_for(self, predicate, timeout=10.0):
        """Until predicate(text) holds; return when (time.monotonic()) the frame that made it
        hold arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                text = ""
                for at, event in self.events:
                    text += event.get("frame", "")
                    if predicate(text):
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; received so far: {text[-2000:]}")
                self._changed.wait(left)

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(10)
        self.process.stdin.close()
        self.process.stdout.close()


def _client():
    """The child process of `LiveClient`: argv is the URL and the origin, stdin the cookie;
    prints one JSON line per event: {"open": ...}, {"frame": text}, {"close": code}."""
    import txaio

    txaio.use_asyncio()
    from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

    url, origin = sys.argv[1:3]
    cookie = sys.stdin.readline().strip()

    def report(**event):
        print(json.dumps(event), flush=True)

    class Client(WebSocketClientProtocol):
        def onOpen(self):
            report(open=True)
            self.sendMessage(json.dumps({"action": "hello", "since": None}).encode())

        def onMessage(self, payload, isBinary):
            report(frame=payload.decode())

        def onClose(self, wasClean, code, reason):
            report(close=code, reason=reason)
            asyncio.get_running_loop().stop()

    async def connect():
        factory = WebSocketClientFactory(url, origin=origin, headers={"Cookie": cookie})
        factory.protocol = Client
        factory.setProtocolOptions(autoPingInterval=0)
        host, port = url.split("/")[2].split(":")
        await asyncio.get_running_loop().create_connection(factory, host, int(port))

    loop = asyncio.new_event_loop()
    loop.run_until_complete(connect())
    loop.run_forever()
