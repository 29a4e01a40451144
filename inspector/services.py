"""Writes an operator makes on handler runs: replay a failed one, or mark it resolved."""

from django.db import transaction
from django.utils import timezone

from inspector.exceptions import DomainError
from inspector.models import HandlerRun, HandlerRunReplay, RunStatus

REPLAYABLE = (RunStatus.FAILED, RunStatus.DEAD)


class RunNotReplayable(DomainError):
    """Only failed or dead runs can be replayed or resolved."""


def _refuse_unless_replayable(run, verb):
    if run.status not in REPLAYABLE:
        raise RunNotReplayable(
            f"Cannot {verb} the run of {run.handler} for {run.message_type}: it is "
            f"{run.get_status_display().lower()}; only failed or dead runs can be {verb}ed."
        )


def handler_run_replay(*, run, user=None, reason=""):
    """Send a failed or dead run back to the queue as a new attempt, keeping its history."""
    with transaction.atomic():
        run = HandlerRun.objects.select_for_update().get(pk=run.pk)
        _refuse_unless_replayable(run, "replay")
        now = timezone.now()
        HandlerRunReplay.objects.create(
            run=run,
            action=HandlerRunReplay.Action.REPLAY,
            user=user,
            at=now,
            reason=reason,
            previous_status=run.status,
            attempts_before=run.attempts,
        )
        run.status = RunStatus.PENDING
        run.available_at = now
        run.claimed_by = ""
        run.lease_expires_at = None
        run.updated_at = now
        run.save(
            update_fields=["status", "available_at", "claimed_by", "lease_expires_at", "updated_at"]
        )
    return run


def handler_run_resolve(*, run, user=None, reason=""):
    """Close a failed or dead run without running it (the operator fixed things by hand)."""
    with transaction.atomic():
        run = HandlerRun.objects.select_for_update().get(pk=run.pk)
        _refuse_unless_replayable(run, "resolve")
        now = timezone.now()
        HandlerRunReplay.objects.create(
            run=run,
            action=HandlerRunReplay.Action.RESOLVE,
            user=user,
            at=now,
            reason=reason,
            previous_status=run.status,
            attempts_before=run.attempts,
        )
        run.status = RunStatus.RESOLVED
        run.claimed_by = ""
        run.lease_expires_at = None
        run.updated_at = now
        run.save(update_fields=["status", "claimed_by", "lease_expires_at", "updated_at"])
    return run
