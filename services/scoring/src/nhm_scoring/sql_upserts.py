"""Multi-row INSERT … ON CONFLICT statements on SQLite and PostgreSQL: claim new keys, add to counters.

Rows are written in key order, so concurrent transactions on PostgreSQL lock shared rows in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

# Rows per statement: well under SQLite's 32,766 bound parameters for the widest table here.
CHUNK = 400


def _insert(session: Session, table: Table) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _chunks(rows: Sequence[dict[str, Any]]) -> list[Sequence[dict[str, Any]]]:
    return [rows[i:i + CHUNK] for i in range(0, len(rows), CHUNK)]


def insert_new(session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str],
               returning: str) -> set[Any]:
    """Insert rows whose keys are not taken yet (INSERT … ON CONFLICT DO NOTHING); the returning column of those
    that were inserted."""
    inserted: set[Any] = set()
    ordered = sorted(rows, key=lambda r: tuple(r[k] for k in keys))
    for chunk in _chunks(ordered):
        statement = (_insert(session, table).values(list(chunk))
                     .on_conflict_do_nothing(index_elements=list(keys)).returning(table.c[returning]))
        inserted.update(session.execute(statement).scalars())
    return inserted


def add_counts(session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], *,
               larger: Sequence[str] = (), returning: Sequence[str] = ()) -> list[Any]:
    """Insert rows, or add their counts to the rows already there; columns in ``larger`` keep the larger value
    instead. Every row must name the same columns. Returns the ``returning`` columns of every row written."""
    if not rows:
        return []
    ordered = sorted(rows, key=lambda r: tuple(r[k] for k in keys))
    columns = [c for c in ordered[0] if c not in keys]
    bigger = func.max if session.get_bind().dialect.name == "sqlite" else func.greatest
    results: list[Any] = []
    for chunk in _chunks(ordered):
        statement = _insert(session, table).values(list(chunk))
        excluded = statement.excluded
        updates = {c: bigger(table.c[c], excluded[c]) if c in larger else table.c[c] + excluded[c] for c in columns}
        statement = statement.on_conflict_do_update(index_elements=list(keys), set_=updates)
        if returning:
            statement = statement.returning(*(table.c[c] for c in returning))
            results.extend(session.execute(statement).all())
        else:
            session.execute(statement)
    return results
