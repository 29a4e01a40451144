"""The store indexer: follows the global position in batches, off the append path, and keeps
the tables that make whole-history counts and payload-field searches fast at a million rows.

Each step reads the next messages after its position (and their runs, which commit with
them), then in one short transaction moves the position compare-and-set and writes:

- `PayloadValue` and `PayloadKey`: the payload-field index (inspector/payload_index.py);
- `MessageTally`: messages per (category, type);
- `RunTally`: settled runs (succeeded, resolved, dead) per handler, with the durations of the
  succeeded ones;
- `OpenRun`: runs that may still change (pending, running, failed), counted live until they
  settle, when a later step moves them into the tallies; a dead run an operator replays or
  resolves comes back here (`reopen_runs`, called by inspector/services/runs.py);
- `HandlerLastAttempt`: each handler's latest failed attempt, for the handlers page.

Readers add what lies beyond the position, so nothing is ever missing from a count or a search
while the indexer catches up. The compare-and-set on (position, steps) makes a step that lost a
race to another process roll back: indexers in several processes are safe, and a step applied
twice is impossible. Hook: `start_indexer_thread()` (the embedded worker and `run_handlers`
call it), or `manage.py index_store` on its own, or `index_step()` from any loop.
"""

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import F

from inspector.models import (
    HandlerAttempt,
    HandlerLastAttempt,
    HandlerRun,
    IndexerPosition,
    Message,
    MessageTally,
    OpenRun,
    PayloadKey,
    PayloadValue,
    RunStatus,
    RunTally,
)
from inspector.readmodel import failures, payload_index
from inspector.readmodel.payload_index import INDEXER
from inspector.readmodel.tallies import (
    ATTEMPT_OVERLAP,
    ATTEMPTS_INDEXER,
    SETTLED,
    bucket_of,
    open_runs_from,
)
from inspector.runtime.connections import close_broken_connections, lost_database
from inspector.runtime.sql import placeholders

logger = logging.getLogger(__name__)

BATCH = 2000  # messages per step: a step's write transaction stays short
SETTLE_BATCH = 5000  # open runs moved into the tallies per step
POLL_SECONDS = 1.0  # idle wait between steps: counts stay exact, searches scan a second's tail
ATTEMPT_BATCH = 5000
FOLLOWER_BACKOFF_SECONDS = 10.0  # an indexer that lost a step to another process waits this long
INDEX_TABLES = (PayloadValue, PayloadKey, MessageTally, RunTally, OpenRun, HandlerLastAttempt)


@dataclass
class RunDelta:
    runs: int = 0
    timed: int = 0
    duration_us_sum: int = 0
    buckets: Counter = field(default_factory=Counter)

    def add(self, status, duration_us):
        self.runs += 1
        if status == RunStatus.SUCCEEDED and duration_us is not None:
            self.timed += 1
            self.duration_us_sum += duration_us
            self.buckets[bucket_of(duration_us)] += 1


@dataclass
class Step:
    """What one step read, ready to be written if nobody moved the position meanwhile."""

    position: int
    steps: int
    exists: bool
    reopens: int = 0
    last: int = -1
    messages: int = 0
    values: list = field(default_factory=list)  # (digest, global position)
    keys: set = field(default_factory=set)  # (category, type, key)
    types: dict = field(default_factory=dict)  # (category, type) -> [messages, last position]
    ended: dict = field(default_factory=dict)  # (handler, settled status) -> RunDelta
    opened: list = field(default_factory=list)  # run ids
    settled: list = field(default_factory=list)  # open run ids that have settled
    attempts_from: int = -1  # the attempts position read
    attempts_last: int = -1
    last_attempts: dict = field(default_factory=dict)  # handler -> newest attempt id read
    dead: list = field(default_factory=list)  # failures.DeadRun of the dead runs settled

    @property
    def empty(self):
        return (
            self.last == self.position
            and not self.settled
            and self.attempts_last == self.attempts_from
        )


class Overtaken(Exception):
    """Another indexer moved the position first; this step's reads are stale."""


