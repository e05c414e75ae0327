"""The kit's Database on PostgreSQL: plans stay right as tables grow."""

from __future__ import annotations

from sqlalchemy import text

from nhm_platform.db import Database


def test_postgres_plans_every_query_with_its_values(postgres):
    """No automatic server-side prepared statements, so no generic plan frozen while a table was small."""
    db = Database(postgres.empty("plans"))
    try:
        with db.transaction() as session:
            session.execute(text("CREATE TABLE t (k text PRIMARY KEY)"))
        for i in range(8):  # psycopg would prepare after 5 runs
            with db.transaction() as session:
                session.execute(text("INSERT INTO t VALUES (:k)"), {"k": f"k{i}"})
        with db.read() as session:
            prepared = session.execute(text("SELECT statement FROM pg_prepared_statements")).scalars().all()
        # Only the statement every transaction starts with (its row scope) is prepared, by the kit on purpose.
        assert all("set_config" in statement for statement in prepared), prepared
    finally:
        db.dispose()
