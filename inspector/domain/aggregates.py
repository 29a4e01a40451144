"""Aggregates are Django models: they record events with `raise_` and persist via a repository."""

import json
import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from inspector.domain.identity import new_id
from inspector.exceptions import IncorrectUsageError


class ValueObjectField(models.JSONField):
    """Stores a value object in its owning row and gives it back as the value object."""

    def __init__(self, value_object_cls=None, *args, **kwargs):
        self.value_object_cls = value_object_cls
        kwargs.setdefault("encoder", DjangoJSONEncoder)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        # Migrations see a plain JSONField: the value object's class is not schema.
        name, _, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs

    def from_db_value(self, value, expression, connection):
        value = super().from_db_value(value, expression, connection)
        return self.to_python(value)

    def to_python(self, value):
        if isinstance(value, str):
            value = json.loads(value)
        if isinstance(value, dict):
            return self.value_object_cls.from_dict(value)
        return value

    def get_prep_value(self, value):
        if isinstance(value, self.value_object_cls):
            value = value.to_dict()
        return super().get_prep_value(value)

    def validate(self, value, model_instance):
        if value is not None and not isinstance(value, self.value_object_cls):
            value = self.to_python(value)
        super().validate(value.to_dict() if value is not None else None, model_instance)

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return json.dumps(value.to_dict() if value is not None else None)


class Entity(models.Model):
    """A child of an aggregate (an order's items); saved with its aggregate."""

    class Meta:
        abstract = True

    def to_dict(self):
        return model_to_dict(self)


class AggregateRoot(models.Model):
    """A consistency boundary: a versioned row whose changes are announced as events."""

    # Time-ordered (see inspector/domain/identity.py): the aggregate's table and its stream's
    # indexes grow at their right edge. An aggregate whose creation time must not show in its
    # id, or whose id is handed out as a secret, declares its own `id` (default=uuid.uuid4).
    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    version = models.PositiveIntegerField(default=0, editable=False)

    _domain = None  # set by @domain.aggregate

    class Meta:
        abstract = True

    @property
    def _pending_events(self):
        events = self.__dict__.get("_pending_events_list")
        if events is None:
            events = self.__dict__["_pending_events_list"] = []
        return events

    @property
    def _pending_entities(self):
        entities = self.__dict__.get("_pending_entities_list")
        if entities is None:
            entities = self.__dict__["_pending_entities_list"] = []
        return entities

    def raise_(self, event):
        """Record that something happened; the event is stored when the aggregate is persisted."""
        if event._part_of is not None and event._part_of is not type(self):
            raise IncorrectUsageError(
                f"{type(event).__name__} is part of {event._part_of.__name__}, "
                f"not {type(self).__name__}"
            )
        self._pending_events.append(event)
        return event

    def track(self, entity):
        """Keep a new child entity to be saved together with this aggregate."""
        self._pending_entities.append(entity)
        return entity

    @property
    def stream(self):
        return f"{self._domain.stream_category(type(self))}-{self.id}"

    def save(self, *args, **kwargs):
        """Persist through the repository, so events are stored in the same transaction."""
        if args or kwargs.keys() - {"using"}:
            raise IncorrectUsageError(
                f"{type(self).__name__}.save() persists the whole aggregate; "
                "update_fields and force_* are not supported"
            )
        self._domain.repository_for(type(self)).add(self)

    def to_dict(self):
        data = model_to_dict(self)
        for relation in self._domain.entity_relations(type(self)):
            children = getattr(self, relation.get_accessor_name()).all()
            data[relation.get_accessor_name()] = [child.to_dict() for child in children]
        return data


def model_to_dict(instance):
    """A JSON-ready dict of the instance's concrete fields."""
    data = {}
    for field in instance._meta.concrete_fields:
        value = getattr(instance, field.attname)
        if hasattr(value, "to_dict"):
            value = value.to_dict()
        elif isinstance(value, uuid.UUID):
            value = str(value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        data[field.attname] = value
    return data
