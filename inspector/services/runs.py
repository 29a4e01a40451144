"""Replay failed or dead runs, mark them resolved, or make a failed run's next attempt due now;
pause and resume handlers."""

import logging

from django.db import transaction
from django.utils import timezone

from inspector.exceptions import DomainError
from inspector.models import HandlerRun, HandlerRunReplay, HandlerState, RunStatus
from inspector.readmodel import indexer
from inspector.runtime import signals
from inspector.runtime.dispatch import forget_paused_handlers
from inspector.runtime.wakeup import notify_workers

logger = logging.getLogger(__name__)

REPLAYABLE = (RunStatus.FAILED, RunStatus.DEAD)
# Retry now only brings forward the attempt a failed run is waiting for; a dead run has none
# left (replay it instead).
RETRYABLE = (RunStatus.FAILED,)
CHUNK = 500


class RunNotReplayable(DomainError):
    """Only failed or dead runs can be replayed or resolved, and only failed runs retried now."""


def handler_run_replay(*, run, user=None, reason=""):
    """Send one failed or dead run back to the queue as a new attempt, keeping its history."""
    return _one(run, user, reason, HandlerRunReplay.Action.REPLAY)


def handler_run_resolve(*, run, user=None, reason=""):
    """Close one failed or dead run without running it (the operator fixed things by hand)."""
    return _one(run, user, reason, HandlerRunReplay.Action.RESOLVE)


def handler_runs_replay(*, runs, user=None, reason=""):
    """Queue every failed or dead run of `runs` again; return how many were queued."""
    return _many(runs, user, reason, HandlerRunReplay.Action.REPLAY)


def handler_runs_resolve(*, runs, user=None, reason=""):
    """Mark every failed or dead run of `runs` resolved; return how many were resolved."""
    return _many(runs, user, reason, HandlerRunReplay.Action.RESOLVE)


def handler_run_retry_now(*, run, user=None, reason=""):
    """Make a failed run's next attempt due now instead of after its backoff."""
    return _one(run, user, reason, HandlerRunReplay.Action.RETRY)


def handler_runs_retry_now(*, runs, user=None, reason=""):
    """Make every failed run of `runs` due now; return how many were."""
    return _many(runs, user, reason, HandlerRunReplay.Action.RETRY)


def _statuses(action):
    """The statuses a run may have for `action`."""
    return RETRYABLE if action == HandlerRunReplay.Action.RETRY else REPLAYABLE


REFUSALS = {  # action: (what the operator asked for, which runs it is for)
    HandlerRunReplay.Action.REPLAY: ("replay", "only failed or dead runs can be replayed"),
    HandlerRunReplay.Action.RESOLVE: ("resolve", "only failed or dead runs can be resolved"),
    HandlerRunReplay.Action.RETRY: (
        "retry now",
        "only failed runs waiting for their next attempt can be retried now (replay a dead run)",
    ),
}


def _one(run, user, reason, action):
    with transaction.atomic():
        current = HandlerRun.objects.select_for_update().get(pk=run.pk)
        if current.status not in _statuses(action):
            verb, only = REFUSALS[action]
            raise RunNotReplayable(
                f"Cannot {verb} the run of {current.handler} for {current.message_type}: it is "
                f"{current.get_status_display().lower()}; {only}."
            )
        _apply([(current.pk, current.status, current.attempts)], user, reason, action)
    return HandlerRun.objects.get(pk=run.pk)


def _many(runs, user, reason, action):
    ids = list(runs.filter(status__in=_statuses(action)).values_list("pk", flat=True))
    total = 0
    for start in range(0, len(ids), CHUNK):
        with transaction.atomic():
            total += handler_runs_apply(
                ids[start : start + CHUNK], user=user, reason=reason, action=action
            )
    return total


def handler_runs_apply(ids, *, user, reason, action, job=None, edit=None):
    """Replay or resolve the runs of `ids` that are still failed or dead (retry now: still
    failed), locking them first; inside the caller's transaction (a replay job's step moves its
    cursor in the same one). Returns how many it applied to."""
    rows = list(
        HandlerRun.objects.select_for_update()
        .filter(pk__in=ids, status__in=_statuses(action))
        .values_list("pk", "status", "attempts")
    )
    _apply(rows, user, reason, action, job=job, edit=edit)
    return len(rows)


def _apply(rows, user, reason, action, *, job=None, edit=None):
    """Record who did what to each run, then move the runs on; inside the caller's transaction.
    `edit` (edit and replay, one run): the record's `edited_data` and `original_data`; the run
    runs with the edited payload from then on."""
    if not rows:
        return
    dead = [pk for pk, status, _ in rows if status == RunStatus.DEAD]
    if dead:  # the store indexer counted them as dead: they are about to change
        indexer.reopen_runs(dead)
    now = timezone.now()
    replays = HandlerRunReplay.objects.bulk_create(
        HandlerRunReplay(
            run_id=pk,
            action=action,
            user=user,
            at=now,
            reason=reason,
            previous_status=status,
            attempts_before=attempts,
            job=job,
            **(edit or {}),
        )
        for pk, status, attempts in rows
    )
    changes = {"claimed_by": "", "lease_expires_at": None, "updated_at": now}
    if edit is not None:
        changes["edit_id"] = replays[0].pk
    if action == HandlerRunReplay.Action.REPLAY:
        changes.update(status=RunStatus.PENDING, available_at=now)
    elif action == HandlerRunReplay.Action.RETRY:  # still failed, its attempts kept: due now
        changes.update(available_at=now)
    else:
        changes.update(status=RunStatus.RESOLVED)
    HandlerRun.objects.filter(pk__in=[pk for pk, _, _ in rows]).update(**changes)
    if action in (HandlerRunReplay.Action.REPLAY, HandlerRunReplay.Action.RETRY):
        notify_workers()
    signals.announce_after_commit(run_ids=[pk for pk, _, _ in rows])


def handler_pause(*, name, user=None):
    """Hold back a handler: workers skip its runs, which wait in order until it is resumed."""
    state, _ = HandlerState.objects.update_or_create(handler=name, defaults={"paused": True})
    forget_paused_handlers()
    logger.info("Handler paused handler=%s user=%s", name, user)
    return state


def handler_resume(*, name, user=None):
    """Let workers run a paused handler's waiting runs again, and wake them to do so."""
    state, _ = HandlerState.objects.update_or_create(handler=name, defaults={"paused": False})
    forget_paused_handlers()
    logger.info("Handler resumed handler=%s user=%s", name, user)
    notify_workers()  # pg_notify is delivered at commit
    return state
