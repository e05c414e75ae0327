"""Multi-row INSERT … ON CONFLICT statements on SQLite and PostgreSQL: claim new keys, add to counters.

Rows are written in key order, so concurrent transactions on PostgreSQL lock shared rows in the same order.
PostgreSQL gets one short statement over arrays (INSERT … SELECT unnest(…)), since psycopg re-parses every long
statement it is sent, which made thousand-row VALUES lists slower than the work. SQLite runs statements compiled
once per shape on the driver (nhm_platform.statements): without RETURNING, one row's statement for every row
(executemany); with RETURNING, which executemany cannot give, multi-row VALUES statements of a few fixed sizes
(SQLAlchemy's own multi-row path builds each row's parameters through its execution context, which cost more than
the database's work).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, cast, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from nhm_platform.statements import Compiled, picker

# Rows per statement where a statement carries many rows.
CHUNK = 400
# SQLite's multi-row statements, largest first: a batch is cut into these sizes, each compiled once per shape
# (at 256 rows of the widest table, 3,328 parameters: well under SQLite's 32,766).
_SQLITE_SIZES = (256, 64, 16, 4, 1)


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _ordered(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    return sorted(rows, key=operator.itemgetter(*keys))


def _from_arrays(table: Table, rows: Sequence[dict[str, Any]]) -> Any:
    """PostgreSQL: INSERT INTO table (columns) SELECT unnest(array), … — one parameter per column."""
    columns = list(rows[0])
    arrays = [func.unnest(cast(bindparam(f"rows_{c}", [r[c] for r in rows]), postgresql.ARRAY(table.c[c].type)))
              for c in columns]
    return postgresql.insert(table).from_select(columns, select(*arrays))


def insert_new(session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str],
               returning: str) -> set[Any]:
    """Insert rows whose keys are not taken yet (INSERT … ON CONFLICT DO NOTHING); the returning column of those
    that were inserted."""
    if not rows:
        return set()
    ordered = _ordered(rows, keys)
    found: set[Any] = set()
    if _is_postgres(session):
        for i in range(0, len(ordered), CHUNK * 10):
            statement = (_from_arrays(table, ordered[i:i + CHUNK * 10])
                         .on_conflict_do_nothing(index_elements=list(keys)).returning(table.c[returning]))
            found.update(session.execute(statement).scalars())
        return found
    columns = tuple(ordered[0])
    return {row[0] for row in _sqlite_returning(
        session, ordered, columns, lambda size: _sqlite_insert_new(table, columns, size, tuple(keys), returning))}


def add_counts(session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], *,
               larger: Sequence[str] = (), returning: Sequence[str] = ()) -> list[Any]:
    """Insert rows, or add their counts to the rows already there; columns in ``larger`` keep the larger value
    instead. Every row must name the same columns. Returns the ``returning`` columns of every row written."""
    if not rows:
        return []
    ordered = _ordered(rows, keys)
    columns = [c for c in ordered[0] if c not in keys]
    postgres = _is_postgres(session)

    def upsert(statement: Any) -> Any:
        return _adding(table, statement, keys, columns, larger, func.greatest if postgres else func.max)

    wanted = [table.c[c] for c in returning]
    if not postgres and not wanted:
        _sqlite_add_counts(table, tuple(keys), tuple(columns), tuple(larger)).execute_many(session, ordered)
        return []
    if postgres:
        results: list[Any] = []
        for i in range(0, len(ordered), CHUNK * 10):
            statement = upsert(_from_arrays(table, ordered[i:i + CHUNK * 10]))
            if wanted:
                results.extend(session.execute(statement.returning(*wanted)).all())
            else:
                session.execute(statement)
        return results
    return _sqlite_returning(session, ordered, (*keys, *columns), lambda size: _sqlite_add_counts_returning(
        table, tuple(keys), tuple(columns), tuple(larger), tuple(returning), size))


def _adding(table: Table, statement: Any, keys: Sequence[str], columns: Sequence[str], larger: Sequence[str],
            bigger: Any) -> Any:
    """ON CONFLICT: add each column's new count to the stored one, or keep the larger value for ``larger``."""
    excluded = statement.excluded
    return statement.on_conflict_do_update(index_elements=list(keys), set_={
        c: bigger(table.c[c], excluded[c]) if c in larger else table.c[c] + excluded[c] for c in columns})


