"""Immutable, validated containers: value objects, events and commands."""

import dataclasses
import datetime
import uuid

from django.core.exceptions import ValidationError as DjangoValidationError

from inspector.domain.fields import Field
from inspector.domain.identity import new_id
from inspector.exceptions import ValidationError


class BaseContainer:
    """Holds declared fields; validates every field on construction and is immutable after."""

    _fields: dict[str, Field] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        fields = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Field):
                    fields[name] = value
        cls._fields = fields

    def __init__(self, *args, **kwargs):
        if args:
            raise TypeError(f"{type(self).__name__} takes keyword arguments only")
        errors, data = {}, {}
        for name in kwargs.keys() - self._fields.keys():
            errors[name] = ["Unknown field."]
        for name, field in self._fields.items():
            value = kwargs.get(name)
            if value is None:
                value = field.get_default()
            try:
                data[name] = field.clean(value)
            except ValidationError as exc:
                for sub, messages in exc.errors.items():
                    errors[f"{name}.{sub}" if not sub.startswith("[") else f"{name}{sub}"] = (
                        messages
                    )
            except DjangoValidationError as exc:
                errors[name] = exc.messages
        if errors:
            raise ValidationError(errors)
        object.__setattr__(self, "_data", data)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable; cannot set {name!r}")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable; cannot delete {name!r}")

    def __eq__(self, other):
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __hash__(self):
        return hash((type(self).__name__, repr(sorted(self.to_dict().items()))))

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in self._data.items())
        return f"{type(self).__name__}({fields})"

    def to_dict(self):
        """A JSON-ready dict; `from_dict` of it (even after json round trip) is equal."""
        return {name: field.to_json(self._data.get(name)) for name, field in self._fields.items()}

    @classmethod
    def from_dict(cls, data):
        return cls(
            **{
                name: cls._fields[name].from_json(value) if name in cls._fields else value
                for name, value in data.items()
            }
        )


class BaseValueObject(BaseContainer):
    """A value with no identity: two with the same fields are the same value."""

    def __str__(self):
        return " ".join(str(v) for v in self._data.values() if v is not None)


@dataclasses.dataclass(frozen=True)
class Metadata:
    """Where a stored message sits and what caused it."""

    id: uuid.UUID
    type: str
    kind: str
    stream: str
    position: int
    global_position: int
    time: datetime.datetime
    correlation_id: str
    causation_id: str | None
    origin_stream: str | None
    handler_run_id: str | None = None
    aggregate_version: int | None = None


class BaseMessage(BaseContainer):
    """An event or a command. `_metadata` is set once the message is read from the store."""

    kind = ""
    _type = ""  # set by the domain: "warehouse.OrderShipped.v1"
    _part_of = None  # aggregate model class, resolved by domain.init()
    _domain = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "_metadata", None)
        object.__setattr__(self, "_id", new_id())

    def _with_metadata(self, metadata):
        object.__setattr__(self, "_metadata", metadata)
        object.__setattr__(self, "_id", metadata.id)
        return self


class BaseEvent(BaseMessage):
    kind = "event"


class BaseCommand(BaseMessage):
    kind = "command"

    def _identity(self):
        """The id that names this command's stream: the field marked identifier=True, if set."""
        for name, field in self._fields.items():
            if field.identifier and self._data.get(name):
                return str(self._data[name])
        return None
