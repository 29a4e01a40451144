"""One transaction: aggregate writes, the messages they raised, and the handler runs those need."""

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from inspector.domain.identity import new_id
from inspector.runtime import signals, store


@dataclass(frozen=True)
class Cause:
    """The message being handled; what it causes inherits its correlation."""

    message_id: str | None
    correlation_id: str
    stream: str | None
    origin_stream: str | None
    handler_run_id: str | None = None
    edited_replay: str | None = None  # the run runs with this edited replay's payload

    @classmethod
    def root(cls, correlation_id=None):
        return cls(None, str(correlation_id or new_id()), None, None)

    @classmethod
    def of_run(cls, run, row):
        """A handler run of the stored message `row`: what it raises is caused by that message
        (and marked when the run runs with an edited payload)."""
        return cls(
            message_id=str(row.id),
            correlation_id=str(row.correlation_id),
            stream=row.stream,
            origin_stream=row.metadata.get("origin_stream"),
            handler_run_id=str(run.id),
            edited_replay=str(run.edit_id) if run.edit_id else None,
        )

    def metadata(self, *, aggregate_version=None):
        """Metadata for a message caused by this one (Protean's origin stream: the chain's root)."""
        metadata = {
            "correlation_id": self.correlation_id,
            "causation_id": self.message_id,
            "origin_stream": self.origin_stream or self.stream,
            "handler_run_id": self.handler_run_id,
            "aggregate_version": aggregate_version,
        }
        if self.edited_replay:  # caused by the stored message, but not as it was stored
            metadata["edited_replay"] = self.edited_replay
        return metadata


_current_uow = ContextVar("inspector_unit_of_work", default=None)
_current_cause = ContextVar("inspector_cause", default=None)


def current_cause():
    return _current_cause.get()


def in_unit_of_work():
    """Whether a unit of work is open here (a new one would join it)."""
    return _current_uow.get() is not None


@contextmanager
def caused_by(cause):
    token = _current_cause.set(cause)
    try:
        yield cause
    finally:
        _current_cause.reset(token)


class UnitOfWork:
    """Collects messages and runs, and writes them in one go at the end of the transaction."""

    def __init__(self, domain):
        self.domain = domain
        self.entries = []
        self.explicit_runs = []  # runs recorded by the caller, e.g. a sync command handler's
        self.created_runs = []
        self.root_cause = None

    def cause(self):
        cause = _current_cause.get()
        if cause is None:
            if self.root_cause is None:
                self.root_cause = Cause.root()
            cause = self.root_cause
        return cause

    def append(
        self,
        message,
        *,
        stream,
        aggregate_version=None,
        expected_version=None,
        new_stream=False,
        cause=None,
    ):
        """Record a message to append when the unit of work commits."""
        cause = cause or self.cause()
        entry = store.NewMessage(
            message=message,
            stream=stream,
            metadata=cause.metadata(aggregate_version=aggregate_version),
            expected_version=expected_version,
            new_stream=new_stream,
            time=timezone.now(),
        )
        self.entries.append(entry)
        return entry

    def flush(self, outcome=None):
        """Append the messages and create their handler runs (the outbox) in this transaction;
        `outcome(entries)` may give a `store.RowUpdate` (a handler run's) to send with them."""
        entries, self.entries = self.entries, []
        for run in self.explicit_runs:
            run.raised_message_ids = [
                str(e.message._id) for e in entries if e.metadata["handler_run_id"] == str(run.id)
            ]
        dispatcher = self.domain.dispatcher
        runs = [*self.explicit_runs, *dispatcher.runs_for(entries)]
        self.explicit_runs = []
        store.append(
            entries,
            runs=runs,
            wake_workers=dispatcher.wakes_workers(runs),
            update=outcome(entries) if outcome is not None else None,
        )
        self.created_runs.extend(runs)
        return entries


@contextmanager
def unit_of_work(domain, *, outcome=None, finalize=None):
    """Join the active unit of work, or open one: an atomic block flushed before it commits.
    A unit of work it opens calls `outcome(entries)` as it flushes (see `UnitOfWork.flush`),
    then `finalize(uow, flushed)`."""
    active = _current_uow.get()
    if active is not None:
        yield active
        return
    uow = UnitOfWork(domain)
    token = _current_uow.set(uow)
    reset = False
    try:
        with transaction.atomic():
            try:
                yield uow
                flushed = uow.flush(outcome)
                if finalize is not None:
                    finalize(uow, flushed)
            finally:
                # Before the commit: on-commit dispatch must open units of work of its own.
                _current_uow.reset(token)
                reset = True
            signals.announce_after_commit(messages=[entry.row for entry in flushed])
            runs = uow.created_runs
            if runs:
                transaction.on_commit(lambda: domain.dispatcher.after_commit(runs))
    finally:
        if not reset:
            _current_uow.reset(token)
