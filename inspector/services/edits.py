"""Edit and replay: run a failed or dead handler run again with a corrected payload.

The store is never rewritten. The edited payload is kept with the replay record (beside the
message's payload as it was, for the diff), the run points at that record (`HandlerRun.edit`)
and workers run it with the edited payload from then on, a later plain replay included.
"""

from dataclasses import dataclass

from django.db import transaction

from inspector.exceptions import ValidationError
from inspector.models import HandlerRun, HandlerRunReplay
from inspector.runtime.dispatch import run_payload
from inspector.runtime.domain import current_domain
from inspector.services.runs import REPLAYABLE, RunNotReplayable, handler_runs_apply

UNCHANGED = "The edited payload is the one the run already runs with: change a field first."


@dataclass(frozen=True)
class PayloadChange:
    """One top-level field whose value the edit changes (None where it is absent)."""

    field: str
    original: object
    edited: object


def edited_payload(message_cls, data):
    """`data` validated by the fields of `message_cls`, as the store keeps a payload (JSON).

    Raises ValidationError naming each bad field (`items[0].book_id` for a nested one)."""
    if not isinstance(data, dict) or any(not isinstance(key, str) for key in data):
        raise ValidationError("A payload is a mapping of field names to values.")
    unknown = sorted(data.keys() - message_cls._fields.keys())
    if unknown:  # before the constructor, which takes keywords (a key named "self" too)
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    return message_cls(**data).to_dict()


def payload_diff(original, edited):
    """The fields an edit changes, in the edited payload's order, then the fields it drops."""
    original, edited = original or {}, edited or {}
    names = [*edited, *(name for name in original if name not in edited)]
    return [
        PayloadChange(name, original.get(name), edited.get(name))
        for name in names
        if name not in original or name not in edited or original[name] != edited[name]
    ]


def handler_run_edit_replay(*, run, data, user=None, reason=""):
    """Replay one failed or dead run with `data` as its message's payload; return the run.

    Validated by the message class first: a bad field, or an edit that changes nothing the
    run would run with, raises ValidationError and writes nothing; a run that is not failed
    or dead raises RunNotReplayable."""
    with transaction.atomic():
        current = HandlerRun.objects.select_for_update().get(pk=run.pk)
        if current.status not in REPLAYABLE:
            raise RunNotReplayable(
                f"Cannot edit and replay the run of {current.handler} for "
                f"{current.message_type}: it is {current.get_status_display().lower()}; only "
                "failed or dead runs can be replayed."
            )
        message = current.message
        edited = edited_payload(current_domain.get().message_class(message.type), data)
        if not payload_diff(run_payload(current), edited):
            raise ValidationError(UNCHANGED)
        handler_runs_apply(
            [current.pk],
            user=user,
            reason=reason,
            action=HandlerRunReplay.Action.REPLAY,
            edit={"edited_data": edited, "original_data": message.data},
        )
    return HandlerRun.objects.get(pk=run.pk)
