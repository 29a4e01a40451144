"""Runs read with what an operator last did to them, for the lists that show it."""

from inspector.models import HandlerRunReplay


def with_last_actions(runs):
    """Give each run its newest replay, resolve or retry now as `last_action` (None if it has
    none), in one query for the whole list; returns `runs`."""
    runs = list(runs)
    latest = {}
    if runs:
        for replay in (
            HandlerRunReplay.objects.filter(run_id__in=[run.pk for run in runs])
            .select_related("user")
            .order_by("at", "pk")
        ):
            latest[replay.run_id] = replay
    for run in runs:
        run.last_action = latest.get(run.pk)
    return runs
