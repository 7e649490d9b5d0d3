"""The few statements every run makes, as plain SQL written once from the models' own fields.

A queued run inserts its row, is claimed, and is finished: a dozen statements. Through the ORM
each costs 200-500 µs of query building, and on SQLite several of them run inside a transaction
that holds the database's one write lock, so that cost serializes every web process and worker.
Here the SQL of a statement is written once per process, from ``Model._meta`` (tables, columns),
and values are converted both ways by the fields themselves (``get_db_prep_save``, the backend's
and the field's converters), exactly as the ORM would: the same rows, on SQLite and PostgreSQL,
at ~30 µs a statement. Everything off the hot path keeps using the ORM.

    agent = fetch(Agent, tenant_id=tenant.pk, name="echo")
    run = fetch(Run, related=("agent", "session"), id=run_id)
    insert(Run(tenant=tenant, session=session, agent=agent, message="hi"))
    changed = execute(f"UPDATE {table(Run)} SET status = %s WHERE id = %s", ["running", run.pk])

``execute`` takes values for columns of the statement's first model, converted with
``prep(field, value)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, TypeVar

from django.db import connection
from django.db.models import AutoField, Field, Model

M = TypeVar("M", bound=Model)

Converter = Callable[[Any, Any, Any], Any]


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def prep(model: type[Model], name: str, value: Any) -> Any:
    """``value`` as the database takes it for the field ``name`` of ``model``."""
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def execute(sql: str, params: Sequence[Any]) -> int:
    """Run one statement; return how many rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


# --- reads -----------------------------------------------------------------------------------------


class _Reader:
    """How to read one model's columns out of a row: its fields and their converters."""

    def __init__(self, model: type[Model], alias: str) -> None:
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        self.columns = [f"{alias}.{connection.ops.quote_name(f.column)}" for f in self.fields]
        self.converters: list[tuple[int, list[Converter], Any]] = []
        for i, field in enumerate(self.fields):
            expression = field.get_col(alias)
            found = [*connection.ops.get_db_converters(expression), *expression.get_db_converters(connection)]
            if found:
                self.converters.append((i, found, expression))

    def build(self, values: list[Any]) -> Model:
        for i, converters, expression in self.converters:
            value = values[i]
            for convert in converters:
                value = convert(value, expression, connection)
            values[i] = value
        return self.model.from_db(connection.alias, self.attnames, values)


@cache
def _select(model: type[Model], related: tuple[str, ...], keys: tuple[str, ...], vendor: str) -> tuple[str, list]:
    """The SELECT of ``fetch`` and, per model in it, the reader of its slice of the row."""
    readers = [_Reader(model, "t0")]
    joins = []
    for n, name in enumerate(related, start=1):
        field = model._meta.get_field(name)
        target = field.related_model
        readers.append(_Reader(target, f"t{n}"))
        pk = connection.ops.quote_name(target._meta.pk.column)
        joins.append(f" INNER JOIN {table(target)} t{n} ON t{n}.{pk} = t0.{connection.ops.quote_name(field.column)}")
    columns = ", ".join(c for reader in readers for c in reader.columns)
    where = " AND ".join(f"t0.{column(model, key)} = %s" for key in keys)
    return f"SELECT {columns} FROM {table(model)} t0{''.join(joins)} WHERE {where}", readers


def fetch(model: type[M], *, related: Sequence[str] = (), **where: Any) -> M | None:
    """The one row of ``model`` where every field in ``where`` equals its value, or None.

    ``related``: foreign keys to read in the same query (an inner join), set on the instance as
    ``select_related`` would. ``where`` should name a unique set of fields.
    """
    keys = tuple(where)
    sql, readers = _select(model, tuple(related), keys, connection.vendor)
    params = [prep(model, key, where[key]) for key in keys]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    values, start, built = list(row), 0, []
    for reader in readers:
        end = start + len(reader.fields)
        built.append(reader.build(values[start:end]))
        start = end
    obj = built[0]
    for name, related_obj in zip(related, built[1:], strict=True):
        setattr(obj, name, related_obj)
    return obj  # type: ignore[return-value]


# --- writes ----------------------------------------------------------------------------------------


@cache
def _insert(model: type[Model], vendor: str) -> tuple[str, list[Field], Field | None]:
    auto = model._meta.pk if isinstance(model._meta.pk, AutoField) else None
    fields = [f for f in model._meta.concrete_fields if f is not auto]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"INSERT INTO {table(model)} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    if auto is not None and connection.features.can_return_columns_from_insert:
        sql += f" RETURNING {connection.ops.quote_name(auto.column)}"
    return sql, fields, auto


def insert(obj: M) -> M:
    """INSERT ``obj`` as ``obj.save()`` would for a new row (defaults, ``auto_now``), without
    signals; sets its auto primary key. Raises ``IntegrityError`` as the ORM does."""
    sql, fields, auto = _insert(type(obj), connection.vendor)
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if auto is not None:
            if connection.features.can_return_columns_from_insert:
                new_id = cursor.fetchone()[0]
            else:
                new_id = connection.ops.last_insert_id(cursor, obj._meta.db_table, auto.column)
            setattr(obj, auto.attname, new_id)
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj
