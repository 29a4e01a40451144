"""Async workers on SQLite and PostgreSQL: backlog drain runs/s, and latency at an offered load.

Appends `--events` Ping events in async mode (each handled by the probe's RecorderA and RecorderB,
so two runs per event), starts `--workers` `manage.py run_handlers` processes and measures
runs/s until every run succeeded; then, with the same workers idle, appends one event per
transaction at `--rate` events/s for `--duration` seconds (from `--appenders` threads, so an
event is appended at its time even while an earlier commit is slow) and measures
append→finished latency (`HandlerRun.finished_at - Message.time`). Prints one figure a line,
each beside its target and the database's limit. Measured limits on this 2-core machine
(issue 3): PostgreSQL on loopback about 2,100 one-row transactions/s (fsync on), SQLite in WAL
mode about 2,800 through the ORM.
A busy machine moves every figure, so the script measures that limit again first, prints the
load average, and the CPU the workers (and a throwaway cluster) spent per run beside what the
machine's CPUs allow at the target rate.

`--database sqlite` uses a fresh SQLite file in a temporary folder; `--database postgres` creates
a scratch database on `DATABASE_URL`'s server when that is set (dropped at exit), else starts a
throwaway PostgreSQL cluster on 127.0.0.1 the way scripts/test-all does. The default runs both,
each in a child process (Django is set up once per process). `REDIS_URL` is dropped, so no
live-feed pokes leave the workers.
"""

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import (  # noqa: E402
    percentile,
    proc_stat,
    ratio,
    scratch_database,
    throwaway_cluster,
)

DRAIN_TARGET = {"postgres": 600, "sqlite": 700}  # runs/s with the default workers
ISSUE_LIMIT = {"postgres": 2100, "sqlite": 2800}  # one-row transactions/s, issue 3
DEFAULT_WORKERS = {"postgres": 2, "sqlite": 1}
# The worker's own idle poll defaults; on PostgreSQL NOTIFY wakes it well before that.
DEFAULT_POLL = {"postgres": 1.0, "sqlite": 0.1}
P50_TARGET_MS = 20
P99_TARGET_MS = 100
PROBE_HANDLERS = ["warehouse.RecorderA", "warehouse.RecorderB"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--events", type=int, default=5000, help="Backlog events (0 skips).")
    parser.add_argument("--workers", type=int, default=None, help="Default: 2 PG, 1 SQLite.")
    parser.add_argument("--concurrency", type=int, default=1, help="Threads per worker.")
    parser.add_argument("--batch-size", type=int, default=10, help="Runs claimed at once.")
    parser.add_argument(
        "--commit-window", type=float, default=20.0, help="run_handlers --commit-window (ms)."
    )
    parser.add_argument("--poll", type=float, default=None, help="Default: 1.0 PG, 0.1 SQLite.")
    parser.add_argument("--streams", type=int, default=100, help="Streams the events spread on.")
    parser.add_argument("--rate", type=float, default=200.0, help="Offered events/s.")
    parser.add_argument(
        "--appenders",
        type=int,
        default=2,
        help="Appending threads: with more than one, an event is appended at its time even "
        "while an earlier append is still committing (an open loop).",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="Offered load s (0 skips).")
    parser.add_argument("--timeout", type=float, default=300.0, help="Max wait per phase (s).")
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="ANALYZE after appending the backlog (fresh planner statistics).",
    )
    parser.add_argument(
        "--no-indexer",
        action="store_true",
        help="Workers without the store indexer thread (run_handlers --no-indexer).",
    )
    parser.add_argument(
        "--pg-conf",
        action="append",
        default=[],
        metavar="SETTING",
        help="A postgresql.conf line for the throwaway cluster, e.g. synchronous_commit=off.",
    )
    return parser.parse_args(argv)


def log(text):
    print(f"worker_throughput: {text}", file=sys.stderr, flush=True)


