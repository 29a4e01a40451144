"""What happened to a message or a correlation, read from the store as participants and steps.

`build_flow` turns stored messages, handler runs and their failed attempts into a plain `Flow`
that `inspector.dashboard.drawing.sequence` draws as SVG and `inspector.dashboard.drawing.mermaid`
writes as Mermaid. It reads a whole correlation at once (two queries, four when a run has a
history of failures or replays), never one query per message.
"""

import json
import re
import uuid
from dataclasses import dataclass, field, replace

from inspector.dashboard.formatting import clip, format_ms
from inspector.models import (
    HandlerAttempt,
    HandlerRun,
    HandlerRunReplay,
    Message,
    MessageKind,
    RunStatus,
)
from inspector.runtime.names import short_handler, short_type
from inspector.services import payload_diff

STORE = "store"
DEFAULT_LIMIT = 500  # messages drawn at most; a longer correlation is cut, with a note

FAILED = (RunStatus.FAILED, RunStatus.DEAD)

# Participant kinds, in their left-to-right order.
COMMAND = "command"
COMMAND_HANDLER = "command_handler"
AGGREGATE = "aggregate"
EVENT_STORE = "store"
EVENT_HANDLER = "event_handler"
WRITTEN_AGGREGATE = "written_aggregate"  # an aggregate only event handlers write
_ORDER = [COMMAND, COMMAND_HANDLER, AGGREGATE, EVENT_STORE, EVENT_HANDLER, WRITTEN_AGGREGATE]


@dataclass(frozen=True)
class Participant:
    """One lifeline: a command, a handler, an aggregate (by stream category) or the store."""

    key: str
    kind: str
    label: str
    detail: str = ""

    @property
    def kind_label(self):
        if self.kind == WRITTEN_AGGREGATE:
            return "aggregate"
        return self.kind.replace("_", " ")


@dataclass(frozen=True)
class Step:
    """One arrow (or note) of the diagram, at a real time relative to the flow's first message.

    kind is one of command, run, raise, persist, append, deliver, note. A run step is drawn
    from its handler to itself; status is the run's (or the attempt's) outcome.
    """

    kind: str
    source: str
    target: str
    label: str
    at_ms: float | None
    status: str = ""
    error: str = ""
    detail: str = ""
    level: int = 0
    message_id: str = ""
    run_id: str = ""
    attempt: int | None = None

    @property
    def is_arrow(self):
        return self.kind != "note"

    @property
    def is_self(self):
        return self.source == self.target

    @property
    def failed(self):
        return self.status in FAILED


@dataclass(frozen=True)
class _RunContext:
    is_event: bool
    lane: str
    name: str
    level: int
    message_id: str
    run_id: str


@dataclass
class Flow:
    """Participants left to right and steps in time order, ready to draw."""

    correlation_id: str
    focus_id: str | None = None
    started_at: object = None  # datetime of the first message drawn; steps are ms after it
    participants: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    depth: int | None = None
    hidden_runs: int = 0  # handler runs below the depth, not drawn
    truncated: bool = False  # the correlation had more messages than the limit
    pending: bool = False  # a run drawn here may still change: the page should refresh

    @property
    def arrows(self):
        return [step for step in self.steps if step.is_arrow]

    def participant(self, key):
        return next(p for p in self.participants if p.key == key)

    def index_of(self, key):
        return next(i for i, p in enumerate(self.participants) if p.key == key)


