"""Run the store indexer on its own: `manage.py index_store [--once] [--rebuild]`."""

import signal
import time

from django.core.management.base import BaseCommand

from inspector.readmodel import indexer


class Command(BaseCommand):
    help = (
        "Follow the event store and keep the inspector's counts and payload-field index "
        "(stop with SIGTERM/SIGINT). Safe beside other indexers, e.g. in run_handlers."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Catch up, then exit.")
        parser.add_argument(
            "--rebuild", action="store_true", help="Forget the index first and read it all again."
        )
        parser.add_argument("--batch", type=int, default=indexer.BATCH, help="Messages per step.")
        parser.add_argument("--poll", type=float, default=indexer.POLL_SECONDS)

    def handle(self, *args, **options):
        if options["rebuild"]:
            indexer.rebuild()
            self.stdout.write("Index forgotten; reading the store again.")
        if options["once"]:
            started = time.monotonic()
            count = indexer.catch_up(batch=options["batch"])
            seconds = time.monotonic() - started
            self.stdout.write(f"Indexed {count} messages in {seconds:.1f} s")
            return
        loop = indexer.Indexer(poll=options["poll"], batch=options["batch"])
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: loop.stop())
        loop.run()
