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

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import AutoField, Field, Model
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

M = TypeVar("M", bound=Model)

Converter = Callable[[Any, Any, Any], Any]


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


#: Field classes (exactly these, not subclasses) whose ``get_db_prep_save`` returns a value of
#: these types as it is, on every backend: their ``to_python`` passes it through and no backend
#: adapts it. ``None`` passes through them and the others listed (JSONField's does not).
_AS_IS: dict[type[Field], tuple[type, ...]] = {
    **dict.fromkeys((models.CharField, models.TextField, models.URLField, models.SlugField), (str, type(None))),
    models.BooleanField: (bool, type(None)),
    # Not ints: on PostgreSQL, Django hands them to psycopg typed (Int4, Int8).
    **dict.fromkeys(
        (models.IntegerField, models.PositiveIntegerField, models.DateTimeField, models.UUIDField, models.ForeignKey),
        (type(None),),
    ),
}


def prep(model: type[Model], name: str, value: Any) -> Any:
    """``value`` as the database takes it for the field ``name`` of ``model``."""
    return _prep(model._meta.get_field(name), value)


def _prep(field: Field, value: Any) -> Any:
    """``field.get_db_prep_save(value)``, skipping what would change nothing: a value of a type the
    field passes through (``_AS_IS``), or an aware datetime, which ``DateTimeField`` only hands to
    the backend's adapter (its ``get_prep_value`` returns it as it is)."""
    kind = type(value)
    if kind in _AS_IS.get(type(field), ()):
        return value
    if kind is datetime and value.tzinfo is not None and type(field) is models.DateTimeField:
        return connection.ops.adapt_datetimefield_value(value)
    return field.get_db_prep_save(value, connection)


def run(sql: str, params: Sequence[Any], *, one: bool = False) -> tuple[int, tuple[Any, ...] | None]:
    """Run one statement on the default database; return how many rows it changed and, with
    ``one``, the first row it returned (None if none).

    On the backend's own cursor (``create_cursor``: the driver's, with Django's time zone and, on
    SQLite, its ``%s`` conversion) over Django's connection, in its transaction, with its errors
    turned into Django's: what ``connection.cursor()`` gives, without the wrapper it puts around
    every query (about 15 µs, half of a short statement). When something watches the queries
    (``DEBUG``, ``assertNumQueries``, execute wrappers), through Django's cursor, so they see these.
    """
    db = connections[DEFAULT_DB_ALIAS]
    if db.queries_logged or db.execute_wrappers:
        with db.cursor() as wrapped:
            wrapped.execute(sql, params)
            return wrapped.rowcount, (wrapped.fetchone() if one else None)
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_no_broken_transaction()
    with db.wrap_database_errors:
        if db.vendor == "sqlite":  # its cursor converts the paramstyle with a regex every time
            cursor, sql = db.connection.cursor(), _qmark(sql)
        else:
            cursor = db.create_cursor()
        try:
            cursor.execute(sql, params)
            return cursor.rowcount, (cursor.fetchone() if one else None)
        finally:
            cursor.close()


_FORMAT_MARK = re.compile(r"(?<!%)%s")


@lru_cache(maxsize=512)
def _qmark(sql: str) -> str:
    """``sql`` in sqlite3's paramstyle, as Django's SQLite cursor converts it, once per statement."""
    return _FORMAT_MARK.sub("?", sql).replace("%%", "%")


def execute(sql: str, params: Sequence[Any]) -> int:
    """Run one statement; return how many rows it changed."""
    return run(sql, params)[0]


# --- reads -----------------------------------------------------------------------------------------


class _Reader:
    """How to read one model's columns out of a row: its fields (``names``: only those, and the
    primary key; the rest are deferred, as ``QuerySet.only`` leaves them) and their converters."""

    def __init__(self, model: type[Model], alias: str, names: frozenset[str] | None = None) -> None:
        self.model = model
        self.fields = [
            f
            for f in model._meta.concrete_fields
            if names is None or f.primary_key or f.name in names or f.attname in names
        ]
        self.attnames = [f.attname for f in self.fields]
        self.names = [connection.ops.quote_name(f.column) for f in self.fields]
        self.columns = [f"{alias}.{name}" for name in self.names]
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
        model = self.model
        if pre_init.has_listeners(model) or post_init.has_listeners(model):
            return model.from_db(connection.alias, self.attnames, values)
        # What ``from_db`` makes, without the pass through ``__init__`` (a fifth of a short read):
        # the loaded fields in the instance's dict (the others deferred), a state saying "from the
        # database". Only while nothing listens for instances being made, as checked above.
        obj = model.__new__(model)
        state = obj._state = ModelState()
        state.adding, state.db = False, connection.alias
        obj.__dict__.update(zip(self.attnames, values, strict=True))
        return obj


def _where(model: type[Model], keys: tuple[str, ...], prefix: str) -> str:
    """``prefix.column = %s`` for each key, ANDed (``IS NULL`` for a key named ``<field>__isnull``)."""
    terms = []
    for key in keys:
        name, null = (key[: -len("__isnull")], True) if key.endswith("__isnull") else (key, False)
        terms.append(f"{prefix}.{column(model, name)}" + (" IS NULL" if null else " = %s"))
    return " AND ".join(terms)


