"""Conditions that pick a set of numbers in a query: the set is one parameter, whatever its size (kit
statements.in_set: ``= ANY(…)`` on PostgreSQL, ``IN (SELECT value FROM json_each(…))`` on SQLite), so each query's
text is the same for any set and compiled once. IN lists of hundreds of parameters cost SQLAlchemy an expansion on
every call and psycopg a parse of the long query text: about a tenth of a rescoring batch's time in this process
(docs/performance.md). Up to SET_LIMIT (10,000) numbers a statement.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import ColumnElement, bindparam
from sqlalchemy.orm import Session

from nhm_platform import statements
from nhm_platform.statements import dialect_of, in_set, set_type, set_value


def phone_filters(session: Session, column: Any, phones: Collection[str]) -> Iterator[ColumnElement[bool]]:
    """One condition on column per statement to run, together covering phones (in number order)."""
    ordered = sorted(phones)
    dialect = dialect_of(session)
    for i in range(0, len(ordered), statements.SET_LIMIT):
        chunk = ordered[i:i + statements.SET_LIMIT]
        yield in_set(dialect, column, bindparam(None, set_value(dialect, chunk), type_=set_type(dialect)))
