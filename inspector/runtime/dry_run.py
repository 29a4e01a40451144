"""Dry run: execute a handler run as a replay would, against today's state, and roll it all back.

`dry_run(run)` calls the handler the way `Dispatcher.execute` does (the spec's method, a
`Cause` naming the run, the unit of work that flushes what it raised and creates the runs
those need) but never `execute` or `record_failure`, which write the run. Everything happens
inside one `transaction.atomic()` whose rollback is set in a `finally`; the handler's unit of
work is a savepoint in it, so a failing handler rolls back alone and what it wrote before it
failed is still known. Nothing commits, so nothing registered with `on_commit` runs: not sync
dispatch of the runs it would queue, not `signals.announce_after_commit`, not SQLite's local
wake-up; PostgreSQL drops the `NOTIFY` of a rolled-back transaction.

What it saw comes from `capture` (rows per model with old and new values, the writes it
cannot attribute to rows, the emails, which are kept and never sent), from the unit of
work's flush (the events and commands it raised, the runs they would start), and from the
exception if it raised one.

The dry run holds what a real run would: on PostgreSQL the store's sequence row lock (if the
handler raised anything) and the rows it updated, on SQLite the write lock, until it rolls
back. Other writers wait meanwhile: fine for an operator's action, not for a loop.

Handlers can ask `current_domain.dry_run` to skip calls to other systems; anything else a
handler does outside the database and Django's mail (an HTTP call, a file, another thread or
database connection) is not rolled back.
"""

import time
import traceback
from dataclasses import dataclass

from django.db import transaction

from inspector.exceptions import DomainError, IncorrectUsageError
from inspector.runtime import capture, names
from inspector.runtime.dispatch import run_payload
from inspector.runtime.domain import current_domain
from inspector.runtime.store import metadata_of
from inspector.runtime.unit_of_work import Cause, caused_by, in_unit_of_work, unit_of_work

SUCCEEDED = "succeeded"
FAILED = "failed"


class CannotDryRun(DomainError):
    """The run's handler or message type is no longer registered in the domain."""


@dataclass(frozen=True)
class RowValues:
    """An inserted or deleted row: its primary key and every column (attname → value)."""

    pk: object
    values: dict


@dataclass(frozen=True)
class RowUpdate:
    """An updated row: its primary key and each changed column, attname → (old, new)."""

    pk: object
    changes: dict


@dataclass(frozen=True)
class ModelChanges:
    """The rows of one model the handler would insert, update and delete."""

    label: str  # "warehouse.inventory"
    verbose_name: str
    verbose_name_plural: str
    inserted: tuple[RowValues, ...]
    updated: tuple[RowUpdate, ...]
    deleted: tuple[RowValues, ...]


@dataclass(frozen=True)
class UnitemizedWrite:
    """Rows written by SQL no write point could attribute to rows (a queryset update, raw SQL)."""

    table: str
    statement: str  # "INSERT", "UPDATE" or "DELETE"
    rows: int


@dataclass(frozen=True)
class RaisedMessage:
    """An event or command the handler would append to the store."""

    id: str
    kind: str
    type: str
    stream: str
    data: dict


@dataclass(frozen=True)
class QueuedRun:
    """A handler run the raised messages would start (or, for a command handled inline, ran)."""

    handler: str
    message_id: str
    message_type: str
    stream: str
    status: str


@dataclass(frozen=True)
class CapturedEmail:
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    from_email: str
    subject: str
    body: str


@dataclass(frozen=True)
class DryRun:
    """What a replay of the run would do now. Nothing of it was kept."""

    run_id: str
    handler: str
    message_type: str
    data: dict  # the payload the handler ran with
    edited: bool  # with an edited payload (data= or the run's edit), not the stored one
    outcome: str  # SUCCEEDED or FAILED
    error_type: str
    error_message: str
    traceback: str
    changes: tuple[ModelChanges, ...]
    unitemized: tuple[UnitemizedWrite, ...]
    messages: tuple[RaisedMessage, ...]
    runs: tuple[QueuedRun, ...]
    emails: tuple[CapturedEmail, ...]
    duration_us: int

    @property
    def succeeded(self):
        return self.outcome == SUCCEEDED

    @property
    def short_error_type(self):
        return names.short_handler(self.error_type)