def _params(model: type[Model], where: dict[str, Any]) -> list[Any]:
    return [prep(model, key, value) for key, value in where.items() if not key.endswith("__isnull")]


def _only(only: Sequence[str] | None, related: Sequence[str]) -> dict[str, frozenset[str] | None]:
    """``only`` (``QuerySet.only``'s names: ``"message"``, ``"agent__name"``) per model of a
    fetch: ``""`` for the model itself (with the foreign keys of ``related``), else a relation's
    name; None: every field."""
    if only is None:
        return {}
    own = {name for name in only if "__" not in name} | {f"{name}_id" for name in related}
    split = [name.split("__", 1) for name in only if "__" in name]
    return {"": frozenset(own)} | {rel: frozenset(f for r, f in split if r == rel) for rel, _ in split}


@cache
def _select(
    model: type[Model], related: tuple[str, ...], keys: tuple[str, ...], only: tuple[str, ...] | None, vendor: str
) -> tuple[str, list]:
    """The SELECT of ``fetch`` and, per model in it, the reader of its slice of the row."""
    names = _only(only, related)
    readers = [_Reader(model, "t0", names.get(""))]
    joins = []
    for n, name in enumerate(related, start=1):
        field = model._meta.get_field(name)
        target = field.related_model
        readers.append(_Reader(target, f"t{n}", names.get(name)))
        pk = connection.ops.quote_name(target._meta.pk.column)
        joins.append(f" INNER JOIN {table(target)} t{n} ON t{n}.{pk} = t0.{connection.ops.quote_name(field.column)}")
    columns = ", ".join(c for reader in readers for c in reader.columns)
    return f"SELECT {columns} FROM {table(model)} t0{''.join(joins)} WHERE {_where(model, keys, 't0')}", readers


def _build(model: type[M], row: Sequence[Any], readers: list[_Reader], related: Sequence[str]) -> M:
    """The instance of ``model`` in ``row``, with its ``related`` instances set as ``select_related``
    sets them."""
    values, start, built = list(row), 0, []
    for reader in readers:
        end = start + len(reader.fields)
        built.append(reader.build(values[start:end]))
        start = end
    obj = built[0]
    for name, related_obj in zip(related, built[1:], strict=True):
        setattr(obj, name, related_obj)
    return obj  # type: ignore[return-value]


def fetch(model: type[M], *, related: Sequence[str] = (), only: Sequence[str] | None = None, **where: Any) -> M | None:
    """The one row of ``model`` where every field in ``where`` equals its value, or None.

    ``related``: foreign keys to read in the same query (an inner join), set on the instance as
    ``select_related`` would. ``only``: the fields to read, as ``QuerySet.only`` names them
    (``"agent__name"`` for a related one; a relation named in none of them is read whole); the
    others are deferred, read by a query of their own if ever used. Building a model's instance
    and converting its values costs more than the query: read what is used. ``where`` should
    name a unique set of fields; ``<field>__isnull=True`` asks for a NULL.
    """
    keys = tuple(where)
    sql, readers = _select(model, tuple(related), keys, None if only is None else tuple(only), connection.vendor)
    _, row = run(sql, _params(model, where), one=True)
    return None if row is None else _build(model, row, readers, related)


@cache
def _select_each(lookups: tuple[tuple[type[Model], tuple[str, ...]], ...], vendor: str) -> tuple[str, list[_Reader]]:
    readers = [_Reader(model, f"t{n}") for n, (model, _) in enumerate(lookups)]
    joins = "".join(
        f" LEFT JOIN {table(model)} t{n} ON {_where(model, keys, f't{n}')}" for n, (model, keys) in enumerate(lookups)
    )
    columns = ", ".join(c for reader in readers for c in reader.columns)
    return f"SELECT {columns} FROM (SELECT 1 AS one) one{joins}", readers


def fetch_each(*lookups: tuple[type[Model], dict[str, Any]]) -> list[Any]:
    """For each (model, where), the one row of ``model`` that ``where`` names (as in ``fetch``),
    or None: several unrelated rows in one round trip.

        agent, session = fetch_each((Agent, {"tenant_id": 1, "name": "echo"}), (Session, {...}))
    """
    sql, readers = _select_each(tuple((model, tuple(where)) for model, where in lookups), connection.vendor)
    params = [p for model, where in lookups for p in _params(model, where)]
    _, row = run(sql, params, one=True)
    assert row is not None  # one row, whatever matched
    found, start = [], 0
    for reader in readers:
        values = list(row[start : start + len(reader.fields)])
        start += len(reader.fields)
        pk = next(i for i, f in enumerate(reader.fields) if f.primary_key)
        found.append(None if values[pk] is None else reader.build(values))
    return found


# --- writes ----------------------------------------------------------------------------------------


