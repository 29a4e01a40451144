"""The live feed under load: websocket clients on daphne, another process appending 100 events/s.

Starts daphne (`tests.asgi:application`, no embedded worker, DEBUG off) on a fresh SQLite
file, logs `--clients` websocket clients in with a staff session written by this process, has
each say hello, then runs a separate appender process that appends one probe `Ping` event per
transaction at `--rate` events/s for `--duration` seconds in async mode (no handler runs; each
event gets its two pending runs, as in production). Every client records when each message row
(`data-position="<global position>"`) arrives; latency is that receipt time minus the
message's stored `time`, on the same machine clock, split at the moment the appender's commit
returned. Prints one figure a line per mode, each p95 beside issue 14's target: 50 ms embedded
at 50 clients, 60 ms on Redis at 300 clients (`--clients` defaults to the mode's own), and
the CPU daphne and the clients' process spent per websocket message, which on a shared
machine says more than the latency.

Modes: `embedded` is the default deployment, the in-memory channel layer: daphne's hub sees the
other process's appends by looking at SQLite's `data_version` (every 10 ms) and reading when it
changed. `redis` puts daphne and the appender on the Redis channel layer (`REDIS_URL`, else a
throwaway `redis-server` on 127.0.0.1, stopped at exit), so the appender's commit also pokes
the hub. `--mode both` (the default) runs each mode in a child process, since Django is set up
once per process. `tests.settings` (the warehouse test app, whose probe declares `Ping`) pins
the in-memory layer, so the redis mode and `--poll-interval` run daphne and the appender on a
settings module written to the temporary folder: tests.settings plus the Redis layer or the
interval. `--py-spy FILE` samples daphne while the events are appended and prints its hottest
frames.

The clients are autobahn's asyncio client (daphne depends on autobahn), in a process of their
own: Django's set-up imports daphne, which binds autobahn to Twisted in that process.
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import (  # noqa: E402
    machine_busy_s,
    own_cpu_s,
    percentile,
    process_cpu_s,
    ratio,
    scratch_database,
    throwaway_cluster,
)

from tests.services import free_port  # noqa: E402

# Issue 14: p95 target ms and the clients it is measured with, per mode.
TARGETS = {"embedded": (50, 50), "redis": (60, 300)}
FEED_PATH = "/ws/inspector/feed/"
LINE_NUMBER = re.compile(r":\d+\)$")  # py-spy's "function (file:line)" frames, by function
POSITION = re.compile(r'class="feed-row[^"]*" id="msg-[^"]+" data-position="(\d+)"')
SETTINGS = '''"""live_latency: tests.settings with the bench's changes."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSPECTOR

if os.environ.get("REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]]},
        }
    }
if os.environ.get("LIVE_LATENCY_POLL"):
    INSPECTOR = {**INSPECTOR, "feed_poll_interval": float(os.environ["LIVE_LATENCY_POLL"])}
