"""The inspector's pages on a big store: 1M messages with their handler runs, p50/p95 per page.

Builds a fresh database (an SQLite file by default; `--postgres` uses a scratch database on
`DATABASE_URL`'s server, else a throwaway cluster as bench/worker_throughput.py starts one),
migrates it and bulk-loads `--messages` messages shaped like the bookshelf's: AddBook → BookAdded
→ InventoryCreated, PlaceOrder → OrderPlaced, ConfirmOrder → OrderConfirmed, ShipOrder →
OrderShipped → StockAdjusted per book, AdjustStock → StockAdjusted, each flow under its own
correlation id, with the stored metadata (causation, origin stream, handler run, aggregate
version) and the handler runs the runtime records: one per command, one per subscribed handler
of each event. About 3% of notification runs fail (most succeed on the retry, some die after
four attempts, each failed attempt kept), shipping runs die on too little stock, and the
newest flows still have failed and pending runs. ~50k streams at 1M messages: 20k orders that
are placed, confirmed and shipped again and again on one stream each, 3,300 books with their
inventories, in five categories; 2,000 customer names in `customer_name`.

The store indexer (inspector/indexer.py) then reads the loaded store as it would in the
background, up to `--tail` messages before the end, and its catch-up time is printed; the
payload searches are timed once with that unindexed tail (what a search scans while the indexer
is that far behind), then the indexer catches up.

Then, in this process, Django's test `Client` logged in as a superuser (DEBUG off) times
`--requests` GETs of each page after one warm-up: the live list `/inspector/`; payload searches
(`customer_name=<a customer>` with type OrderPlaced, with category bookshelf::order and alone,
the common `total_items=1` alone and with type OrderPlaced, and an absent customer with type
OrderPlaced); a stream page and a message page, each request on a different customer, stream or
message; the streams index, the handlers page and /metrics (whole-history counts); and, beside
them, the other inspector pages with fewer requests. Prints one figure a line; for a page whose
p95 is over the target, the slowest queries of one request with their EXPLAIN.

`--store-appends SECONDS` times the store instead of the pages: `--appenders` processes append
as fast as it takes them, and it prints events/s, the appenders' CPU an event and, on
PostgreSQL, the WAL an event wrote.
"""

import argparse
import contextlib
import json
import os
import random
import resource
import signal
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import (  # noqa: E402
    machine_busy_s,
    percentile,
    proc_stat,
    process_cpu_s,
    ratio,
    scratch_database,
    throwaway_cluster,
    without_static_manifest,
)