@cache
def _update_returning(
    model: type[Model], assignments: str, related: tuple[str, ...], keys: tuple[str, ...], vendor: str
) -> tuple[str, list]:
    """The UPDATE of ``update_returning``: the row comes back with RETURNING, and each related
    row's columns as scalar subqueries on the updated row's foreign key (SQLite's RETURNING may
    name no other table; PostgreSQL takes the same)."""
    own = table(model)
    readers = [_Reader(model, "t0")]
    columns = [f"{own}.{name}" for name in readers[0].names]
    for n, name in enumerate(related, start=1):
        field = model._meta.get_field(name)
        target = field.related_model
        reader = _Reader(target, f"t{n}")
        readers.append(reader)
        pk = connection.ops.quote_name(target._meta.pk.column)
        key = f"{own}.{connection.ops.quote_name(field.column)}"
        columns += [f"(SELECT t{n}.{c} FROM {table(target)} t{n} WHERE t{n}.{pk} = {key})" for c in reader.names]
    where = _where(model, keys, own)
    return f"UPDATE {own} SET {assignments} WHERE {where} RETURNING {', '.join(columns)}", readers


def update_returning(
    model: type[M], assignments: str, params: Sequence[Any], *, related: Sequence[str] = (), **where: Any
) -> M | None:
    """UPDATE the one row of ``model`` that ``where`` names (as in ``fetch``) with
    ``assignments`` (SQL on its own columns, ``%s`` for ``params``); return the row as the update
    left it, with its ``related`` rows, in the same statement; None when no row matched.

        run = update_returning(Run, "status = %s", ["running"], related=("agent",), id=run_id, status="queued")
    """
    keys = tuple(where)
    sql, readers = _update_returning(model, assignments, tuple(related), keys, connection.vendor)
    _, row = run(sql, [*params, *_params(model, where)], one=True)
    return None if row is None else _build(model, row, readers, related)


Lookup = tuple[type[Model], dict[str, Any]]


@cache
def _insert(
    model: type[Model], looked_up: tuple[tuple[str, type[Model], tuple[str, ...]], ...], vendor: str
) -> tuple[str, list[Field], list[Field]]:
    """The INSERT of ``insert``, its fields given as values, and the fields it returns: the auto
    key, if any, then the foreign keys it looks up (``INSERT ... SELECT``, one table per key)."""
    auto = model._meta.pk if isinstance(model._meta.pk, AutoField) else None
    keys = [model._meta.get_field(name) for name, _, _ in looked_up]
    given = [f for f in model._meta.concrete_fields if f is not auto and f not in keys]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in [*given, *keys])
    values = ", ".join(["%s"] * len(given))
    if looked_up:
        targets = [(f"t{n}", target, where) for n, (_, target, where) in enumerate(looked_up)]
        pks = [f"{alias}.{connection.ops.quote_name(target._meta.pk.column)}" for alias, target, _ in targets]
        sources = ", ".join(f"{table(target)} {alias}" for alias, target, _ in targets)
        where = " AND ".join(_where(target, where, alias) for alias, target, where in targets)
        sql = f"INSERT INTO {table(model)} ({columns}) SELECT {values}, {', '.join(pks)} FROM {sources} WHERE {where}"
    else:
        sql = f"INSERT INTO {table(model)} ({columns}) VALUES ({values})"
    returned = [f for f in [auto, *keys] if f is not None]
    if returned:  # SQLite (3.35+) and PostgreSQL: in the same round trip
        sql += f" RETURNING {', '.join(connection.ops.quote_name(f.column) for f in returned)}"
    return sql, given, returned


def insert(obj: M) -> M:
    """INSERT ``obj`` as ``obj.save()`` would for a new row (defaults, ``auto_now``), without
    signals; sets its auto primary key. Raises ``IntegrityError`` as the ORM does."""
    inserted = insert_looking_up(obj)
    assert inserted is not None  # nothing to look up: the row is written or it raised
    return inserted


def insert_looking_up(obj: M, **looked_up: Lookup) -> M | None:
    """``insert``, with foreign keys taken from rows named by other columns, in the same statement
    (``agent=(Agent, {"tenant_id": 1, "name": "echo"})``, as ``fetch`` names a row) instead of a
    query first: sets them on ``obj``. None, and no row written, if one of them names no row.
    """
    spec = tuple((name, model, tuple(where)) for name, (model, where) in looked_up.items())
    sql, given, returned = _insert(type(obj), spec, connection.vendor)
    params = []
    for field in given:  # most of a row is blanks and defaults: no conversion to make
        params.append(_prep(field, field.pre_save(obj, True)))
    for model, where in looked_up.values():
        params += _params(model, where)
    _, row = run(sql, params, one=bool(returned))
    if returned:
        if row is None:
            return None
        for field, value in zip(returned, row, strict=True):
            setattr(obj, field.attname, value)
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj


def loaded(model: type[M], **values: Any) -> M:
    """An instance of ``model`` as if read with only ``values`` (attnames: ``id``, ``tenant_id``),
    the other fields deferred: a row the caller knows part of, without reading it."""
    fields = [f for f in model._meta.concrete_fields if f.attname in values]
    assert len(fields) == len(values), "values names a field the model does not have"
    return model.from_db(connection.alias, [f.attname for f in fields], [values[f.attname] for f in fields])
