"""What the runtime announces once it has committed, for whoever shows it: the dashboard's
live feed subscribes in `InspectorConfig.ready()`. The runtime never calls its listeners by
name, so a project can run it without the dashboard, and listeners can be added."""

from datetime import timedelta

from django.db import transaction
from django.dispatch import Signal

# Sent after a commit that appended messages (with the handler runs created for them).
# Arguments: `messages`, the stored `Message` rows, in global-position order.
messages_appended = Signal()

# Sent after a commit (or a worker's lease) that changed handler runs without appending
# messages: a run claimed, succeeded, failed, replayed or resolved. Arguments: `run_ids`.
runs_changed = Signal()

# A run's `updated_at` is at most this much older than the commit that wrote it (a worker's
# group that ran longer dates its runs again just before it commits), so a reader in another
# process that follows runs by `updated_at` misses none if it re-reads a few times this far.
UPDATED_AT_LAG = timedelta(seconds=0.25)


def announce_after_commit(*, messages=(), run_ids=()):
    """Send the signals for what the current transaction wrote, once it commits."""
    messages, run_ids = list(messages), list(run_ids)
    if messages or run_ids:
        transaction.on_commit(lambda: announce(messages=messages, run_ids=run_ids))


def announce(*, messages=(), run_ids=()):
    """Send the signals now (what was written is already committed)."""
    if messages:
        messages_appended.send(sender=None, messages=messages)
    if run_ids:
        runs_changed.send(sender=None, run_ids=run_ids)
