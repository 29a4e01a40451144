"""A replay job over 100,000 dead runs on PostgreSQL: how long making it takes, and the
dashboard's pages while real workers carry it out beside their times without it.

Makes a fresh database (a scratch database on `DATABASE_URL`'s server when that is set, else a
throwaway cluster as bench/worker_throughput.py starts one), migrates it and writes, in a few
INSERT ... SELECT statements, `--dead` OrderShipped messages over `--streams` streams, each
with an inventory run that died of one cause (one failure group) and a notification run that
succeeded; the store indexer then catches up, as its thread would have. Each order ships one
of a hundred books, restocked since (the fix), so the inventory handler succeeds when the job
replays it: it takes the book off the shelf and raises StockAdjusted, as in production.

`--workers` `manage.py run_handlers` processes (bookshelf settings, each with its store
indexer and replay job threads, as deployed) run in both phases. Django's test `Client`
logged in as a superuser (DEBUG off) times `--requests` GETs of the live list, the failures
page, the group's page and the handlers page while they idle; then `replay_job_create` over
the group's runs is timed (target < 1 s) and the workers carry the job out at `--rate` runs a
second (default: the replay_rate setting) and run what it queues, so the runs drain instead
of piling up as pending; the same pages, plus the job's page and the progress fragment its
page polls every second, are timed again while it runs. Prints one figure a line, each
beside its target, and the load average (the machine may be shared); beside each page's
times, the statements a GET runs and the milliseconds they took (the database's share, the
rest is the page's Python) and the CPU milliseconds of that Python (a wait for the CPU does not
add to it), and for each phase the CPU seconds a second of the workers, of the
throwaway cluster and of the whole machine, which tell a slower plan from a busier machine.
"""

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import (  # noqa: E402
    log,
    machine_busy_s,
    percentile,
    ratio,
    scratch_database,
    throwaway_cluster,
    without_static_manifest,
)
from worker_throughput import Workers, cluster_cpu_seconds, wait_until  # noqa: E402

CREATE_TARGET_MS = 1000
P95_TARGET_MS = 50  # the pages' target (bench/inspector_pages.py)
STATEMENT_SHOWN = 160  # characters of a statement that name it in the report
GROUP = "b" * 32
BOOKS = 100
INVENTORY = "bookshelf.InventoryEventHandler"
NOTIFY = "bookshelf.NotificationEventHandler"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dead", type=int, default=100_000, help="Dead runs in the group.")
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30, help="Timed GETs per page.")
    parser.add_argument("--workers", type=int, default=2, help="run_handlers processes.")
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=10,
        metavar="N",
        help="Start the workers under `nice -n N`, a lower CPU priority than the pages', as the "
        "Procfile does (WORKER_NICE, 10); 0 runs them as the pages run.",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="Print the group and handlers pages' slowest statements' plans (EXPLAIN ANALYZE).",
    )
    parser.add_argument("--settle", type=float, default=2.0, help="Seconds of job before timing.")
    parser.add_argument(
        "--rate", type=int, default=None, help="The job's runs per second (default: replay_rate)."
    )
    return parser.parse_args(argv)


