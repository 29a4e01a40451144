"""The tutorial workload (AddBook, place, confirm, ship, every handler), sync, on one connection.

Runs against a fresh SQLite file (the embedded default) or, with `--database postgres`, a
fresh database on DATABASE_URL's server (a throwaway cluster when DATABASE_URL is unset), and
prints one figure a line. Protean 0.18 manages about
4 iterations/s here; plain Django ORM on SQLite about 2,800 one-row transactions/s.

On a fresh file it also logs the statements SQLite ran for the first 300 iterations and
replays them with plain sqlite3 on an empty copy of the database: the SQL floor, what those
statements cost with no Python between them, and so the most iterations/s any Python on top
could reach with this schema. On PostgreSQL it does the same with psycopg alone on a copy of
the freshly migrated database: the same statements, parameters, transactions and prepared
statements over the same socket, so the floor there holds the round trips and the commits'
fsyncs, which no change to the Python on top can take away.
"""

import argparse
import contextlib
import os
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def setup(db_path=None, database_url=None):
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ["INSPECTOR_SQLITE_PATH"] = db_path
    os.environ["DJANGO_EMAIL_BACKEND"] = "django.core.mail.backends.dummy.EmailBackend"
    os.environ["DJANGO_DEBUG"] = "0"  # DEBUG keeps every query in memory
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bookshelf.settings")
    import logging

    import django

    django.setup()
    logging.getLogger("inspector").setLevel(logging.ERROR)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


FLOOR_ITERATIONS = 300


class RoundTrips:
    """What one connection sends PostgreSQL: statements, commits, and the round trips they
    took, counted in libpq's trace of the protocol (each Sync of the extended protocol and
    each simple Query waits for the server: a statement, a COMMIT, a BEGIN psycopg sends on
    its own, or a pipeline of several). It also keeps them in order, with their parameters
    and whether each ran in autocommit, for `postgres_floor` to send again."""

    def __init__(self, trace_path):
        self.statements = self.commits = self.rollbacks = 0
        self.trace_path = trace_path
        self.entries = []

    def __call__(self, execute, sql, params, many, context):
        from django.db import connection

        self.statements += 1
        self.entries.append(("execute", sql, params, many, connection.get_autocommit()))
        return execute(sql, params, many, context)

    def start(self):
        from django.db import connection
        from psycopg import pq

        connection.ensure_connection()
        self.pgconn = connection.connection.pgconn
        self.trace = open(self.trace_path, "wb")  # noqa: SIM115 (closed by stop())
        self.pgconn.trace(self.trace.fileno())
        self.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        connection.execute_wrappers.append(self)
        commit, rollback = connection._commit, connection._rollback

        def counted_commit():
            self.commits += 1
            self.entries.append(("commit",))
            return commit()

        def counted_rollback():
            self.rollbacks += 1
            self.entries.append(("rollback",))
            return rollback()

        connection._commit, connection._rollback = counted_commit, counted_rollback

    def stop(self):
        from django.db import connection

        self.pgconn.untrace()
        self.trace.close()
        connection.execute_wrappers.remove(self)
        del connection._commit, connection._rollback  # the class's methods again

    def round_trips(self):
        with open(self.trace_path, encoding="utf-8", errors="replace") as trace:
            return sum(
                1
                for line in trace
                if line.startswith("F\t") and line.split("\t")[2].split()[0] in ("Sync", "Query")
            )

    def report(self, iterations):
        trips = self.round_trips()
        print(
            f"SQL statements per iteration: {self.statements / iterations:.1f} "
            f"({self.commits / iterations:.1f} commits)"
        )
        print(f"round trips per iteration (libpq's trace): {trips / iterations:.1f}")
        return trips / iterations