def build_flow(source, *, depth=None, limit=DEFAULT_LIMIT, payloads=True):
    """The flow around one message, or of a whole correlation, from the stored rows.

    source: a `Message` (its cause chain, itself, and what followed from it down to `depth`
    levels of follow-on events) or a correlation id (every message of the correlation).
    depth: levels of events raised by event handlers to expand; None for all.
    """
    if isinstance(source, Message):
        focus, correlation_id = source, source.correlation_id
    else:
        focus, correlation_id = None, uuid.UUID(str(source))
    messages = list(
        Message.objects.filter(correlation_id=correlation_id).order_by("global_position")[
            : limit + 1
        ]
    )
    truncated = len(messages) > limit
    messages = messages[:limit]
    runs = HandlerRun.objects.filter(message__correlation_id=correlation_id)
    if truncated:  # only the runs of the messages drawn
        runs = runs.filter(message__global_position__lte=messages[-1].global_position)
    if focus is not None and all(m.pk != focus.pk for m in messages):
        messages.append(focus)
    runs = list(runs.defer("traceback").order_by("global_position", "created_at", "handler"))
    attempts, replays = [], []
    if any(_has_history(run) for run in runs):
        attempts = list(
            HandlerAttempt.objects.filter(run__message__correlation_id=correlation_id)
            .defer("traceback")
            .order_by("run_id", "number")
        )
        replays = list(
            HandlerRunReplay.objects.filter(run__message__correlation_id=correlation_id)
            .select_related("user")
            .order_by("run_id", "at")
        )
    builder = _Builder(messages, runs, attempts, replays, depth=depth, payloads=payloads)
    flow = builder.build(focus)
    flow.correlation_id = str(correlation_id)
    flow.truncated = truncated
    if truncated and flow.participants:
        lane = STORE if any(p.key == STORE for p in flow.participants) else flow.participants[0].key
        flow.steps.append(
            Step(
                "note",
                lane,
                lane,
                f"flow cut at {limit} messages",
                None,
                status="truncated",
                detail=f"Only the first {limit} messages of this correlation are drawn.",
            )
        )
    return flow


def _has_history(run):
    """Whether a run may have failed attempts or replays worth a query."""
    if run.status in (*FAILED, RunStatus.RESOLVED):
        return True
    return run.attempts > (1 if run.status == RunStatus.SUCCEEDED else 0)


