"""The public name of the message and value-object fields (`from inspector.fields import
String`); they live with the other building blocks in `inspector.domain.fields`."""

from inspector.domain.fields import (
    Boolean,
    DateTime,
    Dict,
    Field,
    Float,
    Identifier,
    Integer,
    List,
    String,
    Text,
    ValueObject,
)

__all__ = [
    "Boolean",
    "DateTime",
    "Dict",
    "Field",
    "Float",
    "Identifier",
    "Integer",
    "List",
    "String",
    "Text",
    "ValueObject",
]
