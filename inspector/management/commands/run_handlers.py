"""Run handler runs: `manage.py run_handlers [--concurrency N] [--batch] ...`."""

import signal

from django.core.management.base import BaseCommand

from inspector.readmodel.indexer import start_indexer_thread
from inspector.workers.worker import Worker


class Command(BaseCommand):
    help = "Claim due handler runs and execute them until stopped (SIGTERM/SIGINT finish cleanly)."

    def add_arguments(self, parser):
        parser.add_argument("--concurrency", type=int, default=1, help="Worker threads.")
        parser.add_argument(
            "--handlers", default="", help="Comma-separated handler names to run (default: all)."
        )
        parser.add_argument("--batch", action="store_true", help="Drain what is due, then exit.")
        parser.add_argument("--max-runs", type=int, default=None, help="Exit after N runs.")
        parser.add_argument("--worker-id", default=None)
        parser.add_argument("--lease", type=float, default=30.0, help="Lease in seconds.")
        parser.add_argument("--poll", type=float, default=None, help="Idle poll interval (s).")
        parser.add_argument("--batch-size", type=int, default=10, help="Runs claimed at once.")
        parser.add_argument(
            "--commit-window",
            type=float,
            default=20.0,
            help="Milliseconds a group of claimed runs may share one commit (0: a commit a run).",
        )
        parser.add_argument(
            "--no-indexer",
            action="store_true",
            help="Do not run the store indexer thread beside the workers.",
        )

    def handle(self, *args, **options):
        worker = Worker(
            worker_id=options["worker_id"],
            concurrency=options["concurrency"],
            handlers=[h for h in options["handlers"].split(",") if h] or None,
            batch_size=options["batch_size"],
            lease_seconds=options["lease"],
            poll_interval=options["poll"],
            max_runs=options["max_runs"],
            commit_window=options["commit_window"] / 1000,
        )
        if options["batch"]:
            count = worker.drain()
            self.stdout.write(f"Ran {count} handler runs worker_id={worker.worker_id}")
            return
        indexer = None if options["no_indexer"] else start_indexer_thread()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: worker.stop())
        worker.run()
        if indexer is not None:
            indexer.stop()
        self.stdout.write(f"Stopped after {worker.processed} runs worker_id={worker.worker_id}")
