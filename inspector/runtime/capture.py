"""What a dry run records while the handler runs: the rows it writes, the SQL it sends that no
write point can itemize, and the emails it would send.

A ContextVar holds the `Recorder` of the dry run running in this thread (or task), so nothing
done by other threads at the same time is recorded, and `active()` is what
`current_domain.dry_run` answers. The hooks below cost one ContextVar read outside a dry run.

Where the rows come from:

- the runtime's own write points (`repository`: an aggregate inserted with lean SQL, its
  entities' `bulk_create`, an aggregate's `update_row`) report what they write; an update
  reads the old row first, only in a dry run;
- Django's `pre_save`, `post_save` and `post_delete` cover the ORM (a handler's
  `Notification.objects.create`). The receivers are connected only while a dry run runs:
  connected for good, they would send every aggregate insert through `Model.save` (the
  repository takes the ORM's path when a model has listeners), slowing the hot path;
- `connection.execute_wrapper` counts every INSERT, UPDATE and DELETE per table; what the
  two above did not account for (a queryset `update()`, `bulk_create`, raw SQL, a cascade) is
  shown as unitemized (table, statement kind, row count).

The inspector's own tables (messages, handler runs) are not row changes: the dry run shows
them as the events raised and the runs they would start.

Emails: `django.core.mail.get_connection` is wrapped once, at the first dry run, so that inside
one it returns a backend that keeps the messages (`send_mail`, `EmailMessage.send` and
`mail_admins` all look the connection up there); elsewhere it is Django's own, so no setting
changes for other threads. A handler that builds a backend class itself, or passes a
connection it opened before, is not captured.
"""

import functools
import re
import threading
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar

import django.core.mail
from django.apps import apps
from django.core.mail.backends.base import BaseEmailBackend
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import signals

OWN_APP = "inspector"  # its rows are the store and the run record, shown as events and runs

_recorder = ContextVar("inspector_dry_run", default=None)


def active():
    """True while a dry run runs in this thread (or task)."""
    return _recorder.get() is not None


def _mine(model):
    return model._meta.app_label != OWN_APP


def _values(instance):
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def _key(instance):
    """A row's key in the recorder; an instance whose primary key the database did not
    return (bulk_create on some backends) counts as a row of its own."""
    pk = instance.pk
    return (type(instance), pk if pk is not None else f"unsaved-{id(instance)}")


def _tables(model):
    """The tables one save of `model` writes: its own and its parents' (multi-table)."""
    return [model._meta.db_table, *(parent._meta.db_table for parent in model._meta.parents)]


class Recorder:
    """What one dry run wrote, net: per (model, primary key) the row before and after."""

    def __init__(self):
        self.rows = {}  # (model, pk) -> [kind, old values or None, new values or None]
        self.itemized = Counter()  # (table, kind) -> rows the write points accounted for
        self.statements = Counter()  # (table, kind) -> rows every write statement touched
        self.emails = []
        self.before_save = {}  # (model, pk) -> the row as pre_save read it, for post_save

    def inserted(self, instance):
        model = type(instance)
        self.rows[_key(instance)] = ["insert", None, _values(instance)]
        self._count(model, "INSERT")

    def updated(self, instance, old):
        model = type(instance)
        key = _key(instance)
        known = self.rows.get(key)
        if known is None:
            self.rows[key] = ["update", old, _values(instance)]
        else:  # an earlier insert stays an insert; an earlier update keeps its first old row
            known[2] = _values(instance)
        self._count(model, "UPDATE")

    def deleted(self, instance):
        model = type(instance)
        key = _key(instance)
        known = self.rows.get(key)
        if known is not None and known[0] == "insert":
            del self.rows[key]  # inserted and deleted within the dry run: no net change
        else:
            old = known[1] if known is not None else _values(instance)
            self.rows[key] = ["delete", old, None]
        self._count(model, "DELETE")

    def _count(self, model, kind):
        for table in _tables(model):
            self.itemized[(table, kind)] += 1

    def unitemized(self):
        """(table, kind, rows) of writes no write point or signal accounted for."""
        own = {m._meta.db_table for m in _own_models()}
        left = []
        for (table, kind), rows in sorted(self.statements.items()):
            rest = rows - self.itemized[(table, kind)]
            if rest > 0 and table not in own:
                left.append((table, kind, rest))
        return left

    def execute(self, execute, sql, params, many, context):
        """connection.execute_wrapper: count the rows each write statement touched."""
        result = execute(sql, params, many, context)
        target = _write_target(sql)
        if target is not None:
            rowcount = getattr(context["cursor"], "rowcount", -1)
            self.statements[target] += max(rowcount, 0)
        return result


