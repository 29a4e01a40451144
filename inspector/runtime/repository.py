"""Persist an aggregate and the events it raised, in one transaction."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, models
from django.db.models import signals

from inspector.exceptions import ConcurrencyError, DomainError, ObjectNotFound, ValidationError
from inspector.runtime import capture
from inspector.runtime.sql import get_by_pk, insert_rows, update_row
from inspector.runtime.unit_of_work import unit_of_work


def _clean(instance):
    """Validate fields in Python; uniqueness, constraints and relations are the database's job."""
    relations = [f.name for f in instance._meta.concrete_fields if f.is_relation]
    try:
        instance.full_clean(exclude=relations, validate_unique=False, validate_constraints=False)
    except DjangoValidationError as exc:
        raise ValidationError(exc.message_dict) from exc


def _insert(aggregate):
    """INSERT the aggregate's row; the ORM's save() only when someone listens to its signals."""
    model = type(aggregate)
    if (
        model._meta.parents
        or model._meta.auto_field
        or any(signal.has_listeners(model) for signal in (signals.pre_save, signals.post_save))
    ):
        models.Model.save(aggregate, force_insert=True)
        return
    for field in model._meta.concrete_fields:
        setattr(aggregate, field.attname, field.pre_save(aggregate, True))
    insert_rows(model, [aggregate])
    capture.inserted([aggregate])  # a dry run lists it (the ORM's path sends post_save)


class Repository:
    """The way in and out of the store for one aggregate model."""

    def __init__(self, domain, model):
        self.domain = domain
        self.model = model

    def get(self, identifier):
        try:
            if isinstance(self.model._meta.pk, models.UUIDField):
                return get_by_pk(self.model, identifier)
            return self.model.objects.get(pk=identifier)
        except (self.model.DoesNotExist, DjangoValidationError, ValueError) as exc:
            raise ObjectNotFound(f"{self.model.__name__} {identifier} does not exist") from exc

    def add(self, aggregate):
        """Save the row (checking its version), its new entities, and append its events."""
        if not isinstance(aggregate, self.model):
            raise TypeError(f"{self.model.__name__} repository cannot add {aggregate!r}")
        _clean(aggregate)
        adding = aggregate._state.adding
        with unit_of_work(self.domain) as uow:
            try:
                if adding:
                    aggregate.version = 1
                    _insert(aggregate)
                else:
                    self._update(aggregate)
                self._save_entities(aggregate)
            except IntegrityError as exc:
                if adding:
                    aggregate.version = 0
                raise DomainError(f"{self.model.__name__} could not be saved: {exc}") from exc
            events = aggregate._pending_events
            for event in events:
                uow.append(
                    event,
                    stream=aggregate.stream,
                    aggregate_version=aggregate.version,
                    new_stream=adding,
                )
            events.clear()
        return aggregate

    def _update(self, aggregate):
        fields = [
            f for f in self.model._meta.concrete_fields if not f.primary_key and f.name != "version"
        ]
        values = {f.name: f.pre_save(aggregate, False) for f in fields}
        values["version"] = aggregate.version + 1
        old = capture.row_before_update(self.model, aggregate.pk)  # None outside a dry run
        updated = update_row(self.model, aggregate.pk, values, where={"version": aggregate.version})
        if not updated:
            if self.model.objects.filter(pk=aggregate.pk).exists():
                raise ConcurrencyError(
                    f"{self.model.__name__} {aggregate.pk} changed since version "
                    f"{aggregate.version} was loaded"
                )
            raise ObjectNotFound(f"{self.model.__name__} {aggregate.pk} does not exist")
        aggregate.version += 1
        capture.updated(aggregate, old)

    def _save_entities(self, aggregate):
        entities = aggregate._pending_entities
        if not entities:
            return
        for entity in entities:
            _clean(entity)
        by_model = {}
        for entity in entities:
            by_model.setdefault(type(entity), []).append(entity)
        for model, rows in by_model.items():
            model.objects.bulk_create(rows)
            capture.inserted(rows)
        entities.clear()