class _Builder:
    """Walks the cause tree of one correlation and emits steps; no queries."""

    def __init__(self, messages, runs, attempts, replays, *, depth, payloads=True):
        self.depth = depth
        self.payloads = payloads  # False: hover details leave message data out
        self.messages = {str(m.pk): m for m in messages}
        self.runs = {str(r.pk): r for r in runs if str(r.message_id) in self.messages}
        self.runs_of = {}
        for run in self.runs.values():
            self.runs_of.setdefault(str(run.message_id), []).append(run)
        self.attempts_of = {}
        for attempt in attempts:
            self.attempts_of.setdefault(str(attempt.run_id), []).append(attempt)
        self.replays_of = {}
        for replay in replays:
            self.replays_of.setdefault(str(replay.run_id), []).append(replay)
        self.run_that_raised = {
            message_id: run
            for run in self.runs.values()
            for message_id in (run.raised_message_ids or [])
        }
        self.parent_run = {}  # message id -> the run that raised it
        self.raised_by = {}  # run id -> messages it raised, in store order
        for message in sorted(messages, key=lambda m: m.global_position):
            run = self._raising_run(message)
            if run is not None:
                self.parent_run[str(message.pk)] = run
                self.raised_by.setdefault(str(run.pk), []).append(message)
        self.participants = {}
        self.steps = []  # (sort key, step)
        self.hidden_runs = 0
        self.pending = False
        self.t0 = None

    def _raising_run(self, message):
        run_id = (message.metadata or {}).get("handler_run_id")
        run = self.runs.get(str(run_id)) if run_id else None
        if run is None:  # no run id in the metadata: ask what runs say they raised
            run = self.run_that_raised.get(str(message.pk))
        if run is not None and str(run.message_id) == str(message.pk):
            return None
        return run

    # Walking --------------------------------------------------------------------------------

    def build(self, focus):
        if focus is not None:
            key = str(focus.pk)
            chain = [self.messages[key]]
            while str(chain[0].pk) in self.parent_run:
                parent = self.parent_run[str(chain[0].pk)]
                upper = self.messages.get(str(parent.message_id))
                if upper is None or upper in chain:
                    break
                chain.insert(0, upper)
            roots = chain[:1]
            self.path = {str(m.pk) for m in chain}
            self.focus_key = key
        else:
            roots = [m for k, m in self.messages.items() if k not in self.parent_run]
            roots.sort(key=lambda m: m.global_position)
            self.path, self.focus_key = set(), None
        self.t0 = min((m.time for m in roots), default=None)
        for root in roots:
            self._enter(root, None, level=0)
        return Flow(
            correlation_id="",
            focus_id=self.focus_key,
            started_at=self.t0,
            participants=self._ordered_participants(),
            steps=[step for _, step in sorted(self.steps, key=lambda item: item[0])],
            depth=self.depth,
            hidden_runs=self.hidden_runs,
            pending=self.pending,
        )

    def _enter(self, message, parent, *, level):
        """The steps that bring a message into the store, then what handled it."""
        self._entry_steps(message, parent, level)
        self._expand(message, level)

    def _expand(self, message, level):
        key = str(message.pk)
        on_path = self.focus_key is not None and key in self.path and key != self.focus_key
        for run in self.runs_of.get(key, []):
            raised = self.raised_by.get(str(run.pk), [])
            if on_path:  # above the focus: only the run that leads down to it
                if not any(str(m.pk) in self.path for m in raised):
                    continue
                raised = [m for m in raised if str(m.pk) in self.path]
            self._run_steps(message, run, level, raised_nothing=not raised)
            for child in raised:
                child_key = str(child.pk)
                # Depth counts events raised by event handlers, from the focus down.
                if child_key == self.focus_key:
                    child_level = 0
                else:
                    child_level = level + (1 if message.kind == MessageKind.EVENT else 0)
                self._entry_steps(child, run, child_level)
                if child_key in self.path or self.depth is None or child_level <= self.depth:
                    self._expand(child, child_level)
                else:
                    self._hide(child, child_level)

    def _hide(self, message, level):
        """A follow-on event past the depth: count what is not drawn and say so once."""
        count, runs, stack = 0, 0, [message]
        while stack:
            current = stack.pop()
            count += 1
            for run in self.runs_of.get(str(current.pk), []):
                runs += 1
                stack.extend(self.raised_by.get(str(run.pk), []))
        if not runs:
            return
        self.hidden_runs += runs
        noun = "run" if runs == 1 else "runs"
        self._add(
            message.time,
            Step(
                "note",
                STORE,
                STORE,
                f"{short_type(message.type)}: {runs} {noun} below depth {self.depth}",
                None,
                status="hidden",
                detail=f"{runs} handler {noun} and {count - 1} further messages are not drawn; "
                "increase the depth to see them.",
                level=level,
                message_id=str(message.pk),
            ),
        )

    # Steps ----------------------------------------------------------------------------------

    def _entry_steps(self, message, parent, level):
        key = str(message.pk)
        name = short_type(message.type)
        if message.kind == MessageKind.COMMAND:
            runs = self.runs_of.get(key, [])
            if runs:
                target = self._handler(runs[0], COMMAND_HANDLER)
            else:
                target = self._aggregate(_command_category(message.stream), AGGREGATE)
            if parent is not None:
                source = self._handler(parent, self._handler_kind(parent))
            else:
                source = self._lane(f"command:{message.type}", COMMAND, name, message.type)
            self._add(
                message.time,
                Step(
                    "command",
                    source,
                    target,
                    name,
                    None,
                    detail=_message_detail(message, "command", self.payloads),
                    level=level,
                    message_id=key,
                    run_id=str(parent.pk) if parent else "",
                ),
            )
            return
        aggregate_kind = AGGREGATE
        if parent is not None and self._handler_kind(parent) == EVENT_HANDLER:
            aggregate_kind = WRITTEN_AGGREGATE
        aggregate = self._aggregate(message.category, aggregate_kind)
        if parent is not None:
            handler = self._handler(parent, self._handler_kind(parent))
            if self._handler_kind(parent) == EVENT_HANDLER:
                kind = "persist"
                label = f"persist {_aggregate_label(message.category)} · raise_ {name}"
            else:
                kind, label = "raise", f"raise_ {name}"
            self._add(
                message.time,
                Step(
                    kind,
                    handler,
                    aggregate,
                    label,
                    None,
                    detail=f"{short_handler(parent.handler)} raised {name} on "
                    f"{_aggregate_label(message.category)} "
                    f"(aggregate version {(message.metadata or {}).get('aggregate_version')})",
                    level=level,
                    message_id=key,
                    run_id=str(parent.pk),
                ),
            )
        self._add(
            message.time,
            Step(
                "append",
                aggregate,
                self._store(),
                f"append {name} at #{message.position} (global {message.global_position})",
                None,
                detail=_message_detail(message, "event", self.payloads),
                level=level,
                message_id=key,
                run_id=str(parent.pk) if parent else "",
            ),
        )

    def _run_steps(self, message, run, level, *, raised_nothing):
        """Every attempt of a run: delivery (for events), the run itself, replays between."""
        is_event = message.kind == MessageKind.EVENT
        ctx = _RunContext(
            is_event=is_event,
            lane=self._handler(run, EVENT_HANDLER if is_event else COMMAND_HANDLER),
            name=short_type(message.type),
            level=level,
            message_id=str(message.pk),
            run_id=str(run.pk),
        )
        failures = self.attempts_of.get(ctx.run_id, [])
        total = max(run.attempts, len(failures))
        # A failed or dead run's last attempt is the run row itself, drawn below.
        last = next((a for a in failures if a.number == run.attempts), None)
        if run.status not in FAILED:
            last = None
        history = [(a.started_at, "attempt", a) for a in failures if a is not last]
        history += [(r.at, "replay", r) for r in self.replays_of.get(ctx.run_id, [])]
        # Edit and replay: the attempts since the edit ran with its payload, not the stored one.
        edit = next((r for r in self.replays_of.get(ctx.run_id, []) if r.pk == run.edit_id), None)
        for _, what, item in sorted(history, key=lambda h: (h[0], h[1])):
            if what == "replay":
                self._replay_note(ctx, item)
                continue
            self._attempt(
                ctx,
                at=item.started_at,
                number=item.number,
                total=total,
                status=RunStatus.FAILED,
                duration_us=item.duration_us,
                error=_error(item.error_type, item.error_message),
                detail=f"{run.handler} ← {ctx.name}\nattempt {item.number} failed "
                f"(worker {item.worker or '?'})",
                edit=edit if edit is not None and item.started_at >= edit.at else None,
            )
        status = run.status
        if status in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.FAILED):
            self.pending = True  # failed runs wait for their next attempt
        if status == RunStatus.RESOLVED:
            return
        if status in FAILED:
            error = _error(run.error_type, run.error_message)
            if last is not None and not error:
                error = _error(last.error_type, last.error_message)
            at = run.started_at or (last.started_at if last else None)
            duration = run.duration_us
            if duration is None and last is not None:
                duration = last.duration_us
            detail = f"{run.handler} ← {ctx.name}\n{status} after attempt {run.attempts}"
            if status == RunStatus.FAILED and run.available_at:
                detail += f"; next attempt at {_clock(run.available_at)}"
        elif status in (RunStatus.PENDING, RunStatus.RUNNING):
            at, duration, error = run.started_at or run.available_at, None, ""
            detail = f"{run.handler} ← {ctx.name}\n{status} since {_clock(at)}"
        else:
            at, duration, error = run.started_at, run.duration_us, ""
            took = format_ms(us=run.duration_us, missing="?")
            detail = f"{run.handler} ← {ctx.name}\n{status} in {took}"
            if raised_nothing:
                detail += "\nraised no events"
        waiting = status in (RunStatus.PENDING, RunStatus.RUNNING)
        number = run.attempts + 1 if waiting else run.attempts
        self._attempt(
            ctx,
            at=at,
            number=number,
            total=max(total, number),
            status=status,
            duration_us=duration,
            error=error,
            detail=detail,
            raised_nothing=raised_nothing and status == RunStatus.SUCCEEDED,
            edit=edit,
        )

    def _attempt(
        self,
        ctx,
        *,
        at,
        number,
        total,
        status,
        duration_us,
        error,
        detail,
        raised_nothing=False,
        edit=None,
    ):
        retry = f" · attempt {number}" if total > 1 and number else ""
        edited, edited_detail = "", ""
        if edit is not None:  # edit and replay: this attempt ran with the edited payload
            edited, edited_detail = " · edited payload", f"\nwith the payload {_edited_by(edit)}"
        detail += edited_detail
        if ctx.is_event:
            deliver = f"deliver {ctx.name}{retry}{edited}"
            if status == RunStatus.PENDING:
                deliver += " · pending"
            self._add(
                at,
                Step(
                    "deliver",
                    self._store(),
                    ctx.lane,
                    deliver,
                    None,
                    status=status,
                    detail=f"Event store → {ctx.lane.partition(':')[2]}\n{ctx.name}{retry}"
                    f"{edited_detail}",
                    level=ctx.level,
                    message_id=ctx.message_id,
                    run_id=ctx.run_id,
                    attempt=number or None,
                ),
            )
            if status == RunStatus.PENDING:
                return
        if status == RunStatus.PENDING:
            label = "pending"
        elif status == RunStatus.RUNNING:
            label = "running"
        elif status in FAILED:
            label = f"{status} after {format_ms(us=duration_us, missing='?')}"
        else:
            label = f"handled in {format_ms(us=duration_us, missing='?')}"
            if raised_nothing:
                label += " · raised no events"
        if retry and not ctx.is_event:
            label += retry
        if not ctx.is_event:  # an event's delivery says it
            label += edited
        self._add(
            at,
            Step(
                "run",
                ctx.lane,
                ctx.lane,
                label,
                None,
                status=status,
                error=error,
                detail=detail + (f"\n{error}" if error else ""),
                level=ctx.level,
                message_id=ctx.message_id,
                run_id=ctx.run_id,
                attempt=number or None,
            ),
        )

    def _replay_note(self, ctx, replay):
        who = replay.user.get_username() if replay.user else "someone"
        verb = "replayed" if replay.action == HandlerRunReplay.Action.REPLAY else "resolved"
        label = f"{verb} by {who}"
        if replay.edited_data is not None:
            label = f"{verb} with an edited payload by {who}"
        if replay.reason:
            label += f": {clip(replay.reason, 60)}"
        self._add(
            replay.at,
            Step(
                "note",
                ctx.lane,
                ctx.lane,
                label,
                None,
                status=verb,
                detail=f"{verb} by {who} at {_clock(replay.at)} (was {replay.previous_status} "
                f"after {replay.attempts_before} attempts)\n{replay.reason}",
                level=ctx.level,
                message_id=ctx.message_id,
                run_id=ctx.run_id,
            ),
        )

    # Participants ---------------------------------------------------------------------------

    def _lane(self, key, kind, label, detail):
        if key not in self.participants:
            self.participants[key] = [kind, label, detail, len(self.participants)]
        else:
            current = self.participants[key]
            if _ORDER.index(kind) < _ORDER.index(current[0]):
                current[0] = kind
        return key

    def _store(self):
        return self._lane(STORE, EVENT_STORE, "Event store", "the message store")

    def _handler(self, run, kind):
        return self._lane(f"handler:{run.handler}", kind, short_handler(run.handler), run.handler)

    def _aggregate(self, category, kind):
        return self._lane(f"aggregate:{category}", kind, _aggregate_label(category), category)

    def _handler_kind(self, run):
        message = self.messages.get(str(run.message_id))
        if message is not None and message.kind == MessageKind.COMMAND:
            return COMMAND_HANDLER
        return EVENT_HANDLER

    def _ordered_participants(self):
        ordered = sorted(
            self.participants.items(), key=lambda item: (_ORDER.index(item[1][0]), item[1][3])
        )
        return [
            Participant(key=key, kind=kind, label=label, detail=detail)
            for key, (kind, label, detail, _) in ordered
        ]

    def _add(self, at, step):
        at_ms = None if at is None or self.t0 is None else (at - self.t0).total_seconds() * 1000
        step = replace(step, at_ms=at_ms)
        # Untimed steps sort last; equal times keep the order they were walked in.
        self.steps.append(((at_ms is None, at_ms or 0.0, len(self.steps)), step))