def one_row_commits_per_second(seconds=2.0):
    """The server's ceiling for a chain of commits: one-row INSERTs in autocommit, one
    connection, over the same socket the workload uses (each commit waits for its fsync)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_one_row (n integer)")
    connection.ensure_connection()
    raw = connection.connection
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        raw.execute("INSERT INTO bench_one_row VALUES (%s)", [count])
        if not raw.autocommit:
            raw.commit()
        count += 1
    rate = count / (time.perf_counter() - started)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_one_row")
    return rate


class StatementLog:
    """Every statement SQLite runs for the first iterations, values inlined, kept in a file."""

    def __init__(self, path):
        self.file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.count = 0

    def start(self):
        from django.db import connection

        connection.ensure_connection()
        connection.connection.set_trace_callback(self.write)

    def write(self, sql):
        if not sql.startswith("PRAGMA"):
            self.file.write(sql + "\0")
            self.count += 1

    def stop(self):
        from django.db import connection

        connection.connection.set_trace_callback(None)
        self.file.close()


def sql_floor(statements_path, empty_copy):
    """ms per iteration for the logged statements replayed by plain sqlite3 on an empty copy
    of the database: what the SQL alone costs, with no Python between the statements."""
    from django.conf import settings

    db = sqlite3.connect(empty_copy, isolation_level=None)
    db.executescript(settings.DATABASES["default"]["OPTIONS"]["init_command"])  # as the app
    db.execute("PRAGMA wal_autocheckpoint=0")  # the app checkpoints from another thread
    with open(statements_path, encoding="utf-8") as file:
        statements = [sql for sql in file.read().split("\0") if sql]
    started = time.perf_counter()
    for sql in statements:
        db.execute(sql)
    elapsed = time.perf_counter() - started
    db.close()
    commits = sum(1 for sql in statements if sql.startswith("COMMIT"))
    return elapsed, len(statements), commits


def empty_copy_of(connection, server, stack):
    """A copy, on `server`, of `connection`'s database as it is now (freshly migrated),
    dropped at exit; psycopg's connection parameters for it, as Django connects (server-side
    binding, prepared statements, its adapters), without the pool."""
    from bench.benchlib import scratch_database

    params = connection.get_connection_params()
    params.pop("pool", None)
    connection.close()
    if hasattr(connection, "close_pool"):
        connection.close_pool()  # CREATE DATABASE ... TEMPLATE needs the template unused
    copy = stack.enter_context(scratch_database(server, template=params["dbname"]))
    return {**params, "dbname": copy.rsplit("/", 1)[1]}


def postgres_floor(log, params):
    """Seconds and client CPU seconds for the logged statements replayed by psycopg alone
    on the empty copy: the workload's SQL, round trips and commits with no Python between."""
    import psycopg

    with psycopg.connect(**params, autocommit=True) as raw:
        cpu, started = time.process_time(), time.perf_counter()
        for entry in log.entries:
            if entry[0] == "commit":
                raw.commit()
            elif entry[0] == "rollback":
                raw.rollback()
            else:
                _, sql, values, many, autocommit = entry
                if raw.autocommit != autocommit:
                    raw.autocommit = autocommit  # as Django's atomic() switches it
                cursor = raw.cursor()
                if many:
                    cursor.executemany(sql, values)
                else:
                    cursor.execute(sql, values)
                if cursor.description is not None:
                    cursor.fetchall()
        return time.perf_counter() - started, time.process_time() - cpu


