"""Statements compiled once and run on the driver: the same answers, errors and savepoints as SQLAlchemy's path."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from nhm_platform import statements
from nhm_platform.db import Database
from nhm_platform.errors import Unavailable
from nhm_platform.statements import Compiled, savepoint, set_filters

metadata = MetaData()
things = Table(
    "things", metadata,
    Column("name", String(16), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("seen", DateTime(timezone=True), nullable=True),
    Column("flag", Boolean, nullable=False),
    Column("blob", LargeBinary, nullable=True),
)
WHEN = datetime(2026, 3, 8, 6, 59, 59, 123456, tzinfo=UTC)
_INSERT = Compiled(insert(things).values(name=bindparam("n"), count=bindparam("c"), seen=bindparam("s"),
                                         flag=bindparam("f"), blob=bindparam("b")))
_BY_NAME = Compiled(select(things).where(things.c.name == bindparam("n")))
_BUMP = Compiled(update(things).where(things.c.name == bindparam("n"), things.c.count < bindparam("cap"))
                 .values(count=things.c.count + 1).returning(things.c.count))
_ALL = Compiled(select(things.c.name, things.c.count).order_by(things.c.name))
_FIRST_TWO = Compiled(select(things.c.name).order_by(things.c.name).limit(2))


@pytest.fixture
def db(empty_database_url) -> Iterator[Database]:
    database = Database(empty_database_url("statements"))
    metadata.create_all(database.engine)
    yield database
    database.dispose()


def test_rows_and_types_are_what_sqlalchemy_returns(db):
    with db.transaction() as session:
        _INSERT.execute(session, {"n": "a", "c": 1, "s": WHEN, "f": True, "b": b"\x00\x01"})
        _INSERT.execute(session, {"n": "b", "c": 2, "s": None, "f": False, "b": None})
    with db.transaction() as session:
        fast = [_BY_NAME.first(session, {"n": name}) for name in ("a", "b")]
        slow = [session.execute(select(things).where(things.c.name == name)).one() for name in ("a", "b")]
        assert [tuple(row) for row in fast] == [tuple(row) for row in slow]
        assert fast[0].seen.replace(tzinfo=UTC) == WHEN and fast[0].flag is True and bytes(fast[0].blob) == b"\x00\x01"
        assert fast[1].seen is None and fast[1].flag is False
        assert _BY_NAME.first(session, {"n": "missing"}) is None
        assert [row.name for row in _FIRST_TWO.rows(session, {})] == ["a", "b"]  # the LIMIT's own parameter


def test_a_conditional_update_answers_until_its_cap(db):
    with db.transaction() as session:
        _INSERT.execute(session, {"n": "a", "c": 0, "s": None, "f": False, "b": None})
    with db.transaction() as session:
        counts = [_BUMP.first(session, {"n": "a", "cap": 2}) for _ in range(3)]
    assert [row.count if row else None for row in counts] == [1, 2, None]


def test_a_failed_statement_in_a_savepoint_rolls_back_alone(db):
    """The savepoint must really be there when the statement fails: the rest of the transaction goes on."""
    with db.transaction() as session:
        _INSERT.execute(session, {"n": "a", "c": 0, "s": None, "f": False, "b": None})
        savepoint = session.begin_nested()
        with pytest.raises(IntegrityError) as raised:
            _INSERT.execute(session, {"n": "a", "c": 9, "s": None, "f": False, "b": None})
        savepoint.rollback()
        assert raised.value.orig is not None  # the driver's own error, as Connection.execute gives it
        _INSERT.execute(session, {"n": "b", "c": 0, "s": None, "f": False, "b": None})
    with db.read() as session:
        assert [row.name for row in _FIRST_TWO.rows(session, {})] == ["a", "b"]
        assert _BY_NAME.first(session, {"n": "a"}).count == 0


def test_execute_many_writes_every_row_with_its_types_and_fails_like_one_statement(db):
    rows = [{"n": f"r{i}", "c": i, "s": WHEN if i % 2 else None, "f": bool(i % 2), "b": bytes([i])}
            for i in range(5)]
    with db.transaction() as session:
        _INSERT.execute_many(session, rows)
        _INSERT.execute_many(session, [])
    with db.read() as session:
        stored = [_BY_NAME.first(session, {"n": row["n"]}) for row in rows]
    assert [(r.name, r.count, r.flag, bytes(r.blob)) for r in stored] == [
        (row["n"], row["c"], row["f"], row["b"]) for row in rows]
    assert stored[1].seen.replace(tzinfo=UTC) == WHEN and stored[0].seen is None
    with db.transaction() as session:
        with pytest.raises(IntegrityError) as raised:
            _INSERT.execute_many(session, [{**rows[0], "n": "new"}, rows[1]])  # r1 exists already
        assert raised.value.orig is not None


def test_set_filters_pick_exactly_the_set_in_statements_of_at_most_the_limit(db, monkeypatch):
    names = [f"n{i:03d}" for i in range(25)] + ["it's", "\u00e9t\u00e9", "\"q\"", "a,b", "[x]", "\U0001f4de"]
    with db.transaction() as session:
        session.execute(insert(things), [{"name": n, "count": 0, "flag": False} for n in [*names, "other"]])
    wanted = [*names[::2], "absent"]
    monkeypatch.setattr(statements, "SET_LIMIT", 4)
    with db.read() as session:
        filters = list(set_filters(session, things.c.name, wanted))
        found = [set(session.execute(select(things.c.name).where(among)).scalars()) for among in filters]
    assert len(filters) == 5  # 17 values, 4 a statement
    assert set().union(*found) == set(wanted) - {"absent"}
    assert sum(len(f) for f in found) == len(wanted) - 1  # each value in one statement only
    with db.read() as session:
        assert list(set_filters(session, things.c.name, [])) == []


def test_a_missing_parameter_is_an_error_not_a_null(db):
    with db.transaction() as session, pytest.raises((KeyError, DBAPIError)):
        _INSERT.execute(session, {"n": "a", "c": 0, "s": None, "f": False})


def test_statements_with_post_compile_parameters_are_refused(db):
    expanding = Compiled(select(things).where(things.c.name.in_(bindparam("names", expanding=True))))
    with db.transaction() as session, pytest.raises(ValueError, match="not a plain statement"):
        expanding.rows(session, {"names": ["a"]})


def test_a_driver_savepoint_undoes_its_block_alone_and_keeps_the_rest(db):
    with db.transaction() as session:
        _INSERT.execute(session, {"n": "a", "c": 0, "s": None, "f": False, "b": None})
        with pytest.raises(IntegrityError), savepoint(session):
            _INSERT.execute(session, {"n": "b", "c": 0, "s": None, "f": False, "b": None})
            _INSERT.execute(session, {"n": "a", "c": 9, "s": None, "f": False, "b": None})  # fails: b goes too
        with savepoint(session):
            _BUMP.first(session, {"n": "a", "cap": 5})
        _INSERT.execute(session, {"n": "c", "c": 0, "s": None, "f": False, "b": None})
    with db.read() as session:
        rows = [(row.name, row.count) for row in _ALL.rows(session, {})]
    assert rows == [("a", 1), ("c", 0)]


def test_a_connection_lost_inside_a_savepoint_surfaces_as_unavailable_never_as_internal(postgres):
    """The database connection dies under a call (a restart, a proxy reset): its own error is the driver's
    disconnect, and the calls after it in the transaction are told UNAVAILABLE, never an untranslated error."""
    url = postgres.empty("statements_lost")
    database = Database(url)
    metadata.create_all(database.engine)
    try:
        with pytest.raises(Unavailable), database.transaction() as session:
            _INSERT.execute(session, {"n": "a", "c": 0, "s": None, "f": False, "b": None})
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
            with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                                 autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(DBAPIError) as lost, savepoint(session):
                _BUMP.first(session, {"n": "a", "cap": 5})
            assert lost.value.connection_invalidated
            _BUMP.first(session, {"n": "a", "cap": 5})  # the next call of the batch
    finally:
        database.dispose()