P95_TARGET_MS = 50
METRICS_TARGET_MS = 100  # /metrics: a scrape, not a page
FIRST = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy"]
FIRST += ["Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Uma", "Victor"]
FIRST += ["Walter", "Xena", "Yusuf", "Zoe", "Amara", "Bilal", "Chen", "Dara", "Emeka", "Farah"]
FIRST += ["Goran", "Hana", "Ines", "Jonas", "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya"]
FIRST += ["Quinn", "Rosa", "Sami", "Tariq", "Ugo", "Vera", "Wen", "Yara", "Zane", "Aiko"]
LAST = ["Smith", "Jones", "Garcia", "Müller", "Rossi", "Dubois", "Kowalski", "Nakamura"]
LAST += ["Okafor", "Silva", "Novak", "Haddad", "Kim", "Larsen", "Moreau", "Petrov", "Quispe"]
LAST += ["Reyes", "Sato", "Tanaka", "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zhang", "Abebe"]
LAST += ["Berg", "Costa", "Diallo", "Eriksen", "Fischer", "Gupta", "Hughes", "Ito", "Jensen"]
LAST += ["Khan", "Lopez", "Mensah"]
WORDS = ["Silent", "Winter", "Garden", "River", "Glass", "Paper", "Iron", "Hidden", "Last"]
WORDS += ["Northern", "Distant", "Golden", "Broken", "Secret", "Wild", "Quiet", "Burning"]
NOUNS = ["House", "Road", "Sea", "Clock", "Letters", "Kingdom", "Orchard", "Harbour", "Map"]
NOUNS += ["Lantern", "Forest", "City", "Island", "Voyage", "Archive", "Station"]
TRACEBACK = """Traceback (most recent call last):
  File "/app/inspector/dispatch.py", line 171, in execute
    result = method(handler, event)
             ^^^^^^^^^^^^^^^^^^^^^^
  File "/app/bookshelf/handlers.py", line {line}, in {method}
    {call}
  File "/app/bookshelf/{module}.py", line {inner}, in {inner_fn}
    raise {short}(
{error}: {message}
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="Messages to load.")
    parser.add_argument("--requests", type=int, default=50, help="Timed GETs per page.")
    parser.add_argument(
        "--other-requests", type=int, default=5, help="Timed GETs of each other page (0 skips)."
    )
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite.")
    parser.add_argument(
        "--postgres-database",
        metavar="URL",
        help="With --postgres: this database, kept (an already loaded one is reused).",
    )
    parser.add_argument(
        "--sqlite-path",
        help="Build the SQLite database here and keep it; an already loaded file is reused.",
    )
    parser.add_argument("--analyze", action="store_true", help="Run ANALYZE on SQLite first.")
    parser.add_argument(
        "--tail",
        type=int,
        default=2000,
        help="Messages left to the indexer when the payload searches are first timed (0 skips).",
    )
    parser.add_argument(
        "--offered",
        type=int,
        default=1000,
        help="Events/s appended while the pages are timed again, with the store indexer "
        "running on its own (0 skips that phase).",
    )
    parser.add_argument(
        "--load-only",
        action="store_true",
        help="Load (and index) the database, then stop: with --postgres-database or "
        "--sqlite-path, to time it later.",
    )
    parser.add_argument(
        "--appenders", type=int, default=2, help="Processes that share the --offered rate."
    )
    parser.add_argument(
        "--store-appends",
        type=float,
        default=0,
        metavar="SECONDS",
        help="Instead of timing the pages: --appenders processes append as fast as the store "
        "takes them, 25-event commits, for this long (the store's own append rate).",
    )
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--appender", type=int, help=argparse.SUPPRESS)  # the phase's child
    return parser.parse_args(argv)


def log(text):
    print(f"inspector_pages: {text}", file=sys.stderr, flush=True)


# The workload's shape -----------------------------------------------------------------------


MESSAGE_COLUMNS = (
    "id",
    "kind",
    "type",
    "stream",
    "category",
    "position",
    "global_position",
    "data",
    "metadata",
    "correlation_id",
    "causation_id",
    "time",
)
RUN_COLUMNS = (
    "id",
    "message_id",
    "handler",
    "message_type",
    "stream",
    "position",
    "global_position",
    "status",
    "attempts",
    "available_at",
    "claimed_by",
    "lease_expires_at",
    "started_at",
    "finished_at",
    "duration_us",
    "error_type",
    "error_message",
    "traceback",
    "raised_message_ids",
    "created_at",
    "updated_at",
    "failure_group",
    "edit_id",
)
ATTEMPT_COLUMNS = (
    "run_id",
    "number",
    "worker",
    "started_at",
    "finished_at",
    "duration_us",
    "error_type",
    "error_message",
    "traceback",
)
NOTIFY_FAILS = 0.03  # share of notification runs whose first attempt fails
NOTIFY_DIES = 0.2  # of those, the share that fail all four attempts
RETRIES = 3
WORKER = "worker-bench-1"


class Written:
    """A message as written: what its runs and the messages it causes need to know."""

    __slots__ = ("id", "type", "stream", "position", "global_position", "time")

    def __init__(self, id, type, stream, position, global_position, time):
        self.id = id
        self.type = type
        self.stream = stream
        self.position = position
        self.global_position = global_position
        self.time = time


class Workload:
    """Generates the bookshelf's flows as rows ready for the database, in global order."""

    def __init__(self, *, messages, seed, vendor, now):
        self.rng = random.Random(seed)
        self.target = messages
        self.sqlite = vendor == "sqlite"
        scale = messages / 1_000_000
        # Flows (2.55 messages each on average) are spread over the 30 days before yesterday;
        # a flow's own steps take milliseconds.
        self.clock = now - timedelta(days=31)
        self.flow_step = timedelta(days=30) / (messages / 2.55)
        self.customers = [f"{f} {last}" for last in LAST for f in FIRST][:2000]
        self.books = []
        for _ in range(max(20, round(3300 * scale))):
            title = f"The {self.rng.choice(WORDS)} {self.rng.choice(NOUNS)}"
            self.books.append(
                {
                    "id": self.uuid(),
                    "inventory": self.uuid(),
                    "command_stream": f"bookshelf::book:command-{self.uuid()}",
                    "title": title,
                    "author": self.rng.choice(self.customers),
                    "stock": 10,
                    "version": 0,
                    "price": round(self.rng.uniform(4, 60), 2),
                }
            )
        self.orders = [
            {
                "id": self.uuid(),
                "customer": self.rng.choice(self.customers),
                "step": 0,
                "version": 0,
                "items": [],
            }
            for _ in range(max(100, round(20000 * scale)))
        ]
        self.positions = {}
        self.global_position = 0
        self.flows = 0
        self.messages, self.runs, self.attempts = [], [], []
        self.groups = {}  # (handler, error type) -> failure group key

    # Values as each database takes them (the ORM's own adaptation, without its per-row cost).

    def uuid(self):
        """A UUIDv7 at the workload's clock, shaped as the runtime makes them
        (inspector/domain/identity.py): 48 bits of milliseconds, then random bits."""
        value = int(self.clock.timestamp() * 1000) << 80 | self.rng.getrandbits(80)
        value = value & ~(0xF << 76) | 7 << 76  # version 7
        return uuid.UUID(int=value & ~(0x3 << 62) | 0x2 << 62)  # RFC 9562's variant

    def u(self, value):
        if value is None:
            return None
        return value.hex if self.sqlite else value

    def t(self, value):
        if value is None:
            return None
        return str(value.replace(tzinfo=None)) if self.sqlite else value

    def j(self, value):
        return json.dumps(value)

    # Rows ---------------------------------------------------------------------------------------

    def message(self, kind, name, stream, data, *, at, cause=None, origin=None, run=None, **extra):
        position = self.positions.get(stream, 0)
        self.positions[stream] = position + 1
        message_id = self.uuid()
        correlation = self.correlation
        metadata = {
            "correlation_id": str(correlation),
            "causation_id": str(cause.id) if cause else None,
            "origin_stream": origin,
            "handler_run_id": str(run) if run else None,
            "aggregate_version": extra.get("version"),
        }
        type_name = f"bookshelf.{name}.v1"
        self.messages.append(
            (
                self.u(message_id),
                kind,
                type_name,
                stream,
                stream.partition("-")[0],
                position,
                self.global_position,
                self.j(data),
                self.j(metadata),
                self.u(correlation),
                self.u(cause.id) if cause else None,
                self.t(at),
            )
        )
        written = Written(message_id, type_name, stream, position, self.global_position, at)
        self.global_position += 1
        return written

    def run(self, message, handler, *, run_id=None, raised=(), fails=0, dies=False, waiting=False):
        """One handler run: `fails` failed attempts first, then success, death, or a retry due."""
        run_id = run_id or self.uuid()
        if dies:
            fails = fails or RETRIES + 1  # a dead run failed every attempt it had
        created = message.time
        at = created + timedelta(microseconds=self.rng.randint(200, 2000))
        started = finished = duration = None
        for number in range(1, fails + 1):
            duration = self.rng.randint(800, 9000)
            started, finished = at, at + timedelta(microseconds=duration)
            error_type, error_message, traceback = self.error(handler)
            self.attempts.append(
                (
                    self.u(run_id),
                    number,
                    WORKER,
                    self.t(started),
                    self.t(finished),
                    duration,
                    error_type,
                    error_message,
                    traceback,
                )
            )
            at = finished + timedelta(seconds=min(300, 2 ** (number - 1)))  # backoff
        attempts, available, status, error = fails, created, "succeeded", ("", "", "")
        if dies:
            status, error = "dead", self.error(handler)
        elif waiting:  # the newest flows: a retry is due later, or no worker got to it yet
            status, error = ("failed", self.error(handler)) if fails else ("pending", error)
            available, started, finished, duration = at, None, None, None
        else:
            attempts += 1
            duration = self.rng.randint(400, 12000)
            started, finished = at, at + timedelta(microseconds=duration)
        updated = finished or created
        self.runs.append(
            (
                self.u(run_id),
                self.u(message.id),
                handler,
                message.type,
                message.stream,
                message.position,
                message.global_position,
                status,
                attempts,
                self.t(available),
                "",  # claimed_by: nobody holds a finished or waiting run
                None,  # lease_expires_at
                self.t(started),
                self.t(finished),
                duration,
                *error,
                self.j([str(m.id) for m in raised] if status == "succeeded" else []),
                self.t(created),
                self.t(updated),
                self.group(handler, *error) if status in ("failed", "dead") else "",
                None,  # edit_id: no run here replays an edited payload
            )
        )

    def group(self, handler, error_type, message, traceback):
        """The failure group dispatch would record (the store indexer writes its row)."""
        from inspector.runtime.failures import failure_group

        key = (handler, error_type)
        if key not in self.groups:
            self.groups[key] = failure_group(
                handler=handler, error_type=error_type, message=message, traceback_text=traceback
            )
        return self.groups[key]

    def error(self, handler):
        if handler.endswith("NotificationHandler"):
            recipient = "customers@bookshelf.local"
            message = (
                f"Mail gateway refused the message to {recipient} "
                "(simulated outage, INSPECTOR_DEMO_FAILURE_RATE=0.05)"
            )
            error = "bookshelf.notifications.GatewayError"
            trace = TRACEBACK.format(
                line=160,
                method="on_order_shipped",
                call="_notify(event, 'shipped', ...)",
                module="notifications",
                inner=24,
                inner_fn="send",
                short="GatewayError",
                error=error,
                message=message,
            )
        else:
            message = "Not enough stock of 'The Book': 1 in stock, 2 requested"
            error = "inspector.exceptions.DomainError"
            trace = TRACEBACK.format(
                line=105,
                method="on_order_shipped",
                call="stock[book_id].adjust_stock(-quantity)",
                module="models",
                inner=184,
                inner_fn="adjust_stock",
                short="DomainError",
                error=error,
                message=message,
            )
        return error, message, trace

    # Flows ------------------------------------------------------------------------------------

    def ms(self, low=0.3, high=4.0):
        return timedelta(milliseconds=self.rng.uniform(low, high))

    def begin_flow(self):
        self.flows += 1
        self.clock += self.flow_step * self.rng.uniform(0.5, 1.5)
        self.correlation = self.uuid()
        self.recent = self.global_position > self.target - 400  # the newest flows: unfinished
        return self.clock

    def command(self, handler, name, stream, data, event_name, event_stream, event_data, version):
        """A command, its handler's run, and the one event the handler raised."""
        at = self.begin_flow()
        command = self.message("command", name, stream, data, at=at)
        run_id = self.uuid()
        event = self.message(
            "event",
            event_name,
            event_stream,
            event_data,
            at=at + self.ms(1, 6),
            cause=command,
            origin=stream,
            run=run_id,
            version=version,
        )
        self.run(command, f"bookshelf.{handler}", run_id=run_id, raised=[event])
        return command, event

    def notification_run(self, event):
        if self.recent and self.rng.random() < 0.5:
            fails = 1 if self.rng.random() < 0.3 else 0
            self.run(event, "bookshelf.OrderNotificationHandler", fails=fails, waiting=True)
        elif self.rng.random() < NOTIFY_FAILS:
            dies = self.rng.random() < NOTIFY_DIES
            fails = RETRIES + 1 if dies else self.rng.randint(1, RETRIES)
            self.run(event, "bookshelf.OrderNotificationHandler", fails=fails, dies=dies)
        else:
            self.run(event, "bookshelf.OrderNotificationHandler")

    def add_book(self, book):
        book["version"] = 1
        data = {
            "title": book["title"],
            "author": book["author"],
            "isbn": f"978{self.rng.randrange(10**10):010d}",
            "price_amount": book["price"],
            "description": None,
        }
        added = {
            "book_id": str(book["id"]),
            "title": book["title"],
            "author": book["author"],
            "price_amount": book["price"],
        }
        command, event = self.command(
            "BookCommandHandler",
            "AddBook",
            book["command_stream"],
            data,
            "BookAdded",
            f"bookshelf::book-{book['id']}",
            added,
            1,
        )
        run_id = self.uuid()
        created = self.message(
            "event",
            "InventoryCreated",
            f"bookshelf::inventory-{book['inventory']}",
            {"book_id": str(book["id"]), "title": book["title"], "quantity": book["stock"]},
            at=event.time + self.ms(1, 5),
            cause=event,
            origin=command.stream,
            run=run_id,
            version=1,
        )
        book["inventory_version"] = 1
        self.run(event, "bookshelf.BookEventHandler", run_id=run_id, raised=[created])

    def adjust_stock(self, book, amount):
        book["stock"] += amount
        book["inventory_version"] += 1
        self.command(
            "InventoryCommandHandler",
            "AdjustStock",
            f"bookshelf::inventory:command-{book['id']}",
            {"book_id": str(book["id"]), "amount": amount},
            "StockAdjusted",
            f"bookshelf::inventory-{book['inventory']}",
            {
                "book_id": str(book["id"]),
                "title": book["title"],
                "amount": amount,
                "quantity": book["stock"],
            },
            book["inventory_version"],
        )

    def order_step(self, order):
        stream = f"bookshelf::order-{order['id']}"
        commands = f"bookshelf::order:command-{order['id']}"
        order_id = str(order["id"])
        step, order["step"] = order["step"], (order["step"] + 1) % 3
        order["version"] += 1
        if step == 0:
            books = self.rng.sample(self.books, self.rng.choice((1, 1, 1, 2, 2, 3)))
            order["items"] = [(book, self.rng.choice((1, 1, 2, 3))) for book in books]
            email = self.rng.choice((None, f"{order['customer'].split()[0].lower()}@example.com"))
            self.command(
                "OrderCommandHandler",
                "PlaceOrder",
                commands,
                {
                    "customer_name": order["customer"],
                    "customer_email": email,
                    "items": [{"book_id": str(b["id"]), "quantity": q} for b, q in order["items"]],
                },
                "OrderPlaced",
                stream,
                {
                    "order_id": order_id,
                    "customer_name": order["customer"],
                    "total_items": sum(q for _, q in order["items"]),
                },
                order["version"],
            )
        elif step == 1:
            _, event = self.command(
                "OrderCommandHandler",
                "ConfirmOrder",
                commands,
                {"order_id": order_id},
                "OrderConfirmed",
                stream,
                {"order_id": order_id, "customer_name": order["customer"]},
                order["version"],
            )
            self.notification_run(event)
        else:
            for book, quantity in order["items"]:
                if book["stock"] < quantity and self.rng.random() < 0.9:
                    self.adjust_stock(book, self.rng.choice((20, 30, 50)))
            items = [
                {"book_id": str(b["id"]), "book_title": b["title"], "quantity": q}
                for b, q in order["items"]
            ]
            command, event = self.command(
                "OrderCommandHandler",
                "ShipOrder",
                commands,
                {"order_id": order_id},
                "OrderShipped",
                stream,
                {"order_id": order_id, "customer_name": order["customer"], "items": items},
                order["version"],
            )
            run_id = self.uuid()
            if all(book["stock"] >= quantity for book, quantity in order["items"]):
                raised, at = [], event.time + self.ms(1, 4)
                for book, quantity in order["items"]:
                    book["stock"] -= quantity
                    book["inventory_version"] += 1
                    at += self.ms(0.2, 1.5)
                    raised.append(
                        self.message(
                            "event",
                            "StockAdjusted",
                            f"bookshelf::inventory-{book['inventory']}",
                            {
                                "book_id": str(book["id"]),
                                "title": book["title"],
                                "amount": -quantity,
                                "quantity": book["stock"],
                            },
                            at=at,
                            cause=event,
                            origin=command.stream,
                            run=run_id,
                            version=book["inventory_version"],
                        )
                    )
                self.run(event, "bookshelf.InventoryEventHandler", run_id=run_id, raised=raised)
            else:  # too little stock: the run dies, nothing is adjusted
                self.run(event, "bookshelf.InventoryEventHandler", run_id=run_id, dies=True)
            self.notification_run(event)

    def chunks(self, flows_per_chunk=5000):
        """Yield (messages, runs, attempts) row lists until the target is reached."""
        for book in self.books:  # the catalogue comes first
            self.add_book(book)
        while self.global_position < self.target:
            for _ in range(flows_per_chunk):
                if self.global_position >= self.target:
                    break
                if self.rng.random() < 0.02:
                    self.adjust_stock(self.rng.choice(self.books), self.rng.choice((5, 10, 20)))
                else:
                    self.order_step(self.rng.choice(self.orders))
            yield self.messages, self.runs, self.attempts
            self.messages, self.runs, self.attempts = [], [], []