def load(dead, streams):
    """The messages and runs, written by the database itself; returns the seconds it took."""
    from django.db import connection, transaction

    from bookshelf.models import Book, Inventory

    started = time.perf_counter()
    books = Book.objects.bulk_create(
        Book(title=f"Dune {n}", author="Herbert") for n in range(BOOKS)
    )
    # The fix: restocked, so every replayed order ships; a hundred rows share the updates.
    Inventory.objects.bulk_create(
        Inventory(book=book, title=book.title, quantity=10 * dead) for book in books
    )
    book_ids = [str(book.pk) for book in books]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO inspector_message (id, kind, type, stream, category, position,
                global_position, data, metadata, correlation_id, causation_id, time)
            SELECT gen_random_uuid(), 'event', 'bookshelf.OrderShipped.v1',
                'bookshelf::order-' || (g %% %(streams)s), 'bookshelf::order',
                g / %(streams)s, g, jsonb_build_object('order_id', g::text,
                    'customer_name', 'Ada', 'items', jsonb_build_array(jsonb_build_object(
                    'book_id', (%(books)s::text[])[1 + g %% %(nbooks)s], 'quantity', 1))),
                '{}'::jsonb,
                gen_random_uuid(), NULL, now() - interval '1 day' + g * interval '1 ms'
            FROM generate_series(0, %(last)s) g
            """,
            {"streams": streams, "last": dead - 1, "books": book_ids, "nbooks": BOOKS},
        )
        for handler, status, attempts, group, error in (
            (INVENTORY, "dead", 4, GROUP, "bookshelf.OutOfStock"),
            (NOTIFY, "succeeded", 1, "", ""),
        ):
            cursor.execute(
                """
                INSERT INTO inspector_handlerrun (id, message_id, handler, message_type, stream,
                    position, global_position, status, attempts, available_at, claimed_by,
                    lease_expires_at, started_at, finished_at, duration_us, error_type,
                    error_message, traceback, raised_message_ids, failure_group, edit_id,
                    created_at, updated_at)
                SELECT gen_random_uuid(), m.id, %(handler)s, m.type, m.stream, m.position,
                    m.global_position, %(status)s, %(attempts)s, m.time, '', NULL, m.time,
                    m.time + interval '2 ms', 2000, %(error)s, %(message)s, '', '[]'::jsonb,
                    %(group)s, NULL, m.time, m.time + interval '2 ms'
                FROM inspector_message m
                """,
                {
                    "handler": handler,
                    "status": status,
                    "attempts": attempts,
                    "group": group,
                    "error": error,
                    "message": "Not enough stock of 'Dune'" if error else "",
                },
            )
        cursor.execute(
            """
            INSERT INTO inspector_failuregroup (key, handler, error_type, message, first_seen,
                dead, streams, last_dead_at)
            VALUES (%s, %s, 'bookshelf.OutOfStock', 'Not enough stock of ''Dune''', now(), 0, 0,
                NULL)
            """,
            [GROUP, INVENTORY],
        )
        cursor.execute(
            "INSERT INTO inspector_storesequence (name, value) VALUES ('global', %s)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            [dead - 1],
        )
    return time.perf_counter() - started


def catch_up():
    """Run the store indexer until it has read the whole store."""
    from inspector.readmodel import indexer

    while True:
        step = indexer.read_step(batch=10 * indexer.BATCH)
        if not step.messages or not indexer.apply_step(step):
            return


class StatementClock:
    """The statements one GET runs and the milliseconds they take, counted by a wrapper on the
    connection (DEBUG is off, so Django keeps no list of them)."""

    def __init__(self, by_statement):
        self.statements, self.ms = 0, 0.0
        self.by_statement = by_statement  # the statement's first characters -> [ms, ...]

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            ms = (time.perf_counter() - started) * 1000
            self.statements += 1
            self.ms += ms
            self.by_statement.setdefault(sql[:STATEMENT_SHOWN], []).append(ms)


@dataclass
class PageTimes:
    """One page's timed GETs: their milliseconds (sorted), and per GET its statements and the
    milliseconds they took (sorted), to tell the database's share from the page's Python."""

    ms: list
    statements: list
    sql_ms: list
    cpu_ms: list  # this process's CPU (the page's Python, the client's), which waits do not add to
    by_statement: dict  # a statement's first characters -> its milliseconds in each GET

    def slowest_statement(self):
        """(p95 ms, p50 ms, the first characters) of the statement with the highest p95."""
        return max(
            (percentile(sorted(ms), 0.95), percentile(sorted(ms), 0.5), sql)
            for sql, ms in self.by_statement.items()
        )


def time_pages(client, urls, requests, headers=None):
    """{name: PageTimes} of `requests` GETs of each page after one warm-up."""
    from django.db import connection

    times = {}
    for name, url in urls.items():
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.status_code)
        durations, statements, sql_ms, cpu_ms, by_statement = [], [], [], [], {}
        for _ in range(requests):
            clock = StatementClock(by_statement)
            with connection.execute_wrapper(clock):
                started, cpu = time.perf_counter(), time.process_time()
                client.get(url, headers=headers)
                durations.append((time.perf_counter() - started) * 1000)
                cpu_ms.append((time.process_time() - cpu) * 1000)
            statements.append(clock.statements)
            sql_ms.append(clock.ms)
        times[name] = PageTimes(
            *map(sorted, (durations, statements, sql_ms, cpu_ms)), by_statement=by_statement
        )
    return times


class CpuShare:
    """CPU seconds a second the workers and the throwaway cluster (every backend: the workers',
    the pages', autovacuum's) used between two reads, beside the machine's."""

    def __init__(self, workers, postmaster):
        self.workers, self.postmaster = workers, postmaster
        self.start()

    def read(self):
        server = cluster_cpu_seconds(self.postmaster) if self.postmaster else 0.0
        return time.monotonic(), self.workers.cpu_seconds(), server, machine_busy_s()

    def start(self):
        self.before = self.read()

    def line(self):
        after = self.read()
        seconds = after[0] - self.before[0]
        workers, server, machine = (after[i] - self.before[i] for i in (1, 2, 3))
        server_text = f"PostgreSQL {server / seconds:.2f}" if self.postmaster else "PostgreSQL n/a"
        return (
            f"CPU s a second over {seconds:.0f} s: workers {workers / seconds:.2f}, "
            f"{server_text}, the whole machine {machine / seconds:.2f} of {os.cpu_count()}"
        )