'''
MODES = {
    "embedded": "in-memory channel layer; daphne's hub watches SQLite's data_version for other"
    " processes' commits",
    "redis": "Redis channel layer; the appender's commits poke daphne's hub",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["embedded", "redis", "both"], default="both")
    parser.add_argument(
        "--redis", dest="mode", action="store_const", const="redis", help="Same as --mode redis."
    )
    parser.add_argument(
        "--clients",
        type=int,
        help="Websocket clients (default: the target's, 50 embedded and 300 on Redis).",
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: a scratch database on DATABASE_URL's server (a throwaway cluster when "
        "it is unset) instead of the SQLite file; with Redis, the scale-out deployment. On "
        "PostgreSQL the hub has no commit marker to watch: pokes and its poll tell it.",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="Appended events/s.")
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds of appends.")
    parser.add_argument("--streams", type=int, default=100, help="Streams the events spread on.")
    parser.add_argument(
        "--settle", type=float, default=10.0, help="Max seconds to wait for the last deliveries."
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        help="The hub's feed_poll_interval in seconds (default: the project's, 0.05).",
    )
    parser.add_argument(
        "--profile-daphne",
        metavar="FILE",
        help="Run daphne under cProfile and print where its time went (slows it down).",
    )
    parser.add_argument(
        "--py-spy",
        metavar="FILE",
        help="Sample daphne with py-spy while the events are appended (FILE.<mode>, collapsed"
        " stacks) and print the frames that take the most of its samples.",
    )
    # The two helper processes run this file too.
    parser.add_argument("--append", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clients-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cookie", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def log(text):
    print(f"live_latency: {text}", file=sys.stderr, flush=True)


def wait_for_port(port, *, process, timeout, what, log_path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = Path(log_path).read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def stop(process, timeout=15.0):
    """SIGTERM a child we started, then SIGKILL if it does not go."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# Services ----------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(folder):
    """REDIS_URL when set, else a throwaway redis-server on 127.0.0.1: yields (url, where, pid)."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url, "REDIS_URL", None
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("live_latency: set REDIS_URL or install redis-server")
    port = free_port()
    log_path = Path(folder) / "redis.log"
    with log_path.open("wb") as handle:
        process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly"]
            + ["no", "--dir", str(folder)],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process=process, timeout=30, what="redis-server", log_path=log_path)
        log(f"redis-server on 127.0.0.1:{port}")
        yield f"redis://127.0.0.1:{port}/0", "throwaway redis-server", process.pid
    finally:
        stop(process)


@contextlib.contextmanager
def daphne(env, folder, profile=None):
    """daphne serving tests.asgi on a free port; yields (port, pid)."""
    port = free_port()
    log_path = Path(folder) / "daphne.log"
    with log_path.open("wb") as handle:
        cmd = [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else [])]
        cmd += ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        process = subprocess.Popen(
            [*cmd, "tests.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process=process, timeout=60, what="daphne", log_path=log_path)
        yield port, process.pid
    finally:
        stop(process)
        errors = [
            line
            for line in log_path.read_text(errors="replace").splitlines()
            if "Traceback" in line or " ERROR " in line
        ]
        if errors:
            log(f"daphne logged {len(errors)} errors, first: {errors[0]} (log: {log_path})")


def staff_session():
    """A staff user and a logged-in session in the bench database; returns the session key."""
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.create_user("bench-staff", is_staff=True)
    session = SessionStore()
    session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


# Websocket clients (a separate process) ------------------------------------------------------
# Django's set-up imports daphne, which pins autobahn's txaio to Twisted; the clients use
# autobahn on asyncio, so they live in a process of their own that never imports Django.


def make_client_class():
    import txaio

    txaio.use_asyncio()
    from autobahn.asyncio.websocket import WebSocketClientProtocol

    class FeedClient(WebSocketClientProtocol):
        """Says hello, then notes when each message row arrives (first receipt wins)."""

        def __init__(self):
            super().__init__()
            loop = asyncio.get_running_loop()
            self.live = loop.create_future()  # the "live" status fragment arrived
            self.closed = loop.create_future()
            self.received = {}  # global position -> receipt time (time.time())
            self.duplicates = 0
            self.frames = 0  # websocket messages that brought at least one row

        def onOpen(self):
            self.sendMessage(json.dumps({"action": "hello", "since": None}).encode())

        def onMessage(self, payload, isBinary):
            now = time.time()
            text = payload.decode("utf-8", "replace")
            found = POSITION.findall(text)
            self.frames += bool(found)
            for position in found:
                position = int(position)
                if position in self.received:
                    self.duplicates += 1
                else:
                    self.received[position] = now
            if not self.live.done() and "feed-status" in text:
                self.live.set_result(now)

        def onClose(self, wasClean, code, reason):
            for future in (self.live, self.closed):
                if not future.done():
                    future.set_result(code)

    return FeedClient


def run_clients(args):
    """Connect, say hello, report; read the appended positions; report what arrived when."""
    asyncio.run(_clients(args))


async def _clients(args):
    make_client = make_client_class()
    from autobahn.asyncio.websocket import WebSocketClientFactory

    factory = WebSocketClientFactory(
        f"ws://127.0.0.1:{args.port}{FEED_PATH}",
        origin=f"http://127.0.0.1:{args.port}",
        headers={"Cookie": args.cookie},
    )
    factory.protocol = make_client
    # Keep the clients' own CPU low: no pure-Python UTF-8 checks, no pings of their own.
    factory.setProtocolOptions(utf8validateIncoming=False, autoPingInterval=0, tcpNoDelay=True)
    loop = asyncio.get_running_loop()
    clients = []
    for _ in range(args.clients):
        with contextlib.suppress(OSError):
            _, client = await loop.create_connection(factory, "127.0.0.1", args.port)
            clients.append(client)
    if clients:
        await asyncio.wait([c.live for c in clients], timeout=30)
    live = [c for c in clients if c.live.done() and isinstance(c.live.result(), float)]
    print(json.dumps({"connected": len(clients), "live": len(live)}), flush=True)
    cpu_live = own_cpu_s()

    line = await loop.run_in_executor(None, sys.stdin.readline)  # the appender has finished
    wanted = set(json.loads(line)["positions"]) if line.strip() else set()
    deadline = time.monotonic() + args.settle
    while time.monotonic() < deadline and not all(wanted <= c.received.keys() for c in live):
        await asyncio.sleep(0.05)
    for client in clients:
        if not client.closed.done():
            client.sendClose(1000)
    if clients:
        await asyncio.wait([c.closed for c in clients], timeout=10)
    result = {
        "received": [[[p, t] for p, t in c.received.items() if p in wanted] for c in live],
        "duplicates": sum(c.duplicates for c in live),
        "frames": sum(c.frames for c in live),
        "clients_cpu_s": own_cpu_s() - cpu_live,
    }
    print(json.dumps(result), flush=True)


# The appender (a separate process) ----------------------------------------------------------


def run_appender(args):
    """Append Ping events one per transaction on a fixed schedule; print a JSON summary."""
    import logging

    import django

    django.setup()
    logging.getLogger("inspector").setLevel(logging.WARNING)
    from inspector.runtime.unit_of_work import unit_of_work
    from tests.warehouse.domain import domain
    from tests.warehouse.probe import Ping

    domain.config["event_processing"] = "async"  # runs are created pending; none execute
    count = max(1, round(args.rate * args.duration))
    interval = 1.0 / args.rate
    positions, committed, late = [], [], 0
    started = time.monotonic()
    for n in range(count):
        due = started + n * interval
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        elif -wait > interval:
            late += 1
        with unit_of_work(domain) as uow:
            entry = uow.append(Ping(n=n), stream=f"probe::ping-{n % args.streams}")
        committed.append(time.time())  # the unit of work has committed, and poked
        positions.append(entry.row.global_position)
    elapsed = time.monotonic() - started
    summary = {"positions": positions, "committed": committed, "elapsed": elapsed, "late": late}
    print(json.dumps({**summary, "cpu_s": own_cpu_s()}), flush=True)


# One mode ----------------------------------------------------------------------------------


def bench_env(extra):
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",  # the warehouse's probe declares Ping
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=env.get("DJANGO_SECRET_KEY") or "bench-only-secret",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
        INSPECTOR_EMBEDDED_WORKER="0",
        PYTHONUNBUFFERED="1",
    )
    env.pop("DATABASE_URL", None)  # the embedded default: an SQLite file
    env.update(extra)
    return env


def run_mode(args, mode):
    args.clients = args.clients or TARGETS[mode][1]
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="live-latency."))
        extra = {"INSPECTOR_SQLITE_PATH": str(Path(folder) / "bench.sqlite3"), "REDIS_URL": ""}
        where, servers = "", []
        database = "fresh SQLite file, WAL"
        if args.database == "postgres":
            server = os.environ.get("DATABASE_URL")
            database = "PostgreSQL, scratch database on DATABASE_URL's server"
            if not server:
                server, database, postmaster = stack.enter_context(throwaway_cluster())
                servers.append(postmaster)
                database = f"PostgreSQL, {database}"
            extra["DATABASE_URL"] = stack.enter_context(
                scratch_database(server, prefix="live_latency")
            )
        if mode == "redis":
            url, where, redis_pid = stack.enter_context(redis_server(folder))
            extra["REDIS_URL"] = url
            servers.append(redis_pid)
        if mode == "redis" or args.poll_interval:
            # tests.settings pins the in-memory layer: both processes get a module that
            # adds the Redis layer or the poll interval.
            (Path(folder) / "live_latency_settings.py").write_text(SETTINGS)
            extra.update(
                DJANGO_SETTINGS_MODULE="live_latency_settings",
                LIVE_LATENCY_POLL=str(args.poll_interval or ""),
                PYTHONPATH=os.pathsep.join([folder, str(ROOT), os.environ.get("PYTHONPATH", "")]),
            )
            sys.path.insert(0, folder)
        env = bench_env(extra)
        os.environ.clear()
        os.environ.update(env)

        import logging

        import django

        django.setup()
        logging.getLogger("inspector").setLevel(logging.WARNING)
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connections

        stack.callback(connections.close_all)
        call_command("migrate", verbosity=0)
        session_key = staff_session()
        layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
        profile = args.profile_daphne and str(Path(args.profile_daphne).resolve()) + f".{mode}"
        port, daphne_pid = stack.enter_context(daphne(env, folder, profile))
        servers.append(daphne_pid)

        print(f"mode: {mode} ({MODES[mode]})")
        print(f"channel layer: {layer}" + (f" ({where})" if where else ""))
        from inspector import conf

        poll = conf.setting("feed_poll_interval")
        print(f"hub poll interval s: {poll:g}" + ("" if args.poll_interval else " (default)"))
        print(f"database: {database}")
        print(f"load average before (1 min, {os.cpu_count()} CPUs): {os.getloadavg()[0]:.2f}")
        cpu = cpu_counters(servers)
        started = time.monotonic()
        spy = args.py_spy and str(Path(args.py_spy).resolve()) + f".{mode}"
        result = measure(
            args, env, port, f"{settings.SESSION_COOKIE_NAME}={session_key}", (spy, daphne_pid)
        )
        report(args, result)
        report_cpu(cpu, cpu_counters(servers), time.monotonic() - started)
        print(f"load average after (1 min): {os.getloadavg()[0]:.2f}")
        sys.stdout.flush()
    if profile:
        print_profile(profile)
    if spy:
        print_samples(spy)


def cpu_counters(pids):
    """(machine, this benchmark's) CPU seconds so far; its servers count as its own."""
    return machine_busy_s(), own_cpu_s() + sum(process_cpu_s(pid) for pid in pids if pid)


def report_cpu(before, after, wall):
    """How busy the machine was, and how much of that was someone else's work."""
    machine, ours = ((a - b) / wall for a, b in zip(after, before, strict=True))
    print(
        f"CPU busy during the run, cores of {os.cpu_count()}: all {machine:.2f},"
        f" this benchmark {ours:.2f}, other processes {max(0.0, machine - ours):.2f}"
    )


def print_profile(path):
    """The live feed's share of daphne's time, from the cProfile file daphne wrote at exit."""
    import io
    import pstats

    if not Path(path).exists():
        log(f"daphne wrote no profile to {path}")
        return
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out).sort_stats("cumulative")
    stats.print_stats(r"inspector/(feed|consumers)\.py|template/backends|channels/generic", 25)
    print(f"daphne profile ({path}):")
    for line in out.getvalue().splitlines():
        if "/" in line or "ncalls" in line:
            print(f"  {line.strip()}")


@contextlib.contextmanager
def sampled(path, pid):
    """py-spy recording `pid` (collapsed stacks to `path`) for the duration of the block."""
    if not path:
        yield
        return
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    spy = subprocess.Popen(
        [binary, "record", "--pid", str(pid), "--format", "raw", "--rate", "200"]
        + ["--output", path, "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()


def print_samples(path, top=25):
    """The frames in the most of daphne's samples (inclusive), and the most-sampled leaves."""
    if not Path(path).exists():
        log(f"py-spy wrote nothing to {path}")
        return
    inclusive, leaves, total = {}, {}, 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        count = int(count)
        total += count
        frames = [LINE_NUMBER.sub(")", frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        leaves[frames[-1]] = leaves.get(frames[-1], 0) + count
    print(f"daphne samples (py-spy, {path}): {total}")
    for title, counts in (("inclusive", inclusive), ("leaf", leaves)):
        print(f"  top {title}:")
        for frame, count in sorted(counts.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {100 * count / total:5.1f} %  {frame}")


def measure(args, env, port, cookie, spy=(None, None)):
    """Clients connect and go live, the appender runs, then the clients report receipts."""
    cmd = [sys.executable, __file__, "--clients-process", "--port", str(port), "--cookie", cookie]
    cmd += ["--clients", str(args.clients), "--settle", str(args.settle)]
    clients = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        connected = json.loads(clients.stdout.readline())
        time.sleep(0.5)  # every client's hello is in; the hub is following the store
        daphne_cpu = process_cpu_s(spy[1])
        cmd = [sys.executable, __file__, "--append", "--rate", str(args.rate)]
        cmd += ["--duration", str(args.duration), "--streams", str(args.streams)]
        with sampled(*spy):
            appender = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        if appender.returncode != 0:
            raise RuntimeError(f"the appender exited with {appender.returncode}")
        summary = json.loads(appender.stdout.strip().splitlines()[-1])
        clients.stdin.write(json.dumps({"positions": summary["positions"]}) + "\n")
        clients.stdin.flush()
        received = json.loads(clients.stdout.readline())
        daphne_cpu = process_cpu_s(spy[1]) - daphne_cpu
        clients.wait(30)
    finally:
        stop(clients)
    return {**connected, **received, "summary": summary, "daphne_cpu_s": daphne_cpu}


def report(args, result):
    from inspector.models import Message

    summary = result["summary"]
    wanted = summary["positions"]
    appended = len(wanted)
    stored = {
        position: moment.timestamp()
        for position, moment in Message.objects.filter(global_position__in=wanted).values_list(
            "global_position", "time"
        )
    }
    committed = dict(zip(wanted, summary["committed"], strict=True))
    latencies, after_commit, delivered = [], [], []
    for pairs in result["received"]:
        delivered.append(len(pairs))
        latencies.extend((received - stored[position]) * 1000 for position, received in pairs)
        after_commit.extend((received - committed[p]) * 1000 for p, received in pairs)
    latencies.sort()
    after_commit.sort()
    commits = sorted((committed[p] - stored[p]) * 1000 for p in wanted)
    rate = appended / summary["elapsed"]
    print(
        f"clients connected and live: {result['live']}/{args.clients}"
        f" (TCP connections: {result['connected']})"
    )
    print(
        f"appended events/s (one per transaction, another process): {rate:.1f}"
        f" | offered {args.rate:.0f}: {ratio(rate, args.rate)}"
        f" ({appended} events in {summary['elapsed']:.1f} s,"
        f" {summary['late']} appends late by more than one interval)"
    )
    everything = result["live"] == args.clients and min(delivered, default=0) == appended
    print(
        f"messages delivered per client: min {min(delivered, default=0)},"
        f" max {max(delivered, default=0)} of {appended} appended"
        f" | every client got every message: {'yes' if everything else 'NO'}"
    )
    print(f"duplicate message rows received: {result['duplicates']}")
    if not latencies:
        print("append→receipt latency: no samples")
        return
    print(f"latency samples (clients × messages): {len(latencies)}")
    target, at_clients = TARGETS[args.mode]
    for name, p in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        value = percentile(latencies, p)
        beside = ""
        if name == "p95":
            beside = f" | target ≤ {target} at {at_clients} clients: {ratio(value, target)}"
            if args.clients != at_clients:
                beside += f" (this run: {args.clients} clients)"
        print(f"append→receipt latency {name} ms: {value:.1f}{beside}")
    print(f"append→receipt latency max ms: {latencies[-1]:.1f}")
    print(
        "of which the appender's commit (stored time → commit returned) p50 / p95 ms:"
        f" {percentile(commits, 0.5):.1f} / {percentile(commits, 0.95):.1f};"
        " commit → receipt p50 / p95 ms:"
        f" {percentile(after_commit, 0.5):.1f} / {percentile(after_commit, 0.95):.1f}"
    )
    frames, rows = result["frames"], len(latencies)
    print(
        f"websocket messages with rows: {frames} ({rows / max(frames, 1):.1f} rows each,"
        f" {frames / max(len(delivered), 1) / summary['elapsed']:.1f} a second per client)"
    )
    daphne_cpu, clients_cpu = result["daphne_cpu_s"], result["clients_cpu_s"]
    print(
        f"CPU s while appending: daphne {daphne_cpu:.1f}, the clients' process {clients_cpu:.1f},"
        f" the appender {summary['cpu_s']:.1f}"
    )
    print(
        f"daphne CPU µs per websocket message: {1e6 * daphne_cpu / max(frames, 1):.0f},"
        f" per row delivered: {1e6 * daphne_cpu / rows:.1f}; clients' CPU µs per message:"
        f" {1e6 * clients_cpu / max(frames, 1):.0f}"
    )


def main():
    args = parse_args()
    if args.append:
        run_appender(args)
        return
    if args.clients_process:
        run_clients(args)
        return
    # SIGTERM unwinds like Ctrl-C, so daphne, the appender and redis-server are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.mode != "both":
        run_mode(args, args.mode)
        return
    status = 0
    for mode in ("embedded", "redis"):
        argv = [a for a in sys.argv[1:] if a != "--redis"]
        child = subprocess.Popen([sys.executable, __file__, *argv, "--mode", mode])
        try:
            status = status or child.wait()
        finally:
            if child.poll() is None:  # interrupted: let the child stop what it started
                child.send_signal(signal.SIGTERM)
                child.wait(60)
        print(flush=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