def cpu_seconds(pid, *, reaped=False):
    """User + system CPU of a process, plus that of its reaped children when asked."""
    fields = proc_stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def cluster_cpu_seconds(postmaster):
    """A cluster's CPU: the postmaster, its live processes and those it has reaped."""
    total = cpu_seconds(postmaster, reaped=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(entry.name)
            if fields is not None and int(fields[1]) == postmaster:
                total += cpu_seconds(entry.name)
    return total


# Databases ---------------------------------------------------------------------------------


def bench_env(extra):
    """The environment the script and its workers share."""
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)  # no live-feed pokes through Redis: workers and database only
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",  # the warehouse domain and its probe handlers
        DJANGO_DEBUG="0",  # DEBUG keeps every query in memory
        DJANGO_SECRET_KEY=env.get("DJANGO_SECRET_KEY") or "bench-only-secret",
        DJANGO_EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
        INSPECTOR_EMBEDDED_WORKER="0",
        INSPECTOR_EVENT_PROCESSING="async",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def setup_django():
    import logging

    import django

    django.setup()
    logging.getLogger("inspector").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# Workers -----------------------------------------------------------------------------------


class Workers:
    """`manage.py run_handlers` subprocesses, stopped with SIGTERM (then SIGKILL) at exit."""

    def __init__(self, *, count, env, options, folder, nice=0):
        self.procs = []
        self.logs = []
        for n in range(count):
            path = Path(folder) / f"worker-{n}.log"
            self.logs.append(path)
            cmd = [sys.executable, "manage.py", "run_handlers", *options]
            if nice:  # a lower CPU priority than the web process's, as `nice` in a Procfile
                cmd = ["nice", "-n", str(nice), *cmd]
            cmd += ["--worker-id", f"bench-{os.getpid()}-{n}"]
            with path.open("wb") as output:
                self.procs.append(
                    subprocess.Popen(
                        cmd, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
                    )
                )

    def all_started(self):
        logs = [path.read_text(errors="replace") for path in self.logs]
        return all("Starting worker" in text for text in logs)

    def check_alive(self):
        for proc, path in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                tail = path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"worker pid {proc.pid} exited with {proc.returncode}:\n{tail}")

    def cpu_seconds(self):
        return sum(cpu_seconds(proc.pid) for proc in self.procs)

    def stop(self, timeout=15.0):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wait_until(condition, *, timeout, workers, interval=0.05):
    """Poll `condition` until true; raise TimeoutError, or RuntimeError if a worker died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers.check_alive()
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f} s")


class CpuMeter:
    """CPU the workers (and a throwaway cluster) spent between `start()` and `per_run()`."""

    def __init__(self, workers, postmaster):
        self.workers, self.postmaster = workers, postmaster
        self.start()

    def snapshot(self):
        server = cluster_cpu_seconds(self.postmaster) if self.postmaster else 0.0
        return self.workers.cpu_seconds(), server

    def start(self):
        self.before = self.snapshot()

    def print_per_run(self, runs, runs_per_second):
        """Print CPU ms per run beside what the machine's CPUs allow at that rate."""
        after = self.snapshot()
        (worker_before, server_before), (worker_after, server_after) = self.before, after
        worker_ms = (worker_after - worker_before) * 1000 / runs
        server_ms = (server_after - server_before) * 1000 / runs
        print(f"worker CPU ms per run (all workers): {worker_ms:.2f}")
        if self.postmaster:
            print(f"PostgreSQL CPU ms per run (whole cluster): {server_ms:.2f}")
        budget = os.cpu_count() * 1000 / runs_per_second
        print(
            f"CPU ms per run, workers + database: {worker_ms + server_ms:.2f}"
            f" | {os.cpu_count()} CPUs at {runs_per_second:,.0f} runs/s allow {budget:.2f}:"
            f" {ratio(worker_ms + server_ms, budget)}"
        )


# Phases ------------------------------------------------------------------------------------


