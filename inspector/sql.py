"""Lean SQL for the store's hot path, where the ORM's per-query overhead is most of the cost."""

import functools

from django.db import connection


@functools.cache
def _insert_sql(model, vendor, count):
    qn = connection.ops.quote_name
    fields = model._meta.concrete_fields
    columns = ", ".join(qn(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return f"INSERT INTO {qn(model._meta.db_table)} ({columns}) VALUES {', '.join([row] * count)}"


def insert_rows(model, objs, *, chunk=400):
    """INSERT model instances in few statements, adapting values as the ORM would."""
    for start in range(0, len(objs), chunk):
        _insert_chunk(model, objs[start : start + chunk])


def _insert_chunk(model, objs):
    fields = model._meta.concrete_fields
    params = [
        f.get_db_prep_save(getattr(obj, f.attname), connection) for obj in objs for f in fields
    ]
    sql = _insert_sql(model, connection.vendor, len(objs))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias


def update_row(model, pk, values, *, where=None):
    """UPDATE one row by primary key (plus optional equality guards); return the row count."""
    meta = model._meta
    qn = connection.ops.quote_name
    sets, params = [], []
    for name, value in values.items():
        field = meta.get_field(name)
        if isinstance(value, Increment):
            sets.append(f"{qn(field.column)} = {qn(field.column)} + %s")
            params.append(value.by)
        else:
            sets.append(f"{qn(field.column)} = %s")
            params.append(field.get_db_prep_save(value, connection))
    conditions = [f"{qn(meta.pk.column)} = %s"]
    params.append(meta.pk.get_db_prep_value(pk, connection))
    for name, value in (where or {}).items():
        field = meta.get_field(name)
        if isinstance(value, list | tuple):
            conditions.append(f"{qn(field.column)} IN ({', '.join(['%s'] * len(value))})")
            params.extend(field.get_db_prep_value(v, connection) for v in value)
        else:
            conditions.append(f"{qn(field.column)} = %s")
            params.append(field.get_db_prep_value(value, connection))
    sql = f"UPDATE {qn(meta.db_table)} SET {', '.join(sets)} WHERE {' AND '.join(conditions)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


class Increment:
    def __init__(self, by=1):
        self.by = by