def page_statements(client, url, headers=None):
    """[(ms, sql)] of the statements one GET of `url` runs, slowest first, and the GET's ms."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        client.get(url, headers=headers)
        page_ms = (time.perf_counter() - started) * 1000
    queries = [(float(q["time"]) * 1000, q["sql"]) for q in captured.captured_queries]
    return sorted(queries, reverse=True), page_ms


def explain(pages, client, urls, *, analyze):
    """Print each page's slowest statements, with PostgreSQL's plan of the slowest one."""
    from django.db import connection

    for name in pages:
        queries, page_ms = page_statements(client, urls[name])
        print(
            f"  {name}: one GET {page_ms:.0f} ms, {len(queries)} statements "
            f"{sum(ms for ms, _ in queries):.0f} ms in all; slowest ms "
            + ", ".join(f"{ms:.1f}" for ms, _ in queries[:3])
        )
        if not analyze or not queries:
            continue
        sql = queries[0][1]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            plan = "\n".join(f"      {row[0]}" for row in cursor.fetchall())
        print(f"    {sql[:300]}\n{plan}")


def sql_share(times):
    """Statements a GET, the p50/p95 milliseconds of those statements, and the p50 CPU
    milliseconds of the page's Python."""
    return (
        f"{percentile(times.statements, 0.5)} statements, SQL ms p50 "
        f"{percentile(times.sql_ms, 0.5):.1f} p95 {percentile(times.sql_ms, 0.95):.1f}, "
        f"Python CPU ms p50 {percentile(times.cpu_ms, 0.5):.1f}"
    )


def report(name, before, during):
    p95_during = percentile(during.ms, 0.95)
    if before is None:
        print(
            f"{name} while the job runs: p50 ms {percentile(during.ms, 0.5):.1f} | p95 ms "
            f"{p95_during:.1f} | target p95 ≤ {P95_TARGET_MS}: {ratio(p95_during, P95_TARGET_MS)}"
            f" | a GET: {sql_share(during)}"
        )
        return
    p95_before = percentile(before.ms, 0.95)
    print(
        f"{name}: p95 ms without a job {p95_before:.1f} | while it runs {p95_during:.1f}"
        f" ({ratio(p95_during, p95_before)} of usual) | p50 {percentile(before.ms, 0.5):.1f} →"
        f" {percentile(during.ms, 0.5):.1f} | target p95 ≤ {P95_TARGET_MS}:"
        f" {ratio(p95_during, P95_TARGET_MS)}"
    )
    print(f"    a GET without a job: {sql_share(before)}; while it runs: {sql_share(during)}")
    p95, p50, sql = during.slowest_statement()
    print(f"    its slowest statement while the job runs, p95 ms {p95:.1f} (p50 {p50:.1f}): {sql}")