def last_global_position():
    from inspector.models import Message

    last = Message.objects.order_by("-global_position").values_list("global_position").first()
    return last[0] if last else -1


def runs_after(gpos):
    """The probe's runs of events appended after global position `gpos`."""
    from inspector.models import HandlerRun

    return HandlerRun.objects.filter(global_position__gt=gpos, handler__in=PROBE_HANDLERS)


def all_succeeded(gpos, expected):
    """True once the runs after `gpos` are all finished; raises unless `expected` succeeded."""
    from django.db.models import Count

    runs = runs_after(gpos)
    # Cheap while the workers are busy: an index seek, not a count over the whole backlog.
    if runs.filter(status__in=["pending", "running", "failed"]).exists():
        return False
    counts = dict(runs.values_list("status").annotate(n=Count("pk")).order_by())
    if counts.get("succeeded", 0) != expected:
        raise RuntimeError(f"expected {expected} runs to succeed, found {counts}")
    return True


def append_pings(domain, first, count, *, streams, per_transaction):
    from inspector.runtime.unit_of_work import unit_of_work
    from tests.warehouse.probe import Ping

    for start in range(first, first + count, per_transaction):
        with unit_of_work(domain) as uow:
            for n in range(start, min(start + per_transaction, first + count)):
                uow.append(Ping(n=n), stream=f"probe::ping-{n % streams}")


def one_row_transactions_per_second(seconds=2.0):
    """The database's ceiling for this work: one-row ORM transactions/s on one connection."""
    from django.db import transaction

    from tests.warehouse.models import Seen

    count, message_id = 0, uuid.uuid4()
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        with transaction.atomic():
            Seen.objects.create(
                handler="calibrate", message_id=message_id, stream="x", position=count, n=0
            )
        count += 1
    rate = count / (time.perf_counter() - started)
    Seen.objects.filter(handler="calibrate").delete()
    return rate


