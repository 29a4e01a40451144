"""Fields for messages and value objects, validated through Django's form fields."""

import datetime
import enum
import functools
import math
import re
import uuid

from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from inspector.exceptions import ValidationError

_MISSING = object()

# What every database column and JSON document of the store holds exactly: a signed 64-bit
# integer (beyond it SQLite's JSON functions read a float, and columns overflow).
INTEGER_MIN, INTEGER_MAX = -(2**63), 2**63 - 1
# Characters no column or JSON document can carry (NUL: PostgreSQL's text and jsonb; lone
# surrogates: UTF-8), and the other C0 controls and DEL, which no typed text holds.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_JSON_DEPTH = 32  # nesting levels a Dict or an untyped List may hold


def _unstorable_error(text):
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    code = ord(match.group())
    kind = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
    return DjangoValidationError(
        f"Remove the character U+{code:04X} ({kind}): it cannot be stored.",
        code="invalid_character",
    )


def validate_storable_text(value):
    """A Django validator: text without characters the store cannot keep (NUL is Django's
    own ProhibitNullCharactersValidator's, on every CharField)."""
    error = _unstorable_error(value.replace("\x00", "")) if isinstance(value, str) else None
    if error is not None:
        raise error


def json_value(value, *, where="", depth=0):
    """`value` as the store keeps it in JSON (tuples as lists), or a Django ValidationError
    saying where it is not: JSON's types only, with text keys, storable text, finite numbers
    and integers in range."""
    at = f" at {where}" if where else ""
    if depth > _JSON_DEPTH:
        raise DjangoValidationError(f"Nested deeper than {_JSON_DEPTH} levels{at}.")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        error = _unstorable_error(value)
        if error is not None:
            raise DjangoValidationError(f"{error.message[:-1]}{at}.", code=error.code)
        return value
    if isinstance(value, int):
        if not INTEGER_MIN <= value <= INTEGER_MAX:
            raise DjangoValidationError(f"Integer out of the 64-bit range{at}.", code="invalid")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DjangoValidationError(f"Number {value} is not finite{at}.", code="invalid")
        return value
    if isinstance(value, list | tuple):
        return [
            json_value(item, where=f"{where}[{i}]", depth=depth + 1) for i, item in enumerate(value)
        ]
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise DjangoValidationError(
                    f"Key {key!r}{at} is {type(key).__name__}; JSON keys are text.",
                    code="invalid",
                )
            json_value(key, where=where, depth=depth + 1)
            cleaned[key] = json_value(
                item, where=f"{where}.{key}" if where else key, depth=depth + 1
            )
        return cleaned
    raise DjangoValidationError(
        f"{type(value).__name__} cannot be stored as JSON{at}.", code="invalid"
    )


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
        if value is None or (
            isinstance(value, str | list | tuple | dict)
            and not value
            and (not self.python_types or isinstance(value, self.python_types))
        ):  # empty, and of this field's type: an empty list is no String
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
            required=False,
            max_length=self.max_length,
            min_length=self.min_length,
            strip=False,
            validators=[validate_storable_text],
        )


class Text(String):
    def __init__(self, **kwargs):
        super().__init__(max_length=None, **kwargs)


class Identifier(Field):
    python_types = (str, uuid.UUID, int)
    type_label = "an identifier"

    max_length = 255

    def clean(self, value):
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 850:
            # More digits than max_length (and than str() of an int may have).
            raise DjangoValidationError(
                f"Ensure this value has at most {self.max_length} characters.", code="max_length"
            )
        if isinstance(value, uuid.UUID | int) and not isinstance(value, bool):
            value = str(value)
        return super().clean(value)

    def form_field(self):
        # Not stripped: an id of whitespace is not an empty, missing id.
        return forms.CharField(
            required=False,
            max_length=self.max_length,
            strip=False,
            validators=[validate_storable_text],
        )


class Integer(Field):
    python_types = (int,)
    type_label = "an integer"

    def __init__(self, *, min_value=None, max_value=None, **kwargs):
        super().__init__(**kwargs)
        self.min_value = INTEGER_MIN if min_value is None else max(min_value, INTEGER_MIN)
        self.max_value = INTEGER_MAX if max_value is None else min(max_value, INTEGER_MAX)

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
        try:
            value = super().clean(value)
        except OverflowError:  # an int beyond any float
            raise DjangoValidationError("Enter a finite number.", code="invalid") from None
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
            try:
                parsed = parse_datetime(value)
            except ValueError:  # well formed, but no such date or time (February 30th)
                parsed = None
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

    def clean(self, value):
        value = super().clean(value)
        return json_value(value) if value else value


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
            return json_value(value)
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
            if any(not isinstance(key, str) for key in value):
                raise DjangoValidationError("Field names must be text.", code="invalid")
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
