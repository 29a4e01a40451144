"""A replay job over 100,000 dead runs on PostgreSQL: how long making it takes, and the
dashboard's pages while it runs beside their times without it.

Makes a fresh database (a scratch database on `DATABASE_URL`'s server when that is set, else a
throwaway cluster as bench/worker_throughput.py starts one), migrates it and writes, in a few
INSERT ... SELECT statements, `--dead` OrderShipped messages over `--streams` streams, each
with an inventory run that died of one cause (one failure group) and a notification run that
succeeded; the store indexer then catches up, as its thread would have. Django's test `Client`
logged in as a superuser (DEBUG off) times `--requests` GETs of the live list, the failures
page, the group's page and the handlers page; then `replay_job_create` over the group's runs
is timed (target < 1 s), a ReplayJobRunner thread carries the job out at `--rate` runs a
second (default: the replay_rate setting; no worker runs the queued runs, so what is timed is
the job's own load and the runs it leaves pending), with the store indexer's thread running
in both phases as it does beside every worker, and the same pages, plus the job's page, are
timed again while it runs. Prints one figure a line, each
beside its target.
"""

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import log, percentile, ratio, scratch_database, throwaway_cluster  # noqa: E402

CREATE_TARGET_MS = 1000
P95_TARGET_MS = 50  # the pages' target (bench/inspector_pages.py)
GROUP = "b" * 32
INVENTORY = "bookshelf.InventoryEventHandler"
NOTIFY = "bookshelf.NotificationEventHandler"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dead", type=int, default=100_000, help="Dead runs in the group.")
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30, help="Timed GETs per page.")
    parser.add_argument(
        "--rate", type=int, default=None, help="The job's runs per second (default: replay_rate)."
    )
    return parser.parse_args(argv)


def load(dead, streams):
    """The messages and runs, written by the database itself; returns the seconds it took."""
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO inspector_message (id, kind, type, stream, category, position,
                global_position, data, metadata, correlation_id, causation_id, time)
            SELECT gen_random_uuid(), 'event', 'bookshelf.OrderShipped.v1',
                'bookshelf::order-' || (g %% %(streams)s), 'bookshelf::order',
                g / %(streams)s, g, jsonb_build_object('order_id', g::text), '{}'::jsonb,
                gen_random_uuid(), NULL, now() - interval '1 day' + g * interval '1 ms'
            FROM generate_series(0, %(last)s) g
            """,
            {"streams": streams, "last": dead - 1},
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


def time_pages(client, urls, requests):
    """{name: sorted milliseconds} of `requests` GETs of each page after one warm-up."""
    times = {}
    for name, url in urls.items():
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        durations = []
        for _ in range(requests):
            started = time.perf_counter()
            client.get(url)
            durations.append((time.perf_counter() - started) * 1000)
        times[name] = sorted(durations)
    return times


def report(name, before, during):
    p95_during = percentile(during, 0.95)
    if before is None:
        print(
            f"{name} while the job runs: p50 ms {percentile(during, 0.5):.1f} | p95 ms "
            f"{p95_during:.1f} | target p95 ≤ {P95_TARGET_MS}: {ratio(p95_during, P95_TARGET_MS)}"
        )
        return
    p95_before = percentile(before, 0.95)
    print(
        f"{name}: p95 ms without a job {p95_before:.1f} | while it runs {p95_during:.1f}"
        f" ({ratio(p95_during, p95_before)} of usual) | p50 {percentile(before, 0.5):.1f} →"
        f" {percentile(during, 0.5):.1f} | target p95 ≤ {P95_TARGET_MS}:"
        f" {ratio(p95_during, P95_TARGET_MS)}"
    )


def run(args, where):
    import logging

    import django

    django.setup()
    logging.getLogger("inspector").setLevel(logging.WARNING)
    from django.conf import settings

    # No collectstatic here: the pages name their files without the manifest's hashes.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from inspector.dashboard.selectors import failures
    from inspector.models import ReplayJob
    from inspector.readmodel.indexer import start_indexer_thread
    from inspector.readmodel.replay_jobs import replay_job_progress
    from inspector.services import replay_job_cancel, replay_job_create
    from inspector.workers.replay_jobs import ReplayJobRunner

    call_command("migrate", verbosity=0)
    seconds = load(args.dead, args.streams)
    log(f"loaded {args.dead:,} messages and {2 * args.dead:,} runs in {seconds:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum would within a minute of the load
    started = time.perf_counter()
    catch_up()
    log(f"store indexer caught up in {time.perf_counter() - started:.1f} s")
    indexer = start_indexer_thread()  # as beside every run_handlers worker, in both phases

    user = get_user_model().objects.create_superuser("bench-admin", "bench@example.com")
    client = Client()
    client.force_login(user)
    urls = {
        "live list /inspector/": "/inspector/",
        "failures page": "/inspector/failures/",
        "group page": f"/inspector/failures/{GROUP}/",
        "handlers page": "/inspector/handlers/",
    }
    print(f"database: PostgreSQL ({where})")
    print(f"load average before (1 min, {os.cpu_count()} CPUs): {os.getloadavg()[0]:.2f}")
    print(f"dead runs in the group: {failures.group_runs(GROUP).count():,}")
    before = time_pages(client, urls, args.requests)

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

    stopping = threading.Event()
    runner = ReplayJobRunner(worker_id="bench-jobs")
    thread = threading.Thread(target=runner.run, args=(stopping,), daemon=True)
    thread.start()
    time.sleep(2)  # a few chunks in
    urls["job page"] = f"/inspector/jobs/{job.pk}/"
    started = time.monotonic()
    during = time_pages(client, urls, args.requests)
    timed_s = time.monotonic() - started
    stopping.set()
    thread.join(30)
    job.refresh_from_db()
    print(f"rate: {job.rate} runs/s; the job reached {job.applied + job.skipped:,} runs")
    print(f"pages timed while it ran for {timed_s:.1f} s ({args.requests} requests a page):")
    for name in urls:
        report(f"  {name}", before.get(name), during[name])
    progress = []
    for _ in range(10):
        started = time.perf_counter()
        replay_job_progress(ReplayJob.objects.get(pk=job.pk))
        progress.append((time.perf_counter() - started) * 1000)
    print(
        f"progress read with {job.applied:,} runs replayed ms: p50 "
        f"{percentile(sorted(progress), 0.5):.1f}"
    )
    replay_job_cancel(job=job)
    indexer.stop()
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
        }
    )
    os.environ.pop("REDIS_URL", None)
    with contextlib.ExitStack() as stack:
        server = os.environ.get("DATABASE_URL")
        if server:
            where = "scratch database on DATABASE_URL's server"
        else:
            server, where, _ = stack.enter_context(throwaway_cluster())
        os.environ["DATABASE_URL"] = stack.enter_context(
            scratch_database(server, prefix="replay_jobs")
        )
        run(args, where)


if __name__ == "__main__":
    main()
