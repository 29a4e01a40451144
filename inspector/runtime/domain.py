"""The Domain: a registry of aggregates, messages and handlers, and the way commands run."""

import random
import re
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.module_loading import import_string

from inspector import conf
from inspector.domain.aggregates import AggregateRoot, Entity
from inspector.domain.identity import new_id
from inspector.domain.messages import BaseCommand, BaseEvent, BaseMessage, BaseValueObject
from inspector.exceptions import ConfigurationError, IncorrectUsageError
from inspector.runtime import capture, names
from inspector.runtime.dispatch import Dispatcher
from inspector.runtime.repository import Repository
from inspector.runtime.store import category_of
from inspector.runtime.unit_of_work import Cause, caused_by, current_cause, unit_of_work


def handle(message_cls):
    """Mark a handler method as the one that processes `message_cls`."""

    def decorator(fn):
        fn._handles = message_cls
        return fn

    return decorator


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass
class HandlerSpec:
    """A registered command or event handler class and the messages it handles."""

    name: str
    handler_cls: type
    kind: str  # "command_handler" or "event_handler"
    part_of: object
    stream_category: str | None = None
    source_stream: str | None = None
    methods: dict = field(default_factory=dict)  # message class -> method name
    retries: int = 3  # attempts after the first before the run is dead
    backoff_base: float = 1.0  # seconds before the first retry; doubles each time
    backoff_cap: float = 300.0
    park_on_failure: bool = False  # a dead run holds back the rest of its stream

    def retry_delay(self, attempt):
        """Exponential backoff with full jitter, capped (attempt counts from 1)."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def method_for(self, message_cls):
        return getattr(self.handler_cls, self.methods[message_cls])

    def handles(self):
        return list(self.methods)

    def accepts(self, stream, origin_stream):
        if category_of(stream) != self.stream_category:
            return False
        if self.source_stream is None:
            return True
        return origin_stream is not None and self.source_stream in (
            origin_stream,
            category_of(origin_stream),
        )


_domain_stack = ContextVar("inspector_domain_stack", default=())
_all_domains = []


class Domain:
    """A bounded context's registry and runtime, as in Protean's `Domain`."""

    def __init__(self, name):
        self.name = name
        self.config = {
            "event_processing": conf.setting("event_processing"),
            "command_processing": conf.setting("command_processing"),
        }
        self.aggregates = []
        self.entities = []
        self.value_objects = []
        self.events = []
        self.commands = []
        self.command_handlers = []
        self.event_handlers = []
        self._handlers_by_name = {}
        self._message_types = {}
        self._command_handler_for = {}
        self._subscribers = {}
        self.initialized = False
        self.dispatcher = Dispatcher(self)
        _all_domains.append(self)

    def __repr__(self):
        return f"<Domain {self.name}>"

    @property
    def dry_run(self):
        """True while the code runs inside a dry run (inspector/runtime/dry_run.py), which
        rolls back what it writes and keeps its emails: skip calls to other systems then."""
        return capture.active()

    # Registration -------------------------------------------------------------------------

    def aggregate(self, cls):
        if not (isinstance(cls, type) and issubclass(cls, AggregateRoot)):
            raise ConfigurationError(f"{cls.__name__} must subclass AggregateRoot")
        cls._domain = self
        self.aggregates.append(cls)
        return cls

    def entity(self, cls=None, *, part_of):
        def register(cls):
            if not issubclass(cls, Entity):
                raise ConfigurationError(f"{cls.__name__} must subclass Entity")
            cls._part_of = part_of
            cls._domain = self
            self.entities.append(cls)
            return cls

        return register(cls) if cls is not None else register

    def value_object(self, cls):
        cls = _as(cls, BaseValueObject)
        self.value_objects.append(cls)
        return cls

    def event(self, cls=None, *, part_of=None, version=1):
        return self._message(cls, BaseEvent, self.events, part_of, version)

    def command(self, cls=None, *, part_of=None, version=1):
        return self._message(cls, BaseCommand, self.commands, part_of, version)

    def _message(self, cls, base, registry, part_of, version):
        def register(cls):
            cls = _as(cls, base)
            cls._part_of = part_of
            cls._domain = self
            cls._type = names.message_type(self.name, cls.__name__, version)
            registry.append(cls)
            self.initialized = False
            return cls

        return register(cls) if cls is not None else register

    def command_handler(self, cls=None, *, part_of=None, **options):
        return self._handler(cls, "command_handler", part_of, None, None, options)

    def event_handler(
        self, cls=None, *, part_of=None, stream_category=None, source_stream=None, **options
    ):
        """Options: retries, backoff_base, backoff_cap (seconds), park_on_failure."""
        return self._handler(cls, "event_handler", part_of, stream_category, source_stream, options)

    def _handler(self, cls, kind, part_of, stream_category, source_stream, options):
        unknown = options.keys() - {"retries", "backoff_base", "backoff_cap", "park_on_failure"}
        if unknown:
            raise ConfigurationError(f"Unknown handler options: {', '.join(sorted(unknown))}")

        def register(cls):
            spec = HandlerSpec(
                name=names.handler_name(self.name, cls.__name__),
                handler_cls=cls,
                kind=kind,
                part_of=part_of,
                stream_category=stream_category,
                source_stream=source_stream,
                retries=options.get("retries", conf.setting("retries")),
                backoff_base=options.get("backoff_base", conf.setting("backoff_base")),
                backoff_cap=options.get("backoff_cap", conf.setting("backoff_cap")),
                park_on_failure=options.get("park_on_failure", False),
            )
            for attr, value in vars(cls).items():
                target = getattr(value, "_handles", None)
                if target is None:
                    continue
                if target in spec.methods:
                    raise ConfigurationError(
                        f"{cls.__name__} handles {getattr(target, '__name__', target)} twice "
                        f"({spec.methods[target]} and {attr})"
                    )
                spec.methods[target] = attr
            cls._spec = spec
            (self.command_handlers if kind == "command_handler" else self.event_handlers).append(
                spec
            )
            self.initialized = False
            return cls

        return register(cls) if cls is not None else register

    # Start-up checks ----------------------------------------------------------------------

    def init(self):
        """Resolve names and check every declaration; mistakes fail here, naming the class."""
        by_name = {cls.__name__: cls for cls in self.aggregates}

        def resolve(owner, part_of):
            if isinstance(part_of, str):
                if part_of not in by_name:
                    raise ConfigurationError(
                        f"{owner.__name__}: part_of={part_of!r} is not a registered aggregate"
                    )
                return by_name[part_of]
            return part_of

        self._message_types = {}
        for cls in [*self.events, *self.commands]:
            cls._part_of = resolve(cls, cls._part_of)
            if cls._part_of is None:
                raise ConfigurationError(f"{cls.__name__} needs part_of=<aggregate>")
            other = self._message_types.get(cls._type)
            if other is not None and other is not cls:
                raise ConfigurationError(
                    f"{cls.__module__}.{cls.__name__} and {other.__module__}."
                    f"{other.__name__} share the message type {cls._type}"
                )
            self._message_types[cls._type] = cls
        for cls in self.entities:
            cls._part_of = resolve(cls, cls._part_of)

        self._handlers_by_name = {}
        self._command_handler_for = {}
        self._subscribers = {}
        for spec in [*self.command_handlers, *self.event_handlers]:
            cls = spec.handler_cls
            spec.part_of = resolve(cls, spec.part_of)
            if spec.name in self._handlers_by_name:
                raise ConfigurationError(f"Two handlers are named {spec.name}")
            self._handlers_by_name[spec.name] = spec
            if not spec.methods:
                raise ConfigurationError(f"{cls.__name__} has no @handle methods")
            expected = self.commands if spec.kind == "command_handler" else self.events
            noun = "command" if spec.kind == "command_handler" else "event"
            for target, attr in spec.methods.items():
                if target not in expected:
                    raise ConfigurationError(
                        f"{cls.__name__}.{attr} handles "
                        f"{getattr(target, '__name__', repr(target))}, "
                        f"which is not a registered {noun} of domain {self.name!r}"
                    )
            if spec.kind == "command_handler":
                if spec.part_of is None:
                    raise ConfigurationError(f"{cls.__name__} needs part_of=<aggregate>")
                for command in spec.methods:
                    if command in self._command_handler_for:
                        raise ConfigurationError(
                            f"{command.__name__} has two handlers: "
                            f"{self._command_handler_for[command].handler_cls.__name__} and "
                            f"{cls.__name__}"
                        )
                    self._command_handler_for[command] = spec
            else:
                if spec.part_of is None and spec.stream_category is None:
                    raise ConfigurationError(
                        f"{cls.__name__} needs part_of=<aggregate> or stream_category=..."
                    )
                if spec.stream_category is None:
                    spec.stream_category = self.stream_category(spec.part_of)
                for event in spec.methods:
                    self._subscribers.setdefault(event, []).append(spec)
        self.initialized = True
        return self

    def _ensure_initialized(self):
        if not self.initialized:
            self.init()

    # Lookups ------------------------------------------------------------------------------

    def stream_category(self, aggregate_cls):
        return f"{self.name}::{_snake(aggregate_cls.__name__)}"

    def entity_relations(self, aggregate_cls):
        return [
            rel
            for rel in aggregate_cls._meta.related_objects
            if rel.related_model in self.entities and rel.related_model._part_of is aggregate_cls
        ]

    def subscribers(self, event, stream, metadata):
        self._ensure_initialized()
        origin = metadata.get("origin_stream")
        return [s for s in self._subscribers.get(type(event), ()) if s.accepts(stream, origin)]

    def handler_named(self, name):
        self._ensure_initialized()
        return self._handlers_by_name[name]

    def handlers(self):
        self._ensure_initialized()
        return list(self._handlers_by_name.values())

    def message_class(self, type_name):
        self._ensure_initialized()
        return self._message_types[type_name]

    def repository_for(self, model):
        return Repository(self, model)

    # Running commands ---------------------------------------------------------------------

    def process(self, command, *, asynchronous=None, correlation_id=None):
        """Store the command and run its handler; return what the handler returns."""
        self._ensure_initialized()
        if not isinstance(command, BaseCommand) or type(command) not in self._command_handler_for:
            raise IncorrectUsageError(f"{command!r} is not a registered command of {self.name}")
        if asynchronous is None:
            asynchronous = self.config["command_processing"] == "async"
        spec = self._command_handler_for[type(command)]
        category = self.stream_category(command._part_of)
        identity = command._identity()
        stream = f"{category}:command-{identity or new_id()}"
        parent = current_cause() or Cause.root(correlation_id)
        with unit_of_work(self) as uow:
            entry = uow.append(command, stream=stream, cause=parent, new_stream=identity is None)
            if asynchronous:  # a worker runs the handler; the caller gets the command's id
                uow.explicit_runs.append(self.dispatcher.pending_command_run(entry, spec))
                return command._id
            run_id = new_id()
            cause = Cause(
                message_id=str(command._id),
                correlation_id=parent.correlation_id,
                stream=stream,
                origin_stream=entry.metadata["origin_stream"],
                handler_run_id=str(run_id),
            )
            started_at = timezone.now()
            started = time.perf_counter()
            with caused_by(cause):
                result = getattr(spec.handler_cls(), spec.methods[type(command)])(command)
            uow.explicit_runs.append(
                self.dispatcher.command_run(
                    run_id, entry, spec, started_at, int((time.perf_counter() - started) * 1e6)
                )
            )
        return result

    @contextmanager
    def domain_context(self):
        token = _domain_stack.set((*_domain_stack.get(), self))
        try:
            yield self
        finally:
            _domain_stack.reset(token)


def _as(cls, base):
    """Turn a plain declared class into a subclass of `base`, keeping its name and fields."""
    if issubclass(cls, base):
        return cls
    namespace = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
    new = type(cls.__name__, (base,), namespace)
    new.__module__ = cls.__module__
    new.__qualname__ = cls.__qualname__
    return new


class _CurrentDomain:
    """The domain in use: the innermost `domain_context()`, else the `domain` setting, else
    the only domain there is. Its attributes are the domain's (`current_domain.process`)."""

    def get(self):
        """The `Domain` object itself, to pass on or compare."""
        stack = _domain_stack.get()
        if stack:
            return stack[-1]
        path = conf.setting("domain")
        if path:
            return import_string(path)
        if len(_all_domains) == 1:
            return _all_domains[0]
        raise IncorrectUsageError("No active domain: use `with domain.domain_context():`")

    def __getattr__(self, name):
        return getattr(self.get(), name)

    def __repr__(self):
        return f"<current_domain {self.get()!r}>"


current_domain = _CurrentDomain()

__all__ = ["Domain", "handle", "current_domain", "BaseMessage"]
