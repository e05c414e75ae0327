"""Search by the start of a text column, written so that an index on the column serves it on both backends.

``column LIKE 'prefix%'`` uses no ordinary index on SQLite (its LIKE ignores case, the index does not) and none on
PostgreSQL unless the column's collation is C: it scans every row of the tenant. A range does the same job
through the index: "+1415" <= x < "+1416".
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement


def starts_with(column: Any, prefix: str) -> list[ColumnElement[bool]]:
    """Conditions for "column starts with prefix" (a non-empty prefix)."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return [column >= prefix, column < upper]
