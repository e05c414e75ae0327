"""Conditions that pick a set of numbers in a query, in as few statements as each database takes well.

SQLite: ``IN (?, ?, …)`` lists of up to 500 numbers. PostgreSQL: ``= ANY(%s::VARCHAR[])`` with the numbers as one
array parameter, up to 10,000 a statement: an IN list of hundreds of parameters makes a query text that psycopg
parses again on every execution (it caches only short ones) and that SQLAlchemy expands on every call, which
was about a tenth of a rescoring batch's time in this process (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from nhm_platform.statements import dialect_of

SQLITE_CHUNK = 500
POSTGRES_CHUNK = 10_000


def phone_filters(session: Session, column: Any, phones: Collection[str]) -> Iterator[ColumnElement[bool]]:
    """One condition on column per statement to run, together covering phones (in number order)."""
    ordered = sorted(phones)
    postgres = dialect_of(session) == "postgresql"
    size = POSTGRES_CHUNK if postgres else SQLITE_CHUNK
    for i in range(0, len(ordered), size):
        chunk = ordered[i:i + size]
        if postgres:
            yield column == any_(bindparam(None, chunk, type_=postgresql.ARRAY(String)))
        else:
            yield column.in_(chunk)
