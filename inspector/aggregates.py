"""The public name of the aggregate building blocks (`from inspector.aggregates import
AggregateRoot`); they live in `inspector.domain.aggregates`."""

from inspector.domain.aggregates import AggregateRoot, Entity, ValueObjectField

__all__ = ["AggregateRoot", "Entity", "ValueObjectField"]