def read_step(*, batch=BATCH):
    """Read the next batch (outside any transaction: these rows never change once committed)."""
    row = (
        IndexerPosition.objects.filter(name=INDEXER)
        .values_list("position", "steps", "reopens")
        .first()
    )
    position, steps, reopens = row or (-1, 0, 0)
    step = Step(
        position=position, steps=steps, exists=row is not None, last=position, reopens=reopens
    )
    rows = list(
        Message.objects.filter(global_position__gt=position)
        .order_by("global_position")
        .values_list("global_position", "category", "type", "data")[:batch]
    )
    for global_position, category, type_name, data in rows:
        entry = step.types.setdefault((category, type_name), [0, -1])
        entry[0] += 1
        entry[1] = global_position
        for key, text in payload_index.fields_of(data):
            step.keys.add((category, type_name, key))
            step.values.append(
                (payload_index.digest(category, type_name, key, text), global_position)
            )
    if rows:
        step.messages = len(rows)
        step.last = rows[-1][0]
        runs = (
            HandlerRun.objects.filter(global_position__gt=position, global_position__lte=step.last)
            .order_by()
            .values_list("id", "handler", "status", "duration_us", *DEAD_FIELDS)
        )
        for run_id, handler, status, duration_us, *dead in runs:
            if status in SETTLED:
                step.ended.setdefault((handler, status), RunDelta()).add(status, duration_us)
                _note_dead(step, handler, status, dead)
            else:
                step.opened.append(run_id)
    for run_id, handler, status, duration_us, *dead in _settled_open_runs():
        step.settled.append(run_id)
        step.ended.setdefault((handler, status), RunDelta()).add(status, duration_us)
        _note_dead(step, handler, status, dead)
    _read_attempts(step)
    return step


# What a dead run's failure group is told of it (failures.fold).
DEAD_FIELDS = ("failure_group", "error_type", "stream", "finished_at")


def _note_dead(step, handler, status, fields):
    key, error_type, stream, finished_at = fields
    if status == RunStatus.DEAD and key:
        step.dead.append(failures.DeadRun(key, handler, error_type, stream, finished_at))