def dry_run(run, *, data=None):
    """Run `run`'s handler as a replay would and roll everything back; return what it did.

    `data`, when given, is the payload to run with instead of the stored message's, built
    into the message class so that its fields validate it (an invalid one raises
    `inspector.exceptions.ValidationError` naming the fields, before anything runs); else the
    run's edit (`run.edit.edited_data`) is used as a replay would, else the stored payload.
    """
    if in_unit_of_work():  # the handler would join it, and what it raised would be kept
        raise IncorrectUsageError("A dry run cannot run inside a unit of work (a handler)")
    domain = current_domain.get()
    row = run.message
    try:
        spec = domain.handler_named(run.handler)
        message_cls = domain.message_class(row.type)
        method = spec.method_for(message_cls)
    except KeyError as exc:
        raise CannotDryRun(
            f"Cannot dry run {run.handler} for {row.type}: the domain no longer has "
            f"{exc.args[0]!r}."
        ) from exc
    edited = data is not None or run.edit_id is not None
    if data is None:
        data = run_payload(run)
    message = message_cls.from_dict(data)._with_metadata(metadata_of(row))
    cause = Cause.of_run(run, row)
    flushed = {"messages": [], "runs": []}

    def finish(uow, entries):
        flushed["messages"] = [entry.row for entry in entries]
        flushed["runs"] = list(uow.created_runs)

    error, formatted = None, ""
    with transaction.atomic():
        try:
            with capture.recording() as recorder:
                started = time.perf_counter()
                try:
                    with caused_by(cause), unit_of_work(domain, finalize=finish):
                        method(spec.handler_cls(), message)
                except Exception as exc:
                    error, formatted = exc, traceback.format_exc()
                duration_us = int((time.perf_counter() - started) * 1_000_000)
        finally:
            transaction.set_rollback(True)
    return DryRun(
        run_id=str(run.id),
        handler=run.handler,
        message_type=row.type,
        data=message.to_dict(),
        edited=edited,
        outcome=SUCCEEDED if error is None else FAILED,
        error_type="" if error is None else names.error_type(error),
        error_message="" if error is None else str(error),
        traceback=formatted,
        changes=_changes(recorder.rows),
        unitemized=tuple(UnitemizedWrite(*found) for found in recorder.unitemized()),
        messages=tuple(
            RaisedMessage(
                id=str(m.id), kind=m.kind, type=m.type, stream=m.stream, data=dict(m.data)
            )
            for m in flushed["messages"]
        ),
        runs=tuple(
            QueuedRun(
                handler=r.handler,
                message_id=str(r.message_id),
                message_type=r.message_type,
                stream=r.stream,
                status=r.status,
            )
            for r in flushed["runs"]
        ),
        emails=tuple(_email(m) for m in recorder.emails),
        duration_us=duration_us,
    )


def _changes(rows):
    """The recorder's net rows, per model in the order first written."""
    by_model = {}
    for (model, _key), (kind, old, new) in rows.items():
        inserted, updated, deleted = by_model.setdefault(model, ([], [], []))
        pk = (new or old or {}).get(model._meta.pk.attname)
        if kind == "insert":
            inserted.append(RowValues(pk=pk, values=new))
        elif kind == "delete":
            deleted.append(RowValues(pk=pk, values=old))
        else:
            old = old or {}
            changes = {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v}
            if changes:
                updated.append(RowUpdate(pk=pk, changes=changes))
    return tuple(
        ModelChanges(
            label=model._meta.label_lower,
            verbose_name=str(model._meta.verbose_name),
            verbose_name_plural=str(model._meta.verbose_name_plural),
            inserted=tuple(inserted),
            updated=tuple(updated),
            deleted=tuple(deleted),
        )
        for model, (inserted, updated, deleted) in by_model.items()
        if inserted or updated or deleted
    )


def _email(message):
    return CapturedEmail(
        to=tuple(message.to),
        cc=tuple(message.cc),
        bcc=tuple(message.bcc),
        from_email=message.from_email or "",
        subject=message.subject,
        body=message.body,
    )
