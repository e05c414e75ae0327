"""Conditions that pick a set of numbers in a query: the set is one parameter, whatever its size.

PostgreSQL: ``= ANY(%s::VARCHAR[])`` over an array. SQLite: ``IN (SELECT value FROM json_each(?))`` over a JSON
array, which SQLite plans as an index search per number, as it does an IN list. An IN list of hundreds of
parameters costs SQLAlchemy an expansion on every call and psycopg a parse of the long query text (it caches only
short ones): about a tenth of a rescoring batch's time in this process (docs/performance.md). One parameter keeps
each query's text the same for any set, so it is compiled once. Up to 10,000 numbers a statement.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from nhm_platform.statements import dialect_of

CHUNK = 10_000


def phone_filters(session: Session, column: Any, phones: Collection[str]) -> Iterator[ColumnElement[bool]]:
    """One condition on column per statement to run, together covering phones (in number order)."""
    ordered = sorted(phones)
    postgres = dialect_of(session) == "postgresql"
    for i in range(0, len(ordered), CHUNK):
        chunk = ordered[i:i + CHUNK]
        if postgres:
            yield column == any_(bindparam(None, chunk, type_=postgresql.ARRAY(String)))
        else:
            listed = func.json_each(bindparam(None, json.dumps(chunk), type_=String)).table_valued("value")
            yield column.in_(select(listed.c.value))