def _read_attempts(step):
    seen = IndexerPosition.objects.filter(name=ATTEMPTS_INDEXER).values_list("position", flat=True)
    seen = seen.first()
    step.attempts_from = step.attempts_last = -1 if seen is None else seen
    newest = HandlerAttempt.objects.order_by("-pk").values_list("pk", flat=True).first()
    if newest is None or newest <= step.attempts_from:
        return
    q = connection.ops.quote_name
    sql = (
        f"SELECT a.id, r.handler FROM {q(HandlerAttempt._meta.db_table)} a "
        f"CROSS JOIN {q(HandlerRun._meta.db_table)} r "
        "WHERE r.id = a.run_id AND a.id > %s ORDER BY a.id LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [step.attempts_from - ATTEMPT_OVERLAP, ATTEMPT_BATCH])
        for attempt_id, handler in cursor.fetchall():
            step.last_attempts[handler] = max(step.last_attempts.get(handler, -1), attempt_id)
            step.attempts_last = max(step.attempts_last, attempt_id)


def _settled_open_runs():
    """Open runs that have since settled: (id, handler, status, duration, *DEAD_FIELDS)."""
    q = connection.ops.quote_name
    marks = placeholders(len(SETTLED))
    dead = ", ".join(f"r.{q(HandlerRun._meta.get_field(name).column)}" for name in DEAD_FIELDS)
    sql = (
        f"SELECT r.id, r.handler, r.status, r.duration_us, {dead} "
        f"FROM {open_runs_from('r')} AND r.status IN ({marks}) LIMIT %s"
    )
    id_field = HandlerRun._meta.pk
    with connection.cursor() as cursor:
        cursor.execute(sql, [*SETTLED, SETTLE_BATCH])
        rows = cursor.fetchall()
    converters = id_field.get_db_converters(connection)
    found = []
    for run_id, handler, status, duration_us, *dead in rows:
        for converter in converters:
            run_id = converter(run_id, id_field, connection)
        dead[-1] = failures.as_moment(dead[-1])  # finished_at, as text on SQLite
        found.append((run_id, handler, status, duration_us, *dead))
    return found


def apply_step(step):
    """Write a step in one transaction; False if another indexer moved the position first."""
    if step.empty:
        return False
    try:
        with transaction.atomic():
            if not step.exists:
                IndexerPosition.objects.bulk_create(
                    [IndexerPosition(name=INDEXER)], ignore_conflicts=True
                )
            moved = IndexerPosition.objects.filter(
                name=INDEXER, position=step.position, steps=step.steps, reopens=step.reopens
            ).update(position=step.last, steps=F("steps") + 1)
            if moved != 1:
                raise Overtaken
            _insert_values(step.values)
            PayloadKey.objects.bulk_create(
                [PayloadKey(category=c, type=t, key=k) for c, t, k in sorted(step.keys)],
                ignore_conflicts=True,
            )
            _add_message_tallies(step.types)
            if step.settled:
                OpenRun.objects.filter(run_id__in=step.settled).delete()
            OpenRun.objects.bulk_create(
                [OpenRun(run_id=run_id) for run_id in step.opened], ignore_conflicts=True
            )
            _add_run_tallies(step.ended)
            failures.fold(step.dead)
            _note_attempts(step)
    except Overtaken:
        return False
    return True


def _insert_values(values):
    if not values:
        return
    q = connection.ops.quote_name
    sql = (
        f"INSERT INTO {q(PayloadValue._meta.db_table)} (digest, global_position) "
        "VALUES (%s, %s) ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, values)


def _add_message_tallies(types):
    if not types:
        return
    categories = {category for category, _ in types}
    names = {name for _, name in types}
    existing = {
        (tally.category, tally.type): tally
        for tally in MessageTally.objects.filter(category__in=categories, type__in=names)
    }
    changed, created = [], []
    for (category, name), (messages, last) in types.items():
        tally = existing.get((category, name))
        if tally is None:
            created.append(
                MessageTally(
                    category=category, type=name, messages=messages, last_global_position=last
                )
            )
        else:
            tally.messages += messages
            tally.last_global_position = max(tally.last_global_position, last)
            changed.append(tally)
    MessageTally.objects.bulk_update(changed, ["messages", "last_global_position"])
    MessageTally.objects.bulk_create(created)


def _add_run_tallies(ended):
    if not ended:
        return
    existing = {
        (tally.handler, tally.status): tally
        for tally in RunTally.objects.filter(handler__in={handler for handler, _ in ended})
    }
    changed, created = [], []
    for (handler, status), delta in ended.items():
        tally = existing.get((handler, status))
        if tally is None:
            tally = RunTally(handler=handler, status=status, buckets={})
            created.append(tally)
        else:
            changed.append(tally)
        tally.runs += delta.runs
        tally.timed += delta.timed
        tally.duration_us_sum += delta.duration_us_sum
        buckets = Counter(tally.buckets)
        buckets.update(delta.buckets)
        tally.buckets = dict(buckets)
    RunTally.objects.bulk_update(changed, ["runs", "timed", "duration_us_sum", "buckets"])
    RunTally.objects.bulk_create(created)


def reopen_runs(run_ids):
    """Hand dead runs back to the open runs before an operator moves them on (replay,
    resolve); call inside that transaction, after locking the runs.

    Bumping the indexer's reopen count first takes its row lock and fails the compare-and-set
    of any step that read these runs before: it reads them again, as they are now, at once (a
    replay job reopens runs every second; counted as steps, they made every indexer back off
    for another indexer that was not there, and the index stood still while the job ran).
    """
    IndexerPosition.objects.bulk_create([IndexerPosition(name=INDEXER)], ignore_conflicts=True)
    IndexerPosition.objects.filter(name=INDEXER).update(reopens=F("reopens") + 1)
    position = IndexerPosition.objects.get(name=INDEXER).position
    open_ids = set(OpenRun.objects.filter(run_id__in=run_ids).values_list("run_id", flat=True))
    dead = [
        (run_id, handler, fields)
        for run_id, handler, *fields in HandlerRun.objects.filter(
            pk__in=run_ids, status=RunStatus.DEAD, global_position__lte=position
        ).values_list("pk", "handler", *DEAD_FIELDS)
        if run_id not in open_ids
    ]
    for handler, runs in Counter(handler for _, handler, _ in dead).items():
        RunTally.objects.filter(handler=handler, status=RunStatus.DEAD).update(
            runs=F("runs") - runs
        )
    failures.unfold([failures.DeadRun(key, handler, *rest) for _, handler, (key, *rest) in dead])
    OpenRun.objects.bulk_create([OpenRun(run_id=run_id) for run_id, _, _ in dead])


def _note_attempts(step):
    if step.attempts_last == step.attempts_from:
        return
    IndexerPosition.objects.bulk_create(
        [IndexerPosition(name=ATTEMPTS_INDEXER)], ignore_conflicts=True
    )
    IndexerPosition.objects.filter(name=ATTEMPTS_INDEXER).update(position=step.attempts_last)
    existing = dict(
        HandlerLastAttempt.objects.filter(handler__in=step.last_attempts).values_list(
            "handler", "attempt_id"
        )
    )
    for handler, attempt_id in step.last_attempts.items():
        if handler not in existing:
            HandlerLastAttempt.objects.create(handler=handler, attempt_id=attempt_id)
        elif attempt_id > existing[handler]:
            HandlerLastAttempt.objects.filter(handler=handler).update(attempt_id=attempt_id)


def index_step(*, batch=BATCH):
    """Read and write one step; returns it, or None when there was nothing to do or another
    indexer got there first."""
    step = read_step(batch=batch)
    return step if apply_step(step) else None


def catch_up(*, batch=BATCH):
    """Step until nothing is left to index or settle; returns the messages indexed."""
    total = 0
    while step := index_step(batch=batch):
        total += step.messages
    return total


def rebuild():
    """Forget everything indexed, so the next steps read the store from the start again.

    For an operator after changing the histogram's buckets or writing runs by hand; readers stay
    exact meanwhile (the whole store is then the live tail), only slower until it catches up.
    """
    with transaction.atomic():
        IndexerPosition.objects.bulk_create([IndexerPosition(name=INDEXER)], ignore_conflicts=True)
        IndexerPosition.objects.filter(name=INDEXER).update(position=-1, steps=F("steps") + 1)
        IndexerPosition.objects.filter(name=ATTEMPTS_INDEXER).delete()
        for model in INDEX_TABLES:
            model.objects.all().delete()
        failures.forget()


# The loop -----------------------------------------------------------------------------------


class Indexer:
    """Steps while there is work, waits `poll` seconds when caught up, until stopped.

    Indexers in several processes are safe but only one needs to work: one that lost a step to
    another backs off and looks again only at the position, stepping itself when the position
    stops moving (the other process stopped).
    """

    def __init__(self, *, poll=POLL_SECONDS, batch=BATCH, backoff=FOLLOWER_BACKOFF_SECONDS):
        self.poll = poll
        self.batch = batch
        self.backoff = backoff
        self._following = None  # the (position, steps) another indexer was at
        self._stopping = threading.Event()

    def step_once(self):
        """One turn of the loop; returns how long to wait before the next."""
        if self._following is not None:
            now_at = _position_row()
            if now_at != self._following:  # the other indexer is still stepping
                self._following = now_at
                return self.backoff
            self._following = None
        step = read_step(batch=self.batch)
        if step.empty:
            return self.poll
        if not apply_step(step):
            now_at = _position_row()
            if now_at == (step.position, step.steps):  # only runs reopened meanwhile
                return 0
            self._following = now_at
            return self.backoff
        return self.poll if step.messages < self.batch else 0

    def run(self):
        try:
            while not self._stopping.is_set():
                close_broken_connections()
                try:
                    wait = self.step_once()
                except Exception as error:
                    if not lost_database(error):
                        logger.exception("Store indexer step failed; retrying in %ss", self.poll)
                    wait = self.poll
                if wait:
                    self._stopping.wait(wait)
        finally:
            connection.close()

    def stop(self):
        self._stopping.set()


def _position_row():
    return IndexerPosition.objects.filter(name=INDEXER).values_list("position", "steps").first()


_started = None
_lock = threading.Lock()


def start_indexer_thread(*, poll=POLL_SECONDS):
    """Start the indexer in a daemon thread of this process, once; returns the Indexer."""
    global _started
    with _lock:
        if _started is None:
            _started = Indexer(poll=poll)
            thread = threading.Thread(target=_started.run, name="inspector-indexer", daemon=True)
            thread.start()
    return _started
