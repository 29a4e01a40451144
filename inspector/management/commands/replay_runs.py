"""Replay failed or dead handler runs in bulk, after a fix: preview, confirm, progress."""

import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from inspector.models import HandlerRun, RunStatus
from inspector.services import CHUNK, handler_runs_replay


class Command(BaseCommand):
    help = "Send failed or dead handler runs back to the queue."

    def add_arguments(self, parser):
        parser.add_argument("--handler", help="Handler name, e.g. warehouse.InventoryEventHandler")
        parser.add_argument(
            "--status", choices=[RunStatus.FAILED, RunStatus.DEAD], help="Default: both."
        )
        parser.add_argument("--since", help="Only runs that last failed at or after this date.")
        parser.add_argument("--reason", default="replayed from the command line")
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args, **options):
        runs = HandlerRun.objects.filter(
            status__in=[options["status"]]
            if options["status"]
            else [RunStatus.FAILED, RunStatus.DEAD]
        )
        if options["handler"]:
            runs = runs.filter(handler=options["handler"])
        if options["since"]:
            runs = runs.filter(finished_at__gte=self._since(options["since"]))
        total = runs.count()
        if options["dry_run"]:
            self.stdout.write(f"{total} runs would be replayed (dry run; nothing changed).")
            return
        if not total:
            self.stdout.write("No runs to replay.")
            return
        if not options["yes"]:
            answer = input(f"Replay {total} runs? [y/N] ")
            if answer.strip().lower() not in {"y", "yes"}:
                self.stdout.write("Nothing replayed.")
                return
        ids = list(runs.values_list("pk", flat=True))
        done = 0
        for start in range(0, len(ids), CHUNK):
            chunk = HandlerRun.objects.filter(pk__in=ids[start : start + CHUNK])
            done += handler_runs_replay(runs=chunk, reason=options["reason"])
            self._progress(done, total)
        self.stdout.write(f"\nReplayed {done} runs.")

    def _since(self, text):
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            if day is None:
                raise CommandError(f"--since: {text!r} is not a date (YYYY-MM-DD) or datetime")
            moment = datetime.datetime.combine(day, datetime.time.min)
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, datetime.UTC)
        return moment

    def _progress(self, done, total):
        width = 30
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        self.stdout.write(f"\r[{bar}] {done}/{total}", ending="")
        self.stdout.flush()