# CPU accounting: was the machine busy with someone else's work? ---------------------------

SERVER_PIDS = []  # the throwaway cluster's postmaster: its CPU is this benchmark's own


def own_cpu_s():
    """CPU seconds of this process and of the cluster's server processes, if it started one."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    if SERVER_PIDS:
        for entry in Path("/proc").iterdir():
            fields = entry.name.isdigit() and proc_stat(entry.name)
            if fields and (int(entry.name) in SERVER_PIDS or int(fields[1]) in SERVER_PIDS):
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_counters():
    return machine_busy_s(), own_cpu_s()


def report_cpu(before, after, wall, what):
    machine, ours = ((a - b) / wall for a, b in zip(after, before, strict=True))
    print(
        f"CPU busy during {what}, cores of {os.cpu_count()}: all {machine:.2f},"
        f" this benchmark {ours:.2f}, other processes {max(0.0, machine - ours):.2f}"
    )


# The store indexer under offered load -------------------------------------------------------

# Each appender commits every 50 ms, rate × APPEND_TICK events each time. Commits of one store
# are ordered by its global position counter's row lock, held to the commit, so small
# transactions cap what all appenders together can write: 10-event commits every 10 ms from
# three processes reached 364 events/s at 10M messages (each commit waited ~8 ms for the
# server), 50 ms ones do not.
APPEND_TICK = 0.05
FLAT_OUT_BATCH = 25  # events a commit when appending flat out (--store-appends)
LAG_SAMPLE = 0.25  # seconds between looks at how far the indexer is behind
DRAIN_TIMEOUT = 300


def append_offered(rate):
    """The `--appender` child: appends OrderPlaced events to new order streams at `rate` a
    second until SIGTERM, open loop (a commit every APPEND_TICK whatever the last one took,
    as many producers would), then prints what it appended as JSON. The events go to the
    store without handler runs: what is offered is the indexer's input, not the workers'.
    Rate 0: FLAT_OUT_BATCH events a commit, one commit after another."""
    import django

    django.setup()
    from django.db import transaction
    from django.utils import timezone

    from bookshelf.events import OrderPlaced
    from inspector.domain.identity import new_id
    from inspector.runtime import store
    from inspector.runtime.unit_of_work import Cause

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    rng = random.Random(7)
    customers = [f"{first} {last}" for last in LAST for first in FIRST][:2000]
    per_tick = max(1, round(rate * APPEND_TICK)) if rate else FLAT_OUT_BATCH
    appended = late = tick = 0
    print("ready", flush=True)
    started, cpu = time.perf_counter(), time.process_time()
    while not stopping:
        if rate:  # flat out (rate 0) neither waits nor falls behind
            pause = started + tick * APPEND_TICK - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            elif pause < -APPEND_TICK:
                late += 1
        tick += 1
        entries = []
        for _ in range(per_tick):
            order = new_id()  # as an Order added through the domain gets
            event = OrderPlaced(
                order_id=order, customer_name=rng.choice(customers), total_items=rng.randint(1, 4)
            )
            entries.append(
                store.NewMessage(
                    message=event,
                    stream=f"bookshelf::order-{order}",
                    metadata=Cause.root().metadata(aggregate_version=1),
                    new_stream=True,
                    time=timezone.now(),
                )
            )
        with transaction.atomic():
            store.append(entries)
        appended += per_tick
    elapsed = time.perf_counter() - started
    said = {"appended": appended, "seconds": elapsed, "late_ticks": late}
    print(json.dumps({**said, "cpu_s": time.process_time() - cpu}), flush=True)


class OfferedLoad:
    """`manage.py index_store`, `appenders` appender children offering `rate` events/s in
    all (0: each as fast as the store takes them), and a thread that samples how many stored
    messages the indexer has not read yet. Without `indexer`, only the appenders."""

    def __init__(self, rate, appenders, *, indexer=True):
        self.rate = rate
        self.count = appenders
        self.with_indexer = indexer
        self.lags = []  # (seconds since start, messages behind)
        self.children = []

    def __enter__(self):
        import subprocess
        import threading

        self.indexer = None
        if self.with_indexer:
            self.indexer = subprocess.Popen(
                [sys.executable, "manage.py", "index_store"], cwd=ROOT, stdout=subprocess.DEVNULL
            )
        self.appenders = [
            subprocess.Popen(
                [sys.executable, __file__, "--appender", str(round(self.rate / self.count))],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(self.count)
        ]
        self.children = [c for c in (self.indexer, *self.appenders) if c is not None]
        for appender in self.appenders:
            if appender.stdout.readline().strip() != "ready":
                raise SystemExit("inspector_pages: an appender did not start")
        self.started = time.monotonic()
        self.sampling = self.indexer is not None
        if self.sampling:
            self.indexer_cpu = process_cpu_s(self.indexer.pid)  # its start-up, left out
            self.sampler = threading.Thread(target=self._sample, daemon=True)
            self.sampler.start()
        return self

    def _sample(self):
        from django.db import connection

        try:
            while self.sampling:
                self.lags.append((time.monotonic() - self.started, indexer_behind()))
                time.sleep(LAG_SAMPLE)
        finally:
            connection.close()

    def stop_appending(self):
        """Stop the appenders; returns what they said (appended, seconds, late ticks)."""
        for appender in self.appenders:
            appender.send_signal(signal.SIGTERM)
        said = [
            json.loads(appender.communicate(timeout=60)[0].strip().splitlines()[-1])
            for appender in self.appenders
        ]
        self.appended_at = time.monotonic()
        return {
            "appended": sum(one["appended"] for one in said),
            "seconds": max(one["seconds"] for one in said),
            "late_ticks": sum(one["late_ticks"] for one in said),
            "cpu_s": sum(one["cpu_s"] for one in said),
        }

    def drain(self):
        """Seconds the indexer took, after the last append, to have read everything."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while indexer_behind() > 0:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
        return time.monotonic() - self.appended_at

    def __exit__(self, *exc):
        if self.sampling:
            self.sampling = False
            self.sampler.join(timeout=5)
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=30)
                except Exception:
                    child.kill()