@functools.cache
def _sqlite_add_counts(table: Table, keys: tuple[str, ...], columns: tuple[str, ...],
                       larger: tuple[str, ...]) -> Compiled:
    statement = sqlite.insert(table).values({c: bindparam(c) for c in (*keys, *columns)})
    return Compiled(_adding(table, statement, keys, columns, larger, func.max))


def _sqlite_returning(session: Session, rows: Sequence[dict[str, Any]], columns: Sequence[str],
                      statement: Callable[[int], Compiled]) -> list[Any]:
    """The rows RETURNING gives for every row written, in statements of the sizes in _SQLITE_SIZES."""
    found: list[Any] = []
    pick = picker(columns)
    start = 0
    for size in _SQLITE_SIZES:
        while len(rows) - start >= size:
            values = [value for row in rows[start:start + size] for value in pick(row)]
            found.extend(statement(size).rows(session, dict(zip(_sqlite_names(tuple(columns), size), values,
                                                                strict=True))))
            start += size
    return found


@functools.cache
def _sqlite_names(columns: tuple[str, ...], size: int) -> tuple[str, ...]:
    """The parameter names of _sqlite_values, row after row."""
    return tuple(f"{c}_{i}" for i in range(size) for c in columns)


def _sqlite_values(table: Table, columns: Sequence[str], size: int) -> Any:
    """INSERT INTO table (columns) VALUES (:c_0, …), … (:c_<size-1>, …)."""
    names = iter(_sqlite_names(tuple(columns), size))
    return sqlite.insert(table).values([{c: bindparam(next(names), type_=table.c[c].type) for c in columns}
                                        for _ in range(size)])


@functools.cache
def _sqlite_insert_new(table: Table, columns: tuple[str, ...], size: int, keys: tuple[str, ...],
                       returning: str) -> Compiled:
    return Compiled(_sqlite_values(table, columns, size).on_conflict_do_nothing(index_elements=list(keys))
                    .returning(table.c[returning]))


@functools.cache
def _sqlite_add_counts_returning(table: Table, keys: tuple[str, ...], columns: tuple[str, ...],
                                 larger: tuple[str, ...], returning: tuple[str, ...], size: int) -> Compiled:
    statement = _adding(table, _sqlite_values(table, (*keys, *columns), size), keys, columns, larger, func.max)
    return Compiled(statement.returning(*(table.c[c] for c in returning)))


@functools.cache
def _sqlite_update(table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Compiled:
    return Compiled(update(table).where(*(table.c[k] == bindparam(f"key_{k}") for k in keys))
                    .values({c: bindparam(c) for c in columns}))


def update_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Update existing rows found by their keys with the other values of each row (all rows name the same
    columns). PostgreSQL: one UPDATE … FROM unnest(…) statement; SQLite: one statement run for every row."""
    if not rows:
        return
    ordered = _ordered(rows, keys)
    columns = [c for c in ordered[0] if c not in keys]
    if _is_postgres(session):
        for i in range(0, len(ordered), CHUNK * 10):
            part = ordered[i:i + CHUNK * 10]
            source = select(*(func.unnest(cast(bindparam(f"rows_{c}", [r[c] for r in part]),
                                               postgresql.ARRAY(table.c[c].type))).label(c)
                              for c in (*keys, *columns))).subquery("v")
            session.execute(update(table).where(*(table.c[k] == source.c[k] for k in keys))
                            .values({c: source.c[c] for c in columns}))
        return
    _sqlite_update(table, tuple(keys), tuple(columns)).execute_many(
        session, [{**{f"key_{k}": r[k] for k in keys}, **{c: r[c] for c in columns}} for r in ordered])