# Text helpers ---------------------------------------------------------------------------------


def _aggregate_label(category):
    """`warehouse::order_line` → `OrderLine`."""
    tail = str(category).rsplit("::", 1)[-1]
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\s]+", tail) if part)


def _command_category(stream):
    return stream.split(":command", 1)[0]


def _error(error_type, message):
    if not error_type and not message:
        return ""
    return f"{short_handler(error_type) if error_type else 'Error'}: {message}".strip()


def _edited_by(replay):
    """`edited by alice at ...: items` for an edited replay: who, when, and which fields."""
    who = replay.user.get_username() if replay.user else "someone"
    fields = ", ".join(c.field for c in payload_diff(replay.original_data, replay.edited_data))
    return f"edited by {who} at {_clock(replay.at)}: {fields}"


def _clock(at):
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC" if at else "?"


def _message_detail(message, noun, payloads=True):
    meta = message.metadata or {}
    data = json.dumps(message.data, ensure_ascii=False, sort_keys=True, default=str)
    lines = [
        f"{message.type} ({noun}) {message.pk}",
        f"stream {message.stream} at #{message.position}, global {message.global_position}",
        f"recorded {_clock(message.time)}",
        f"correlation {message.correlation_id}",
    ]
    if meta.get("causation_id"):
        lines.append(f"caused by {meta['causation_id']}")
    if payloads:
        lines.append(f"data {clip(data, 400)}")
    return "\n".join(lines)