def backlog(bench):
    """Append the backlog, start the workers, and time them until every run succeeded."""
    from django.db import connection
    from django.db.models import Avg, Min

    args = bench.args
    gpos = last_global_position()
    expected = args.events * 2
    started = time.perf_counter()
    append_pings(bench.domain, 0, args.events, streams=args.streams, per_transaction=100)
    append_s = time.perf_counter() - started
    runs = runs_after(gpos)
    if runs.filter(status="pending").count() != expected:
        raise RuntimeError(f"expected {expected} pending runs, found {runs.count()}")
    if args.analyze:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    spawned = time.perf_counter()
    workers = bench.start_workers()
    meter = None

    def drained():
        nonlocal meter
        if meter is None and workers.all_started():  # leave Django's start-up out of CPU/run
            meter = CpuMeter(workers, bench.postmaster)
        return all_succeeded(gpos, expected)

    try:
        wait_until(drained, timeout=args.timeout, workers=workers, interval=0.2)
        complete = True
    except TimeoutError:
        complete = False
    wall = time.perf_counter() - spawned
    first = runs.aggregate(first=Min("started_at"))["first"]
    done = runs.filter(status="succeeded")
    finished = sorted(done.values_list("finished_at", flat=True))
    mean_us = done.aggregate(mean=Avg("duration_us"))["mean"] or 0
    count = len(finished)
    if count < 2 or meter is None:
        raise RuntimeError(f"only {count} runs succeeded in {wall:.0f} s")
    middle = finished[count // 2]
    rate = count / (finished[-1] - first).total_seconds()
    first_half = (count // 2) / max(1e-6, (middle - first).total_seconds())
    second_half = (count - count // 2) / max(1e-6, (finished[-1] - middle).total_seconds())
    target = DRAIN_TARGET[bench.db]
    print(f"backlog events appended: {args.events} ({args.events / append_s:,.0f} events/s)")
    print(f"backlog runs: {expected} ({args.streams} streams, {len(workers.procs)} workers)")
    if not complete:
        print(f"backlog NOT drained: {count} of {expected} runs succeeded in {args.timeout:.0f} s")
    print(
        f"backlog runs/s (first start to last finish): {rate:,.0f}"
        f" | target ≥ {target}: {ratio(rate, target)}"
        f" | limit {bench.limit:,.0f} tx/s: {ratio(rate, bench.limit)}"
    )
    print(
        f"backlog runs/s, first half / second half of runs: {first_half:,.0f} / {second_half:,.0f}"
    )
    print(f"backlog runs/s incl. worker start-up: {count / wall:,.0f} ({wall:.1f} s wall)")
    print(f"mean run ms (handler and its writes, before commit): {mean_us / 1000:.2f}")
    meter.print_per_run(count, target)
    return complete


def offered_load(bench):
    """With idle workers, append one event per transaction at a steady rate; time each run."""
    from inspector.runtime.unit_of_work import unit_of_work
    from tests.warehouse.probe import Ping

    args = bench.args
    workers = bench.workers or bench.start_workers()
    # Idle workers: wait for every one to have started, push a few events through, then rest.
    wait_until(workers.all_started, timeout=60, workers=workers)
    gpos = last_global_position()
    append_pings(bench.domain, 10**6, 4, streams=args.streams, per_transaction=1)
    wait_until(lambda: all_succeeded(gpos, 8), timeout=60, workers=workers)
    time.sleep(1.0)

    gpos = last_global_position()
    total = int(args.rate * args.duration)
    interval = 1.0 / args.rate
    slots = iter(range(total))
    take = threading.Lock()
    late = []  # slots appended more than one interval after their time
    appends = []  # ms per append transaction

    def appender():
        """Open loop: each event is appended at its own time, whatever the last one took."""
        from django.db import connection

        try:
            while True:
                with take:
                    k = next(slots, None)
                if k is None:
                    return
                pause = started + k * interval - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                elif pause < -interval:
                    late.append(k)
                n = 2 * 10**6 + k
                began = time.perf_counter()
                with unit_of_work(bench.domain) as uow:
                    uow.append(Ping(n=n), stream=f"probe::ping-{n % args.streams}")
                appends.append((time.perf_counter() - began) * 1000)
        finally:
            if threading.current_thread() is not threading.main_thread():
                connection.close()

    meter = CpuMeter(workers, bench.postmaster)
    appender_cpu = time.process_time()
    threads = [threading.Thread(target=appender) for _ in range(args.appenders - 1)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    appender()  # this thread is one of them
    for thread in threads:
        thread.join()
    offered_s = time.perf_counter() - started
    appender_cpu = time.process_time() - appender_cpu
    try:
        wait_until(lambda: all_succeeded(gpos, total * 2), timeout=args.timeout, workers=workers)
    except TimeoutError:
        left = runs_after(gpos).exclude(status="succeeded").count()
        print(f"offered load NOT finished: {left} of {total * 2} runs left after {args.timeout} s")

    pairs = runs_after(gpos).filter(status="succeeded").values_list("finished_at", "message__time")
    latencies = sorted((done - appended).total_seconds() * 1000 for done, appended in pairs)
    achieved = total / offered_s
    print(
        f"offered events/s (one per transaction): {achieved:.1f}"
        f" | offered {args.rate:.0f}: {ratio(achieved, args.rate)}"
        f" ({total} events from {args.appenders} appending threads,"
        f" {len(late)} appends more than one interval late)"
    )
    for name, p, target in (
        ("p50", 0.50, P50_TARGET_MS),
        ("p95", 0.95, None),
        ("p99", 0.99, P99_TARGET_MS),
    ):
        value = percentile(latencies, p)
        beside = f" | target ≤ {target}: {ratio(value, target)}" if target else ""
        print(f"append→finished latency {name} ms: {value:.1f}{beside}")
    print(f"append→finished latency max ms: {latencies[-1]:.1f}")
    appends.sort()
    print(
        f"append transaction ms p50 / p99 / max: {percentile(appends, 0.5):.1f}"
        f" / {percentile(appends, 0.99):.1f} / {appends[-1]:.1f}"
        f" | interval {1000 / args.rate:.1f}: {ratio(percentile(appends, 0.5), 1000 / args.rate)}"
    )
    print(
        f"appender CPU ms per event (this process): {appender_cpu * 1000 / total:.2f}"
        f" | {args.rate:.0f} events/s allow {1000 / args.rate:.2f} on one CPU:"
        f" {ratio(appender_cpu / total, 1 / args.rate)}"
    )
    meter.print_per_run(len(latencies), args.rate * 2)


class Bench:
    """One database's run: its settings, the domain, the workers and what to stop at exit."""

    def __init__(self, args, db, stack):
        self.args, self.db, self.stack = args, db, stack
        self.folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="worker-throughput."))
        self.postmaster = None
        self.workers = None
        if db == "sqlite":
            extra = {"INSPECTOR_SQLITE_PATH": str(Path(self.folder) / "bench.sqlite3")}
            self.where = "fresh SQLite file, WAL"
        else:
            server = os.environ.get("DATABASE_URL")
            if server:
                self.where = "DATABASE_URL's server"
            else:
                cluster = throwaway_cluster(args.pg_conf)
                server, self.where, self.postmaster = stack.enter_context(cluster)
            extra = {"DATABASE_URL": stack.enter_context(scratch_database(server))}
            self.where += ", fresh database"
        self.env = bench_env(extra)
        os.environ.clear()
        os.environ.update(self.env)
        setup_django()
        from django.db import connections

        from tests.warehouse.domain import domain

        stack.callback(connections.close_all)
        domain.config["event_processing"] = "async"
        self.domain = domain
        self.count = args.workers or DEFAULT_WORKERS[db]
        self.poll = args.poll if args.poll is not None else DEFAULT_POLL[db]
        self.limit = one_row_transactions_per_second()

    def start_workers(self):
        options = ["--poll", str(self.poll), "--batch-size", str(self.args.batch_size)]
        options += ["--concurrency", str(self.args.concurrency)]
        options += ["--commit-window", str(self.args.commit_window)]
        options += ["--no-indexer"] if self.args.no_indexer else []
        self.workers = Workers(count=self.count, env=self.env, options=options, folder=self.folder)
        self.stack.callback(self.workers.stop)
        return self.workers


def run_one(args, db):
    """Both phases on one database, in this process; returns the exit status."""
    with contextlib.ExitStack() as stack:
        bench = Bench(args, db, stack)
        print(f"database: {db} ({bench.where})")
        print(f"load average before (1 min, {os.cpu_count()} CPUs): {os.getloadavg()[0]:.2f}")
        print(
            f"workers: {bench.count} × concurrency {args.concurrency}, poll {bench.poll} s,"
            f" batch {args.batch_size}, commit window {args.commit_window:g} ms,"
            f" store indexer {'off' if args.no_indexer else 'on (a thread in each worker)'}"
        )
        print(
            f"one-row ORM transactions/s, 1 connection (limit): {bench.limit:,.0f}"
            f" | issue's figure {ISSUE_LIMIT[db]:,}: {ratio(bench.limit, ISSUE_LIMIT[db])}"
        )
        if args.events and not backlog(bench):
            print("offered load: skipped (the backlog did not drain in time)")
            return 1
        if args.duration:
            offered_load(bench)
        print(f"load average after (1 min): {os.getloadavg()[0]:.2f}")
    return 0


def main():
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C, so the workers and the cluster are always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.database != "both":
        sys.exit(run_one(args, args.database))
    status = 0
    for db in ("sqlite", "postgres"):
        child = subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--database", db])
        try:
            code = child.wait()
        finally:
            if child.poll() is None:  # interrupted: let the child stop what it started
                child.send_signal(signal.SIGTERM)
                child.wait(60)
        status = status or code
        print(flush=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
