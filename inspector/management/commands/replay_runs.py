"""Replay failed or dead handler runs in bulk, after a fix: preview, confirm, then a replay
job that replays them at a rate, with its progress until it has reached every run."""

import datetime
import os
import socket
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from inspector.exceptions import ValidationError
from inspector.models import HandlerRun, ReplayJob, RunStatus
from inspector.services import NothingToReplay, replay_job_create
from inspector.workers.replay_jobs import ReplayJobRunner


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
        parser.add_argument(
            "--rate", type=int, default=None, help="Runs per second (default: replay_rate)."
        )
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="Make the job and return; the workers carry it out.",
        )

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
        try:
            job = replay_job_create(
                action=ReplayJob.Action.REPLAY,
                runs=runs,
                covers=self._covers(options),
                reason=options["reason"],
                rate=options["rate"],
            )
        except ValidationError as error:
            raise CommandError(str(error)) from None
        except NothingToReplay:
            self.stdout.write("No runs to replay.")
            return
        self.stdout.write(
            f"Made replay job {job.pk}: {job.total} runs at {job.rate} a second "
            f"(its page: /inspector/jobs/{job.pk}/ where the inspector is mounted)."
        )
        if options["no_wait"]:
            self.stdout.write("Not waiting: the workers carry it out.")
            return
        self._carry_out(job)

    def _carry_out(self, job):
        """Take the job's chunks here while waiting (a worker may hold it instead: then just
        watch), so that it finishes even with no worker running; stopped, it is given back."""
        runner = ReplayJobRunner(worker_id=f"replay_runs:{socket.gethostname()}:{os.getpid()}")
        try:
            while True:
                runner.step(job.pk)
                job.refresh_from_db()
                self._progress(job.applied + job.skipped, job.total)
                if job.status in (ReplayJob.Status.FINISHED, ReplayJob.Status.CANCELLED):
                    break
                time.sleep(max(runner.seconds_to_next(), 0.01))
        except KeyboardInterrupt:
            runner.release()
            self.stdout.write(f"\nStopped waiting: the workers go on with job {job.pk}.")
            return
        skipped = f" ({job.skipped} no longer failed or dead)" if job.skipped else ""
        verb = "Replayed" if job.status == ReplayJob.Status.FINISHED else "Cancelled after"
        self.stdout.write(f"\n{verb} {job.applied} runs{skipped}.")

    @staticmethod
    def _covers(options):
        named = [
            f"--{name}={options[name]}" for name in ("handler", "status", "since") if options[name]
        ]
        return "manage.py replay_runs " + (" ".join(named) or "(every failed and dead run)")

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
