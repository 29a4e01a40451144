"""Fields for messages and value objects, validated through Django's form fields."""

import datetime
import enum
import functools
import uuid

from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from inspector.exceptions import ValidationError

_MISSING = object()


class Field:
    """A declared attribute of a message or value object."""

    python_types: tuple = ()
    type_label = "value"

    def __init__(self, *, required=False, default=None, choices=None, identifier=False):
        self.required = required
        self.default = default
        self.choices = choices
        self.identifier = identifier
        self.name = None

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return instance._data.get(self.name)

    def __set__(self, instance, value):
        raise AttributeError(f"{type(instance).__name__} is immutable; cannot set {self.name!r}")

    def form_field(self):
        """The Django form field whose validators this field reuses."""
        return forms.Field(required=False)

    @functools.cached_property
    def _django_field(self):
        """Built once: a form field's clean() keeps no state between values."""
        return self.form_field()

    def get_default(self):
        return self.default() if callable(self.default) else self.default

    def clean(self, value):
        """Return the value to store, or raise a Django ValidationError."""
        if isinstance(value, enum.Enum):
            value = value.value
        if value is None or (isinstance(value, str | list | tuple | dict) and not value):
            if self.required:
                raise DjangoValidationError("This field is required.", code="required")
            return value
        if self.python_types and (
            not isinstance(value, self.python_types) or isinstance(value, bool) is not self._bool
        ):
            raise DjangoValidationError(
                f"Expected {self.type_label}, got {type(value).__name__}.", code="invalid"
            )
        value = self._django_field.clean(value)
        if self.choices is not None:
            allowed = [member.value for member in self.choices]
            if value not in allowed:
                raise DjangoValidationError(
                    f"{value!r} is not one of {', '.join(map(str, allowed))}.",
                    code="invalid_choice",
                )
        return value

    _bool = False

    def to_json(self, value):
        return value

    def from_json(self, value):
        return value


class String(Field):
    python_types = (str,)
    type_label = "a string"

    def __init__(self, *, max_length=255, min_length=None, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.min_length = min_length

    def form_field(self):
        return forms.CharField(
            required=False, max_length=self.max_length, min_length=self.min_length, strip=False
        )


class Text(String):
    def __init__(self, **kwargs):
        super().__init__(max_length=None, **kwargs)


class Identifier(Field):
    python_types = (str, uuid.UUID, int)
    type_label = "an identifier"

    def clean(self, value):
        if isinstance(value, uuid.UUID | int) and not isinstance(value, bool):
            value = str(value)
        return super().clean(value)

    def form_field(self):
        return forms.CharField(required=False, max_length=255)


class Integer(Field):
    python_types = (int,)
    type_label = "an integer"

    def __init__(self, *, min_value=None, max_value=None, **kwargs):
        super().__init__(**kwargs)
        self.min_value = min_value
        self.max_value = max_value

    def form_field(self):
        return forms.IntegerField(
            required=False, min_value=self.min_value, max_value=self.max_value
        )


class Float(Field):
    python_types = (int, float)
    type_label = "a number"

    def __init__(self, *, min_value=None, max_value=None, **kwargs):
        super().__init__(**kwargs)
        self.min_value = min_value
        self.max_value = max_value

    def form_field(self):
        return forms.FloatField(required=False, min_value=self.min_value, max_value=self.max_value)

    def clean(self, value):
        value = super().clean(value)
        return float(value) if value is not None else None


class Boolean(Field):
    python_types = (bool,)
    type_label = "true or false"
    _bool = True

    def clean(self, value):
        if value is None and self.required:
            raise DjangoValidationError("This field is required.", code="required")
        if value is None:
            return None
        if not isinstance(value, bool):
            raise DjangoValidationError(
                f"Expected {self.type_label}, got {type(value).__name__}.", code="invalid"
            )
        return value


class DateTime(Field):
    python_types = (datetime.datetime, str)
    type_label = "a date and time"

    def form_field(self):
        return forms.DateTimeField(required=False)

    def clean(self, value):
        if isinstance(value, str):
            parsed = parse_datetime(value)
            if parsed is None:
                raise DjangoValidationError("Enter a valid date/time.", code="invalid")
            value = parsed
        value = super().clean(value)
        if value is not None and timezone.is_naive(value):
            value = timezone.make_aware(value, datetime.UTC)
        return value

    def to_json(self, value):
        return value.isoformat() if value is not None else None

    def from_json(self, value):
        return parse_datetime(value) if isinstance(value, str) else value


class Dict(Field):
    python_types = (dict,)
    type_label = "a mapping"


class List(Field):
    """A list whose items are validated by `content_type` (a field instance or class)."""

    python_types = (list, tuple)
    type_label = "a list"

    def __init__(self, content_type=None, *, min_length=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(content_type, type) and issubclass(content_type, Field):
            content_type = content_type()
        self.content_type = content_type
        self.min_length = min_length

    def clean(self, value):
        value = super().clean(value)
        if value is None:
            return None
        value = list(value)
        if self.min_length is not None and len(value) < self.min_length:
            raise DjangoValidationError(
                f"Needs at least {self.min_length} item(s).", code="min_length"
            )
        if self.content_type is None:
            return value
        cleaned, errors = [], {}
        for index, item in enumerate(value):
            try:
                cleaned.append(self.content_type.clean(item))
            except ValidationError as exc:
                for field, messages in exc.errors.items():
                    errors[f"[{index}].{field}"] = messages
            except DjangoValidationError as exc:
                errors[f"[{index}]"] = exc.messages
        if errors:
            raise ValidationError(errors)
        return cleaned

    def to_json(self, value):
        if value is None or self.content_type is None:
            return value
        return [self.content_type.to_json(item) for item in value]

    def from_json(self, value):
        if value is None or self.content_type is None:
            return value
        return [self.content_type.from_json(item) for item in value]


class ValueObject(Field):
    """A value object embedded in a message or another value object."""

    type_label = "a value object"

    def __init__(self, value_object_cls, **kwargs):
        super().__init__(**kwargs)
        self.value_object_cls = value_object_cls

    @property
    def python_types(self):
        return (self.value_object_cls, dict)

    def clean(self, value):
        if isinstance(value, dict):
            value = self.value_object_cls(**value)  # raises ValidationError naming subfields
        if value is None or isinstance(value, self.value_object_cls):
            if value is None and self.required:
                raise DjangoValidationError("This field is required.", code="required")
            return value
        raise DjangoValidationError(
            f"Expected {self.value_object_cls.__name__}, got {type(value).__name__}.",
            code="invalid",
        )

    def to_json(self, value):
        return value.to_dict() if value is not None else None

    def from_json(self, value):
        return self.value_object_cls.from_dict(value) if isinstance(value, dict) else value
