"""Lean SQL for the store's hot path, where the ORM's per-query overhead is most of the cost."""

import datetime
import functools
import uuid

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models.base import ModelState

from inspector.runtime.databases import database


def _text(value):
    return value if value is None or isinstance(value, str) else str(value)


def _integer(value):
    return value if value is None or type(value) is int else int(value)


def _adapter(field, conn):
    """value → query parameter for one field, as `field.get_db_prep_save` would give it.

    The common types take a direct path; anything else goes through the field itself. Only
    the backend's stateless parts are used, so one adapter serves every thread's connection.
    """
    target = field.target_field if field.is_relation else field
    kind = target.get_internal_type()
    db = database(conn)

    def through_field(value):
        return field.get_db_prep_save(value, conn)

    if kind in ("CharField", "TextField"):
        return _text
    if kind in ("IntegerField", "BigIntegerField", "PositiveIntegerField", "SmallIntegerField"):
        adapt_typed = conn.ops.adapt_integerfield_value  # psycopg 3 wants the column's width

        def adapt_integer(value):
            return adapt_typed(_integer(value), kind)

        return adapt_integer
    if kind == "UUIDField":
        native = conn.features.has_native_uuid_field

        def adapt_uuid(value):
            if value is None:
                return None
            if type(value) is not uuid.UUID:
                return through_field(value)
            return value if native else value.hex

        return adapt_uuid
    if kind == "DateTimeField" and field is target:
        as_text = db.datetimes_as_text

        def adapt_datetime(value):
            if value is None:
                return None
            if type(value) is not datetime.datetime or value.tzinfo is not datetime.UTC:
                return through_field(value)
            return str(value.replace(tzinfo=None)) if as_text else value

        return adapt_datetime
    if type(field) is models.JSONField:
        ops, encoder = conn.ops, field.encoder

        def adapt_json(value):
            if value is None or not isinstance(value, dict | list | str | int | float | bool):
                return through_field(value)
            return ops.adapt_json_value(value, encoder)

        return adapt_json
    return through_field


@functools.cache
def _adapters(model, alias, vendor, names):
    conn = connections[alias]
    meta = model._meta
    return tuple(_adapter(meta.get_field(name), conn) for name in names)


def adapters(model, names, conn):
    """The adapters for the named fields, built once per model, database and field list."""
    return _adapters(model, conn.alias, conn.vendor, tuple(names))


def placeholders(count):
    """`%s, %s, ...`: `count` query parameters, for an IN list or a row of values."""
    return ", ".join(["%s"] * count)


@functools.cache
def _insert_sql(model, alias, vendor, count):
    qn = connections[alias].ops.quote_name
    fields = model._meta.concrete_fields
    columns = ", ".join(qn(f.column) for f in fields)
    row = f"({placeholders(len(fields))})"
    return f"INSERT INTO {qn(model._meta.db_table)} ({columns}) VALUES {', '.join([row] * count)}"


def insert_rows(model, objs, *, chunk=400, using=DEFAULT_DB_ALIAS):
    """INSERT model instances in few statements, adapting values as the ORM would."""
    conn = connections[using]
    attnames = [f.attname for f in model._meta.concrete_fields]
    adapt = adapters(model, [f.name for f in model._meta.concrete_fields], conn)
    pairs = list(zip(attnames, adapt, strict=True))
    for start in range(0, len(objs), chunk):
        part = objs[start : start + chunk]
        params = []
        for obj in part:
            params.extend(adapt_one(getattr(obj, attname)) for attname, adapt_one in pairs)
        with conn.cursor() as cursor:
            cursor.execute(_insert_sql(model, conn.alias, conn.vendor, len(part)), params)
        for obj in part:
            obj._state.adding = False
            obj._state.db = conn.alias


@functools.cache
def _update_sql(model, alias, names, increments, guards):
    """UPDATE ... SET ... WHERE pk = %s AND guards, for one shape of call."""
    meta = model._meta
    qn = connections[alias].ops.quote_name
    sets = []
    for name in names:
        column = qn(meta.get_field(name).column)
        sets.append(f"{column} = {column} + %s" if name in increments else f"{column} = %s")
    conditions = [f"{qn(meta.pk.column)} = %s"]
    for name, count in guards:
        column = qn(meta.get_field(name).column)
        if count is None:
            conditions.append(f"{column} = %s")
        else:
            conditions.append(f"{column} IN ({placeholders(count)})")
    return f"UPDATE {qn(meta.db_table)} SET {', '.join(sets)} WHERE {' AND '.join(conditions)}"