def iteration(domain, n):
    from bookshelf.commands import AddBook, ConfirmOrder, PlaceOrder, ShipOrder

    book_id = domain.process(
        AddBook(title=f"Book {n}", author="Author", isbn="9780743273565", price_amount=12.99)
    )
    order_id = domain.process(
        PlaceOrder(customer_name="Alice", items=[{"book_id": str(book_id), "quantity": 2}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    domain.process(ShipOrder(order_id=order_id))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument(
        "--sqlite-path",
        help="run on this existing database file instead of a fresh one, e.g. one that "
        "inspector_pages.py --sqlite-path loaded with 1M messages: the rate at store size",
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: a fresh database on DATABASE_URL's server, or on a throwaway cluster "
        "when DATABASE_URL is unset (Protean 0.18 with Message DB: 32.9-34.7 iterations/s here)",
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        postgres = args.database == "postgres"
        if postgres:
            from bench.benchlib import scratch_database, throwaway_cluster

            server = os.environ.get("DATABASE_URL")
            if not server:
                server = stack.enter_context(throwaway_cluster())[0]
            setup(database_url=stack.enter_context(scratch_database(server)))
        else:
            setup(args.sqlite_path or str(Path(tmp) / "bench.sqlite3"))
        from django.db import connection

        from bookshelf.domain import domain
        from inspector.models import HandlerRun, Message

        stored_before = Message.objects.count()
        last = Message.objects.order_by("-global_position").first()
        first_new = last.global_position + 1 if last else 0
        runs_before = HandlerRun.objects.exclude(status="succeeded").count()

        statements = trips = None
        if postgres:
            limit = one_row_commits_per_second()
            pg_copy = empty_copy_of(connection, server, stack)
            trips = RoundTrips(str(Path(tmp) / "libpq.trace"))
            trips.start()
        elif not args.sqlite_path:  # a fresh file: keep an empty copy to replay the SQL on
            empty_copy = str(Path(tmp) / "empty.sqlite3")
            shutil.copy(str(Path(tmp) / "bench.sqlite3"), empty_copy)
            statements = StatementLog(str(Path(tmp) / "statements.sql"))
            statements.start()
        logged = min(args.iterations, FLOOR_ITERATIONS)

        if postgres:  # CPU the client and its server process spend: steadier than time
            from bench.benchlib import process_cpu_s

            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                (backend_pid,) = cursor.fetchone()
            cpu_before = (time.process_time(), process_cpu_s(backend_pid))
        durations = []
        started = time.perf_counter()
        for n in range(args.iterations):
            t0 = time.perf_counter()
            iteration(domain, n)
            durations.append(time.perf_counter() - t0)
            if n + 1 == logged:
                if statements is not None:
                    statements.stop()
                if trips is not None:
                    trips.stop()
        elapsed = time.perf_counter() - started
        if postgres:
            client_cpu = time.process_time() - cpu_before[0]
            server_cpu = process_cpu_s(backend_pid) - cpu_before[1]

        stored = Message.objects.count() - stored_before
        events = Message.objects.filter(kind="event", global_position__gte=first_new).count()
        failed = HandlerRun.objects.exclude(status="succeeded").count() - runs_before
        tenth = max(1, len(durations) // 10)
        first, last = sum(durations[:tenth]), sum(durations[-tenth:])
        ordered = sorted(durations)
        print(f"iterations: {args.iterations}")
        print(f"iterations/s: {args.iterations / elapsed:.1f}")
        print(f"events/s: {events / elapsed:.1f}")
        if stored_before:
            print(f"messages in the store before: {stored_before}")
        print(f"messages stored: {stored}")
        print(f"handler runs not succeeded: {failed}")
        print(f"p50 per iteration ms: {statistics.median(ordered) * 1000:.2f}")
        print(f"p99 per iteration ms: {ordered[int(len(ordered) * 0.99) - 1] * 1000:.2f}")
        print(f"peak RSS MB: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
        print(f"last 10% / first 10% throughput: {first / last:.2f}")
        tenths = [
            len(part) / sum(part)
            for part in (durations[i : i + tenth] for i in range(0, 10 * tenth, tenth))
        ]
        print("iterations/s by tenth: " + " ".join(f"{rate:.0f}" for rate in tenths))
        if postgres:
            print("target iterations/s: 100 (Protean 0.18 + Message DB: 32.9-34.7)")
            per_iteration = trips.report(logged)
            print(f"one-row commits/s on this server, 1 connection (limit): {limit:,.0f}")
            commits = trips.commits / logged
            print(f"iterations/s if {commits:.0f} commits were all it cost: {limit / commits:.0f}")
            print(f"round trips/s reached: {per_iteration * args.iterations / elapsed:,.0f}")
            print(
                f"CPU ms per iteration: client {client_cpu * 1000 / args.iterations:.2f}, "
                f"its server process {server_cpu * 1000 / args.iterations:.2f} "
                f"(wall {elapsed * 1000 / args.iterations:.2f})"
            )
            floor_s, floor_cpu = postgres_floor(trips, pg_copy)
            floor_ms = floor_s * 1000 / logged
            print(
                f"SQL floor ms per iteration (the first {logged} iterations' statements and "
                f"commits replayed by psycopg alone): {floor_ms:.2f} "
                f"(of it psycopg's CPU {floor_cpu * 1000 / logged:.2f})"
            )
            print(f"iterations/s the SQL alone allows: {1000 / floor_ms:.0f}")
        else:
            print("target iterations/s: 103-125 today, no regression (Protean 0.18: about 4)")
        if statements is not None:
            floor_s, count, commits = sql_floor(statements.file.name, empty_copy)
            floor_ms = floor_s * 1000 / logged
            per = count / logged
            print(f"SQL statements per iteration: {per:.1f} ({commits / logged:.1f} commits)")
            print(
                f"SQL floor ms per iteration (the first {logged} iterations' statements"
                f" replayed by plain sqlite3): {floor_ms:.2f}"
            )
            print(f"iterations/s the SQL alone allows: {1000 / floor_ms:.0f}")


if __name__ == "__main__":
    main()
