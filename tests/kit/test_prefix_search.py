"""Search by the start of a number: the right rows, read through the index on both backends (not a scan)."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, select, text

from nhm_platform.db import Database
from nhm_platform.prefix_search import starts_with

metadata = MetaData()
numbers = Table("numbers", metadata, Column("tenant_id", String(64)), Column("phone_number", String(16)),
                PrimaryKeyConstraint("tenant_id", "phone_number"))
PHONES = ["+14150000000", "+14159999999", "+1415", "+14160000000", "+14149999999", "+1419", "+14199999999",
          "+1420", "+14200000000"]


@pytest.fixture
def db(backend, sqlite_provisioner, postgres_provisioner):
    provisioner = sqlite_provisioner if backend == "sqlite" else postgres_provisioner
    database = Database(provisioner.empty("prefix_search"))
    metadata.create_all(database.engine)
    with database.transaction() as session:
        session.execute(numbers.insert(), [{"tenant_id": t, "phone_number": p} for t in ("a", "b") for p in PHONES])
    yield database
    database.dispose()


def query(prefix):
    c = numbers.c
    return select(c.phone_number).where(c.tenant_id == "a", *starts_with(c.phone_number, prefix)).order_by(
        c.phone_number)


@pytest.mark.parametrize("prefix", ["+1415", "+1419", "+14", "+", "+1420000"])
def test_a_prefix_finds_exactly_the_numbers_that_start_with_it(db, prefix):
    with db.read() as session:
        found = list(session.execute(query(prefix)).scalars())
    assert found == sorted(p for p in PHONES if p.startswith(prefix))


def index_condition(db, session, sql):
    """What the plan narrows the index by (SQLite: the SEARCH's terms; PostgreSQL: its Index Cond lines)."""
    if db.is_sqlite:
        return " ".join(str(row[-1]).partition("(")[2] for row in session.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    lines = [str(row[0]) for row in session.execute(text(f"EXPLAIN {sql}"))]
    return " ".join(line for line in lines if "Index Cond" in line)


def test_the_search_narrows_the_index_to_the_prefix_where_like_cannot(db):
    like = "SELECT phone_number FROM numbers WHERE tenant_id = 'a' AND phone_number LIKE '+1415%'"
    ranged = str(query("+1415").compile(db.engine, compile_kwargs={"literal_binds": True}))
    with db.read() as session:
        if not db.is_sqlite:
            session.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: may an index serve it at all?
        assert "phone_number" in index_condition(db, session, ranged)
        # Why the search was slow at 100,000 numbers: LIKE reads every number of the tenant and filters.
        assert "phone_number" not in index_condition(db, session, like)