def update_row(model, pk, values, *, where=None, using=DEFAULT_DB_ALIAS):
    """UPDATE one row by primary key (plus optional equality guards); return the row count."""
    sql, params = update_statement(model, pk, values, where=where, using=using)
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def update_statement(model, pk, values, *, where=None, using=DEFAULT_DB_ALIAS):
    """`update_row`'s SQL and parameters, for a caller that sends them with other SQL."""
    conn = connections[using]
    where = where or {}
    names = tuple(values)
    increments = frozenset(name for name, value in values.items() if isinstance(value, Increment))
    guards = tuple(
        (name, len(value) if isinstance(value, list | tuple) else None)
        for name, value in where.items()
    )
    params = [
        value.by if name in increments else adapt(value)
        for (name, value), adapt in zip(values.items(), adapters(model, names, conn), strict=True)
    ]
    params.append(adapters(model, [model._meta.pk.name], conn)[0](pk))
    for value, adapt in zip(where.values(), adapters(model, where, conn), strict=True):
        params.extend(map(adapt, value) if isinstance(value, list | tuple) else [adapt(value)])
    return _update_sql(model, conn.alias, names, increments, guards), params


@functools.cache
def _columns(model, alias, vendor, names, table_alias):
    """Quoted `alias.column` SQL, attnames and converters for the named fields of `model`."""
    conn = connections[alias]
    qn = conn.ops.quote_name
    fields = [model._meta.get_field(name) for name in names]
    columns = ", ".join(f"{table_alias}.{qn(field.column)}" for field in fields)
    converters = []
    for index, field in enumerate(fields):
        col = field.get_col(table_alias)
        convert = conn.ops.get_db_converters(col) + field.get_db_converters(conn)
        if convert:
            converters.append((index, convert, col))
    return columns, [field.attname for field in fields], converters


class Columns:
    """Some columns of one model in a hand-written SELECT, turned back into instances."""

    def __init__(self, model, names, table_alias, *, using=DEFAULT_DB_ALIAS):
        self.model, self.names, self.table_alias, self.using = (
            model,
            tuple(names),
            table_alias,
            using,
        )

    def _compiled(self):
        conn = connections[self.using]
        return conn, _columns(self.model, conn.alias, conn.vendor, self.names, self.table_alias)

    @property
    def sql(self):
        return self._compiled()[1][0]

    def load(self, row, offset=0):
        """The instance for `row[offset:offset + len(names)]`, converted as the ORM would."""
        conn, (_sql, attnames, converters) = self._compiled()
        values = _converted(row[offset : offset + len(attnames)], converters, conn)
        return self.model.from_db(conn.alias, attnames, values)


def _converted(row, converters, conn):
    """The row's values through their fields' and the backend's converters."""
    values = list(row)
    for index, convert, expression in converters:
        value = values[index]
        for converter in convert:
            value = converter(value, expression, conn)
        values[index] = value
    return values


_ANY_UUID = uuid.UUID(int=0)


@functools.cache
def _select_by_pk(model, alias, vendor):
    """`model.objects.get(pk=...)` compiled once: SQL, the attnames it reads and converters."""
    query = model._default_manager.using(alias).filter(pk=_ANY_UUID).query
    compiler = query.get_compiler(alias)
    sql, params = compiler.as_sql()
    if len(params) != 1 or compiler.query.select_related:
        raise TypeError(f"{model.__name__}: no single-parameter lookup by primary key")
    columns = [selected[0] for selected in compiler.select[: compiler.col_count]]
    attnames = [column.target.attname for column in columns]
    converters = [
        (pos, convert, expression)
        for pos, (convert, expression) in compiler.get_converters(columns).items()
    ]
    return sql, attnames, converters


def get_by_pk(model, pk, *, using=DEFAULT_DB_ALIAS):
    """Load one row by UUID primary key as `objects.get` would, minus the per-call compile.

    Raises `model.DoesNotExist`, or Django's ValidationError for a malformed key.
    """
    conn = connections[using]
    sql, attnames, converters = _select_by_pk(model, conn.alias, conn.vendor)
    key = adapters(model, [model._meta.pk.name], conn)[0](pk)
    with conn.cursor() as cursor:
        cursor.execute(sql, [key])
        row = cursor.fetchone()
    if row is None:
        raise model.DoesNotExist(f"{model.__name__} matching query does not exist.")
    return model.from_db(conn.alias, attnames, _converted(row, converters, conn))


@functools.cache
def _defaults(model):
    fixed, computed = {}, []
    for field in model._meta.concrete_fields:
        if field.has_default() and callable(field.default):
            computed.append(field)
        else:
            fixed[field.attname] = field.get_default()
    return fixed, tuple(computed)


def new_instance(model, values):
    """An unsaved instance built from attnames, skipping Model.__init__'s per-field work.

    For the store's own models on the hot path: no init signals, every other field defaulted
    as `Model.__init__` would.
    """
    obj = model.__new__(model)
    fixed, computed = _defaults(model)
    state = obj.__dict__
    state.update(fixed)
    for field in computed:
        if field.attname not in values:
            state[field.attname] = field.get_default()
    state.update(values)
    obj._state = ModelState()
    return obj


class Increment:
    def __init__(self, by=1):
        self.by = by