def run(args, where, stack, postmaster=None):
    import logging

    import django

    django.setup()
    logging.getLogger("inspector").setLevel(logging.WARNING)
    without_static_manifest()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count, Max
    from django.test import Client

    from inspector.dashboard.selectors import failures
    from inspector.models import (
        HandlerRun,
        HandlerRunReplay,
        IndexerPosition,
        Message,
        OpenRun,
        ReplayJob,
    )
    from inspector.readmodel.payload_index import INDEXER
    from inspector.readmodel.replay_jobs import replay_job_progress
    from inspector.services import replay_job_cancel, replay_job_create

    call_command("migrate", verbosity=0)
    seconds = load(args.dead, args.streams)
    log(f"loaded {args.dead:,} messages and {2 * args.dead:,} runs in {seconds:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum would within a minute of the load
    started = time.perf_counter()
    catch_up()
    log(f"store indexer caught up in {time.perf_counter() - started:.1f} s")

    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="replay-jobs-bench-"))
    workers = Workers(
        count=args.workers, env=dict(os.environ), options=[], folder=folder, nice=args.worker_nice
    )
    stack.callback(workers.stop)
    wait_until(workers.all_started, timeout=60, workers=workers)
    log(f"{args.workers} run_handlers workers started")

    user = get_user_model().objects.create_superuser("bench-admin", "bench@example.com")
    client = Client()
    client.force_login(user)
    urls = {
        "live list /inspector/": "/inspector/",
        "failures page": "/inspector/failures/",
        "group page": f"/inspector/failures/{GROUP}/",
        "handlers page": "/inspector/handlers/",
    }
    niced = f" under nice -n {args.worker_nice}" if args.worker_nice else ""
    print(f"database: PostgreSQL ({where}); {args.workers} run_handlers workers running{niced}")
    print(f"load average before (1 min, {os.cpu_count()} CPUs): {os.getloadavg()[0]:.2f}")
    print(f"dead runs in the group: {failures.group_runs(GROUP).count():,}")
    cpu = CpuShare(workers, postmaster)
    before = time_pages(client, urls, args.requests)
    print(f"without a job: {cpu.line()}")
    slow_pages = ("group page", "handlers page")
    print("without a job:")
    explain(slow_pages, client, urls, analyze=args.explain)

    started = time.perf_counter()
    job = replay_job_create(
        action="replay",
        runs=failures.group_runs(GROUP),
        covers=f"failure group {GROUP}",
        user=user,
        reason="bench",
        rate=args.rate,
    )
    made_ms = (time.perf_counter() - started) * 1000
    print(
        f"replay_job_create over {job.total:,} dead runs ms: {made_ms:.0f} | target < "
        f"{CREATE_TARGET_MS}: {ratio(made_ms, CREATE_TARGET_MS)}"
    )

    time.sleep(args.settle)  # a few chunks in, queued and run by the workers
    urls["job page"] = f"/inspector/jobs/{job.pk}/"
    urls["job progress fragment"] = f"/inspector/jobs/{job.pk}/"
    started = time.monotonic()
    open_at_start = OpenRun.objects.count()
    cpu.start()
    during = time_pages(
        client, {k: v for k, v in urls.items() if "fragment" not in k}, args.requests
    )
    during.update(
        time_pages(
            client,
            {"job progress fragment": urls["job progress fragment"]},
            args.requests,
            headers={"HX-Request": "true"},
        )
    )
    timed_s = time.monotonic() - started
    print(f"while the job runs: {cpu.line()}")
    explain(slow_pages, client, urls, analyze=args.explain)
    workers.check_alive()
    job.refresh_from_db()
    replayed = dict(
        HandlerRun.objects.filter(replays__job=job)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
    )
    print(
        f"rate: {job.rate} runs/s; {timed_s:.1f} s of timing after {args.settle:.0f} s: the job "
        f"reached {job.applied + job.skipped:,} runs; the runs it replayed now: "
        + ", ".join(f"{status} {n:,}" for status, n in sorted(replayed.items()))
    )
    beyond = HandlerRunReplay.objects.filter(job=job, pk__gt=job.settled_through).count()
    print(
        f"settled mark: {job.settled_done + job.settled_failed:,} of {job.applied:,} replayed "
        f"runs behind it; a progress read counts the {beyond:,} after it"
    )
    indexed = IndexerPosition.objects.filter(name=INDEXER).values_list("position", flat=True)
    last = Message.objects.aggregate(last=Max("global_position"))["last"]
    print(
        f"store indexer at position {indexed.first():,} of {last:,}; open runs it counts live: "
        f"{open_at_start:,} when the timing began, {OpenRun.objects.count():,} now"
    )
    print(f"pages ({args.requests} requests a page):")
    for name in urls:
        report(f"  {name}", before.get(name), during[name])
    progress = []
    for _ in range(20):
        started = time.perf_counter()
        replay_job_progress(ReplayJob.objects.get(pk=job.pk))
        progress.append((time.perf_counter() - started) * 1000)
    print(
        f"progress read (job row and the count after the mark) ms: p50 "
        f"{percentile(sorted(progress), 0.5):.1f}"
    )
    replay_job_cancel(job=job)
    if os.environ.get("BENCH_WORKER_LOGS"):
        for path in workers.logs:
            print(path.read_text(errors="replace")[-3000:])
    print(f"load average after (1 min): {os.getloadavg()[0]:.2f}")


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the cluster
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bookshelf.settings",
            "DJANGO_DEBUG": "0",  # DEBUG keeps every query in memory
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "bench-only-secret",
            "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "0",  # the test Client speaks plain HTTP
            "INSPECTOR_EMBEDDED_WORKER": "0",
            "INSPECTOR_EVENT_PROCESSING": "async",  # the workers run the runs
            "PYTHONUNBUFFERED": "1",
        }
    )
    os.environ.pop("REDIS_URL", None)
    with contextlib.ExitStack() as stack:
        server, postmaster = os.environ.get("DATABASE_URL"), None
        if server:
            where = "scratch database on DATABASE_URL's server"
        else:
            server, where, postmaster = stack.enter_context(throwaway_cluster())
        os.environ["DATABASE_URL"] = stack.enter_context(
            scratch_database(server, prefix="replay_jobs")
        )
        run(args, where, stack, postmaster)


if __name__ == "__main__":
    main()
