"""The tutorial workload (AddBook, place, confirm, ship, every handler) on the embedded default.

Runs against a fresh SQLite file and prints one figure a line. Protean 0.18 manages about
4 iterations/s here; plain Django ORM on SQLite about 2,800 one-row transactions/s.
"""

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def setup(db_path):
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        setup(args.sqlite_path or str(Path(tmp) / "bench.sqlite3"))
        from bookshelf.domain import domain
        from inspector.models import HandlerRun, Message

        stored_before = Message.objects.count()
        last = Message.objects.order_by("-global_position").first()
        first_new = last.global_position + 1 if last else 0
        runs_before = HandlerRun.objects.exclude(status="succeeded").count()

        durations = []
        started = time.perf_counter()
        for n in range(args.iterations):
            t0 = time.perf_counter()
            iteration(domain, n)
            durations.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started

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
        print("target iterations/s: 200 (Protean 0.18: about 4)")


if __name__ == "__main__":
    main()