def _own_models():
    return apps.get_app_config(OWN_APP).get_models()


_STATEMENT = re.compile(r"^\s*(INSERT|UPDATE|DELETE|WITH|REPLACE)\b", re.IGNORECASE)
_TARGET = re.compile(
    r"(?<!FOR )\b(INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE|DELETE\s+FROM)\s+"
    r"[`\"\[]?([\w.]+)",
    re.IGNORECASE,
)


def _write_target(sql):
    """("table", "INSERT"|"UPDATE"|"DELETE") of a write statement, else None."""
    if not _STATEMENT.match(sql):
        return None
    found = _TARGET.search(sql)
    if found is None:
        return None
    verb = found.group(1).split()[0].upper()
    return found.group(2), "INSERT" if verb == "REPLACE" else verb


# Hooks of the runtime's write points -------------------------------------------------------


def inserted(instances):
    """The repository inserted these rows without the ORM's signals."""
    recorder = _recorder.get()
    if recorder is not None:
        for instance in instances:
            if _mine(type(instance)):
                recorder.inserted(instance)


def row_before_update(model, pk, *, using=DEFAULT_DB_ALIAS):
    """The row as it is now, read only in a dry run (None otherwise), for `updated`."""
    if _recorder.get() is None or not _mine(model):
        return None
    names = [f.attname for f in model._meta.concrete_fields]
    return model._base_manager.using(using).filter(pk=pk).values(*names).first()


def updated(instance, old):
    """The repository updated this row (`old` from `row_before_update`)."""
    recorder = _recorder.get()
    if recorder is not None and _mine(type(instance)):
        recorder.updated(instance, old)


# The ORM's signals, connected while a dry run runs -----------------------------------------


def _pre_save(sender, instance, raw=False, using=DEFAULT_DB_ALIAS, **kwargs):
    recorder = _recorder.get()
    if recorder is None or raw or instance._state.adding or instance.pk is None:
        return
    recorder.before_save[(sender, instance.pk)] = row_before_update(
        sender, instance.pk, using=using
    )


def _post_save(sender, instance, created=False, raw=False, **kwargs):
    recorder = _recorder.get()
    if recorder is None or raw or not _mine(sender):
        return
    if created:
        recorder.inserted(instance)
    else:
        recorder.updated(instance, recorder.before_save.pop((sender, instance.pk), None))


def _post_delete(sender, instance, **kwargs):
    recorder = _recorder.get()
    if recorder is not None and _mine(sender):
        recorder.deleted(instance)


_RECEIVERS = (
    (signals.pre_save, _pre_save),
    (signals.post_save, _post_save),
    (signals.post_delete, _post_delete),
)
_lock = threading.Lock()
_listening = [0]  # dry runs running in this process (the receivers stay while one runs)


@contextmanager
def _model_signals():
    with _lock:
        if not _listening[0]:
            for signal, receiver in _RECEIVERS:
                signal.connect(receiver, weak=False, dispatch_uid=f"inspector-dry-run-{id(signal)}")
        _listening[0] += 1
    try:
        yield
    finally:
        with _lock:
            _listening[0] -= 1
            if not _listening[0]:
                for signal, _receiver in _RECEIVERS:
                    signal.disconnect(dispatch_uid=f"inspector-dry-run-{id(signal)}")


# Emails -----------------------------------------------------------------------------------


class CapturingBackend(BaseEmailBackend):
    """Keeps the messages in the dry run's recorder; sends nothing."""

    def __init__(self, recorder, **kwargs):
        super().__init__(**kwargs)
        self.recorder = recorder

    def send_messages(self, email_messages):
        self.recorder.emails.extend(email_messages)
        return len(email_messages)


def _install_mail_capture():
    """Wrap `django.core.mail.get_connection` once: inside a dry run it captures."""
    with _lock:
        original = django.core.mail.get_connection
        if getattr(original, "_inspector_dry_run", False):
            return

        @functools.wraps(original)
        def get_connection(backend=None, fail_silently=False, **kwds):
            recorder = _recorder.get()
            if recorder is not None:
                return CapturingBackend(recorder, fail_silently=fail_silently)
            return original(backend=backend, fail_silently=fail_silently, **kwds)

        get_connection._inspector_dry_run = True
        django.core.mail.get_connection = get_connection


@contextmanager
def recording(*, using=DEFAULT_DB_ALIAS):
    """Record what this thread writes and mails until the block ends; yields the Recorder."""
    _install_mail_capture()
    recorder = Recorder()
    token = _recorder.set(recorder)
    try:
        with _model_signals(), connections[using].execute_wrapper(recorder.execute):
            yield recorder
    finally:
        _recorder.reset(token)