def run_offered_load(args, client, picks, slow):
    """The issue's pages timed again while `--offered` events/s are appended and the store
    indexer follows them on its own; prints the pages' p95 and how far behind it fell."""
    print(
        f"with {args.offered:,} events/s offered (OrderPlaced, {args.appenders} appender "
        f"processes, each committing every {APPEND_TICK * 1000:.0f} ms) and the store indexer "
        "in its own process:"
    )
    with OfferedLoad(args.offered, args.appenders) as load:
        cpu, started = cpu_counters(), time.monotonic()
        time.sleep(3.0)  # the indexer's first steps and the appender's pace settle
        for name, urls in page_urls(picks, max(args.requests // 2, 10)).items():
            durations, statuses, sizes, slowest = time_page(client, urls)
            if report_page(f"  {name}", durations, statuses, sizes) > 1:
                slow[f"{name} (offered load)"] = slowest
        appended = load.stop_appending()
        wall = time.monotonic() - started
        drained = load.drain()
        indexer_cpu = process_cpu_s(load.indexer.pid) - load.indexer_cpu
    report_cpu(cpu, cpu_counters(), wall, "the offered load")
    rate = appended["appended"] / appended["seconds"]
    print(
        f"  appended: {appended['appended']:,} events in {appended['seconds']:.1f} s "
        f"({rate:,.0f}/s of {args.offered:,} offered; {appended['late_ticks']} commits late)"
    )
    behind = sorted(lag for _, lag in load.lags)
    if behind:
        half = [lag for at, lag in load.lags if at >= wall / 2]
        print(
            f"  indexer behind, messages: p50 {percentile(behind, 0.5):,.0f}, "
            f"p95 {percentile(behind, 0.95):,.0f}, max {behind[-1]:,} "
            f"(second half's max {max(half or [0]):,}; {len(behind)} looks, "
            f"{LAG_SAMPLE * 1000:.0f} ms apart; its poll is 1 s)"
        )
    print(
        f"  indexer read the last append after: {drained:.1f} s"
        if drained is not None
        else f"  indexer NOT caught up {DRAIN_TIMEOUT} s after the last append"
    )
    print(
        f"  indexer CPU: {indexer_cpu:.1f} s over {wall:.1f} s "
        f"({indexer_cpu / max(1, appended['appended']) * 1e6:.0f} µs a message offered); "
        f"target: keeps up (behind stays bounded, no growth from first half to second)"
    )


def run_store_appends(args):
    """The store's own append rate: `--appenders` processes appending as fast as it takes
    them, with no indexer and no pages; on PostgreSQL also the WAL each event cost, whose
    full-page images tell how many index pages an append dirtied for the first time since the
    last checkpoint (the random ones, in a store bigger than memory)."""
    from django.db import connection

    def wal():
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal")
            return cursor.fetchone()

    print(
        f"store appends: {args.appenders} appender processes, {FLAT_OUT_BATCH}-event commits "
        f"(OrderPlaced to new order streams) as fast as the store takes them, for "
        f"{args.store_appends:.0f} s; no indexer, no pages:"
    )
    before, cpu, started = wal(), cpu_counters(), time.monotonic()
    with OfferedLoad(0, args.appenders, indexer=False) as load:
        time.sleep(args.store_appends)
        appended = load.stop_appending()
    after = wal()
    report_cpu(cpu, cpu_counters(), time.monotonic() - started, "the appends (their start-up too)")
    count = max(1, appended["appended"])
    rate = count / appended["seconds"]
    print(
        f"  appended: {count:,} events in {appended['seconds']:.1f} s: {rate:,.0f} events/s "
        f"(the issue offers 1,000/s: {ratio(rate, 1000)}); the appenders' CPU "
        f"{appended['cpu_s'] / count * 1e6:.0f} µs an event"
    )
    if before is not None:
        records, images, size = (float(a - b) / count for a, b in zip(after, before, strict=True))
        print(
            f"  WAL an event: {records:.1f} records, {images:.2f} full-page images, "
            f"{size:,.0f} bytes"
        )


# PostgreSQL (as bench/worker_throughput.py and scripts/test-all start one) -------------------


# Loading ------------------------------------------------------------------------------------


def check_columns():
    """The bench writes raw rows: fail loudly if the models' columns moved on."""
    from inspector.models import HandlerAttempt, HandlerRun, Message

    for model, columns in (
        (Message, MESSAGE_COLUMNS),
        (HandlerRun, RUN_COLUMNS),
        (HandlerAttempt, ("id", *ATTEMPT_COLUMNS)),
    ):
        actual = {f.column for f in model._meta.concrete_fields}
        if actual != set(columns):
            changed = sorted(actual ^ set(columns))
            raise SystemExit(f"inspector_pages: {model.__name__} columns changed: {changed}")


def load(args):
    """Bulk-insert the workload; returns (messages, runs, attempts, seconds)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from inspector.models import StoreSequence

    check_columns()
    workload = Workload(
        messages=args.messages, seed=args.seed, vendor=connection.vendor, now=timezone.now()
    )
    tables = (
        ("inspector_message", MESSAGE_COLUMNS),
        ("inspector_handlerrun", RUN_COLUMNS),
        ("inspector_handlerattempt", ATTEMPT_COLUMNS),
    )
    counts = [0, 0, 0]
    started = time.perf_counter()
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA cache_size = -1000000")  # 1 GB for the load's index pages
    for rows in workload.chunks():
        with transaction.atomic(), connection.cursor() as cursor:
            for (table, columns), batch in zip(tables, rows, strict=True):
                if connection.vendor == "postgresql":
                    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                    with cursor.cursor.copy(sql) as copy:
                        for row in batch:
                            copy.write_row(row)
                else:
                    marks = ", ".join(["%s"] * len(columns))
                    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                    cursor.executemany(sql, batch)
        for n, batch in enumerate(rows):
            counts[n] += len(batch)
        log(f"loaded {counts[0]:,} messages, {counts[1]:,} runs")
    StoreSequence.objects.update_or_create(
        name="global", defaults={"value": workload.global_position - 1}
    )
    return (*counts, time.perf_counter() - started, len(workload.positions))


def settle_database(args):
    """What a live database would have by now: statistics on PostgreSQL; SQLite as the app is."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Autovacuum analyzes and vacuums a table this size within a minute of the load.
            cursor.execute("VACUUM ANALYZE")
            return "VACUUM ANALYZE after the load (as autovacuum would)"
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if args.analyze:
            cursor.execute("ANALYZE")
            return "ANALYZE run (--analyze)"
        return "no ANALYZE (the app never runs it)"


def catch_up(leave=0):
    """Run the store indexer as its thread would, stopping `leave` messages before the end."""
    from inspector.models import Message
    from inspector.readmodel import indexer

    last = Message.objects.order_by("-global_position").values_list("global_position", flat=True)
    stop = (last.first() or 0) - leave
    total, batch = 0, 10 * indexer.BATCH  # catch-up batches: fewer, longer transactions
    while True:
        position = indexer_position()
        if position >= stop:
            return total
        step = indexer.read_step(batch=min(batch, stop - position))
        if not indexer.apply_step(step):
            return total
        total += step.messages


def indexer_position():
    from inspector.readmodel.payload_index import indexed_position

    return indexed_position()


def indexer_behind():
    from inspector.models import Message

    return Message.objects.filter(global_position__gt=indexer_position()).count()


def index_rows():
    from inspector.readmodel.indexer import INDEX_TABLES

    return ", ".join(f"{m.__name__} {m.objects.count():,}" for m in INDEX_TABLES)


def database_size():
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_database_size(current_database())")
            return cursor.fetchone()[0]
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute("PRAGMA page_size")
        return pages * cursor.fetchone()[0]


# Timing -------------------------------------------------------------------------------------


def samples(rng, count):
    """What the timed requests ask for: customers, streams and messages picked at random."""
    from inspector.models import Message

    last = Message.objects.order_by("-global_position").values_list("global_position", flat=True)
    last = last.first()
    positions = [rng.randint(0, last) for _ in range(count * 4)]
    picked = list(
        Message.objects.filter(global_position__in=positions).values_list(
            "id", "stream", "data", "correlation_id"
        )
    )
    rng.shuffle(picked)
    customers = sorted(
        {
            d["customer_name"]
            for _, _, d, _ in picked
            if isinstance(d, dict) and "customer_name" in d
        }
    )
    return {
        "messages": [str(pk) for pk, _, _, _ in picked],
        "flows": list(dict.fromkeys(str(flow) for _, _, _, flow in picked)),
        "streams": list(dict.fromkeys(stream for _, stream, _, _ in picked)),
        "customers": rng.sample(customers, len(customers)),
        "middle": last // 2,  # a keyset cursor halfway down the store
    }


def page_urls(picks, count):
    """{page: [url per request]}, one more than `count` for the warm-up."""

    def cycle(values, n):
        return [values[i % len(values)] for i in range(n)]

    n = count + 1
    return {
        "live list /inspector/": ["/inspector/"] * n,
        **search_urls(picks, n),
        "stream page": [
            f"/inspector/streams/stream/{quote(s, safe=':')}/" for s in cycle(picks["streams"], n)
        ],
        "message page": [f"/inspector/messages/{m}/" for m in cycle(picks["messages"], n)],
        "flow page": [f"/inspector/flows/{c}/" for c in cycle(picks["flows"], n)],
        "streams index /inspector/streams/": ["/inspector/streams/"] * n,
        "handlers /inspector/handlers/": ["/inspector/handlers/"] * n,
        "metrics /metrics": ["/metrics"] * n,
    }


def cycle(values, n):
    return [values[i % len(values)] for i in range(n)]


def search_urls(picks, n):
    """{name: [url per request]} of the payload searches: a customer (~100 orders each), a
    common value (~40% of orders), a customer nobody is; with and without type or category."""

    def search(**params):
        return "/inspector/search/?" + urlencode(params)

    customers = cycle(picks["customers"], n)
    absent = [f"Nobody {i}" for i in range(n)]
    return {
        "search type + customer_name": [
            search(type="OrderPlaced", field=f"customer_name={c}") for c in customers
        ],
        "search category + customer_name": [
            search(category="bookshelf::order", field=f"customer_name={c}") for c in customers
        ],
        "search customer_name alone": [search(field=f"customer_name={c}") for c in customers],
        "search total_items=1 (common) alone": [search(field="total_items=1")] * n,
        "search type + total_items=1 (common), page 2": [
            search(type="OrderPlaced", field="total_items=1", after=picks["middle"])
        ]
        * n,
        "search type + absent customer_name": [
            search(type="OrderPlaced", field=f"customer_name={c}") for c in absent
        ],
    }


def other_page_urls(picks, count):
    n = count + 1
    order = next(s for s in picks["streams"] if s.startswith("bookshelf::order-"))
    flow = picks["messages"][0]
    customer = picks["customers"][0]
    from inspector.models import FailureGroup

    group = FailureGroup.objects.order_by("-dead").values_list("key", flat=True).first()
    return {
        "failures /inspector/failures/": ["/inspector/failures/"] * n,
        **({"failure group page": [f"/inspector/failures/{group}/"] * n} if group else {}),
        "category page (bookshelf::order)": ["/inspector/streams/category/bookshelf::order/"] * n,
        "workflow map /inspector/map/": ["/inspector/map/"] * n,
        "search, one stream": ["/inspector/search/?" + urlencode({"stream": order})] * n,
        "search, failed runs": ["/inspector/search/?run_status=failed"] * n,
        "search, failed runs + total_items=1": [
            "/inspector/search/?" + urlencode({"run_status": "failed", "field": "total_items=1"})
        ]
        * n,
        "search, succeeded runs + customer_name": [
            "/inspector/search/?"
            + urlencode({"run_status": "succeeded", "field": f"customer_name={customer}"})
        ]
        * n,
        "message diagram.svg": [f"/inspector/messages/{flow}/diagram.svg"] * n,
    }


def time_page(client, urls):
    """Warm up on the first URL, then time the rest: (sorted ms, statuses, sizes, slowest URL).
    A page that does not answer 200 stops the benchmark: its time would mean nothing."""
    warm_up = client.get(urls[0])
    if warm_up.status_code != 200:
        raise SystemExit(f"inspector_pages: {urls[0]} answered HTTP {warm_up.status_code}")
    durations, statuses, sizes = [], {}, []
    for url in urls[1:]:
        started = time.perf_counter()
        response = client.get(url)
        durations.append(((time.perf_counter() - started) * 1000, url))
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        sizes.append(len(response.content))
    durations.sort()
    return [ms for ms, _ in durations], statuses, sizes, durations[-1][1]


def target_of(name):
    return METRICS_TARGET_MS if "/metrics" in name else P95_TARGET_MS


def report_page(name, durations, statuses, sizes):
    p50, p95 = percentile(durations, 0.5), percentile(durations, 0.95)
    status = ", ".join(f"{code}×{n}" for code, n in sorted(statuses.items()))
    target = target_of(name)
    print(
        f"{name} p50 ms: {p50:.1f} | p95 ms: {p95:.1f} | target p95 ≤ {target}:"
        f" {ratio(p95, target)} | max ms: {durations[-1]:.1f}"
        f" ({len(durations)} requests, HTTP {status}, {sum(sizes) // len(sizes) // 1024} KB avg)"
    )
    return p95 / target


def explain(client, name, url, top=3):
    """Where one request of a page spends its time: its slowest queries with their plans, then
    the project's functions by cumulative time (a page can be slow outside the database)."""
    import cProfile
    import io
    import pstats

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        client.get(url)
        total = (time.perf_counter() - started) * 1000
    # SQLite returns from execute() at the first row and does the work while rows are fetched,
    # so each query is run again here and timed with all of its rows fetched.
    timed = []
    with connection.cursor() as cursor:
        for sql in dict.fromkeys(q["sql"] for q in captured.captured_queries):
            began = time.perf_counter()
            cursor.execute(sql)
            rows = len(cursor.fetchall())
            timed.append(((time.perf_counter() - began) * 1000, rows, sql))
    timed.sort(reverse=True)
    in_db = sum(ms for ms, _, _ in timed)
    print(f"--- {name}: GET {url}")
    print(
        f"    {total:.1f} ms; {len(captured.captured_queries)} queries, {in_db:.1f} ms run again"
        " with every row fetched; slowest:"
    )
    for ms, rows, sql in timed[:top]:
        shown = sql if len(sql) <= 700 else f"{sql[:700]}… ({len(sql):,} characters)"
        print(f"    [{ms:.1f} ms, {rows} rows] {shown}")
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                plan = [row[0] for row in cursor.fetchall()]
            else:
                cursor.execute("EXPLAIN QUERY PLAN " + sql)
                plan = [("  " if row[1] else "") + row[-1] for row in cursor.fetchall()]
        for line in plan:
            print(f"      {line}")
    profile = cProfile.Profile()
    profile.runcall(client.get, url)
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).sort_stats("cumulative")
    stats.print_stats(r"(inspector|bookshelf)/(?!.*test)", 12)
    rendering = sum(
        entry[3]
        for (path, _, function), entry in stats.stats.items()
        if function == "render" and path.endswith(os.path.join("template", "backends", "django.py"))
    )
    print(f"    profile: template rendering {rendering * 1000:.1f} ms (under the profiler)")
    print("    profile (cumulative s, the project's functions):")
    for line in out.getvalue().splitlines():
        if line.strip() and ("/" in line or "ncalls" in line):
            print(f"      {line.strip()}")


def run_pages(args, where):
    import logging

    import django

    django.setup()
    without_static_manifest()
    logging.getLogger("inspector").setLevel(logging.WARNING)
    logging.getLogger("django.request").setLevel(logging.ERROR)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder
    from django.test import Client

    from inspector.models import HandlerAttempt, HandlerRun, Message

    call_command("migrate", verbosity=0)
    loaded = None
    if Message.objects.exists():
        log("reusing the loaded database")
    else:
        loaded = load(args)
    started = time.monotonic()
    indexed = catch_up(leave=0 if args.load_only else args.tail)
    indexing = time.monotonic() - started
    if args.load_only:
        print(f"loaded and indexed: {Message.objects.count():,} messages ({indexing:.0f} s index)")
        return
    settled = settle_database(args)

    user = get_user_model().objects.filter(username="bench-admin").first()
    user = user or get_user_model().objects.create_superuser("bench-admin", "bench@example.com")
    client = Client()
    client.force_login(user)
    rng = random.Random(args.seed + 1)
    picks = samples(rng, args.requests + 1)

    messages = Message.objects.count()
    migrated = MigrationRecorder(connection).applied_migrations()
    last = max(name for app, name in migrated if app == "inspector")
    print(f"database: {connection.vendor} ({where}; {settled})")
    print(f"inspector migrations applied up to: {last}")
    print(f"load average before (1 min, {os.cpu_count()} CPUs): {os.getloadavg()[0]:.2f}")
    print(f"messages: {messages:,}")
    print(f"handler runs: {HandlerRun.objects.count():,}")
    print(f"failed attempts kept: {HandlerAttempt.objects.count():,}")
    if loaded:
        _, runs, _, seconds, streams = loaded
        print(f"streams: {streams:,}")
        print(f"load s: {seconds:.1f} ({(messages + runs) / seconds:,.0f} rows/s)")
    print(f"database size MB: {database_size() / 2**20:,.0f}")
    if args.store_appends:
        run_store_appends(args)
        return
    print(
        f"store indexer s: {indexing:.1f} ({indexed:,} messages, {indexed / indexing:,.0f}/s;"
        f" {args.tail:,} left for the tail)"
        if indexed
        else "store indexer: nothing to read"
    )
    matches = [
        Message.objects.filter(type="bookshelf.OrderPlaced.v1", data__customer_name=c).count()
        for c in picks["customers"][:5]
    ]
    print(f"OrderPlaced matches of the first 5 searched customers: {matches}")

    slow = {}
    if args.tail:
        print(f"payload searches with {indexer_behind():,} messages not yet indexed:")
        for name, urls in search_urls(picks, max(args.requests // 3, 5) + 1).items():
            durations, statuses, sizes, slowest = time_page(client, urls)
            if report_page(f"  {name}", durations, statuses, sizes) > 1:
                slow[f"{name} (unindexed tail)"] = slowest
    started = time.monotonic()
    caught_up = catch_up()
    print(f"store indexer catch-up s: {time.monotonic() - started:.1f} ({caught_up:,} messages)")
    print(f"store index rows: {index_rows()}")
    cpu, started = cpu_counters(), time.monotonic()
    for name, urls in page_urls(picks, args.requests).items():
        durations, statuses, sizes, slowest = time_page(client, urls)
        if report_page(name, durations, statuses, sizes) > 1:
            slow[name] = slowest
    report_cpu(cpu, cpu_counters(), time.monotonic() - started, "the timed requests")
    if args.other_requests:
        print("other pages (not in the issue's list; fewer requests):")
        for name, urls in other_page_urls(picks, args.other_requests).items():
            durations, statuses, sizes, slowest = time_page(client, urls)
            if report_page(f"  {name}", durations, statuses, sizes) > 1:
                slow[name] = slowest
    if args.offered:
        run_offered_load(args, client, picks, slow)
    print(f"load average after (1 min): {os.getloadavg()[0]:.2f}")
    print(f"peak RSS MB: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
    if slow:
        print(f"pages over the target ({len(slow)}), each on its slowest request:")
        for name, url in slow.items():
            explain(client, name, url)
    sys.stdout.flush()


def main():
    args = parse_args()
    if args.appender is not None:
        append_offered(args.appender)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the cluster
    env = {
        "DJANGO_SETTINGS_MODULE": "bookshelf.settings",
        "DJANGO_DEBUG": "0",  # DEBUG keeps every query in memory
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "bench-only-secret",
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
        "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",  # the test Client's host
        "DJANGO_SECURE_SSL_REDIRECT": "0",  # the test Client speaks plain HTTP
        "INSPECTOR_EMBEDDED_WORKER": "0",
    }
    with contextlib.ExitStack() as stack:
        if args.postgres and args.postgres_database:
            env["DATABASE_URL"] = args.postgres_database
            where = "the database of --postgres-database"
        elif args.postgres:
            server = os.environ.get("DATABASE_URL")
            if server:
                where = "scratch database on DATABASE_URL's server"
            else:
                # Room for a 1M-message store in memory, as a small production server has.
                server, where, postmaster = stack.enter_context(
                    throwaway_cluster(["shared_buffers = '1GB'", "max_wal_size = '4GB'"])
                )
                SERVER_PIDS.append(postmaster)
            env["DATABASE_URL"] = stack.enter_context(
                scratch_database(server, prefix="inspector_pages")
            )
            where = f"{where}, fresh database"
        else:
            os.environ.pop("DATABASE_URL", None)
            if args.sqlite_path:
                path = Path(args.sqlite_path).resolve()
                where = f"SQLite file {path}"
            else:
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="inspector-pages."))
                path = Path(folder) / "pages.sqlite3"
                where = "fresh SQLite file, WAL"
            env["INSPECTOR_SQLITE_PATH"] = str(path)
        os.environ.update(env)
        from django.db import connections

        stack.callback(connections.close_all)
        run_pages(args, where)


if __name__ == "__main__":
    main()
