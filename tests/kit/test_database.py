"""The kit's Database on PostgreSQL: plans stay right as tables grow; writers can be limited."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from nhm_platform.db import Database
from nhm_platform.service import open_database
from nhm_registry.app import SPEC


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


def second_writer_waited(db: Database) -> bool:
    """Hold a write transaction open and start another; True if the second waited for the first to commit.
    A read meanwhile must not wait."""
    first_open, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with db.transaction() as session:
            session.execute(text("SELECT 1"))
            first_open.set()
            release.wait(10)
            order.append("first committed")

    def second() -> None:
        with db.transaction() as session:
            order.append("second began")
            session.execute(text("SELECT 1"))

    holder = threading.Thread(target=first)
    holder.start()
    try:
        assert first_open.wait(10)
        waiter = threading.Thread(target=second)
        waiter.start()
        waiter.join(0.5)
        with db.read() as session:
            assert session.execute(text("SELECT 2")).scalar() == 2
    finally:
        release.set()
        holder.join(10)
    waiter.join(10)
    assert not waiter.is_alive()
    return order == ["first committed", "second began"]


def test_postgres_runs_at_most_max_writers_write_transactions_at_once(postgres):
    limited, free = Database(postgres.empty("writers"), max_writers=1), Database(postgres.empty("free"))
    try:
        assert second_writer_waited(limited)
        assert not second_writer_waited(free)
    finally:
        limited.dispose()
        free.dispose()


def test_the_bulk_lane_runs_bulk_lane_transactions_at_once_and_the_serving_process_any_number(postgres):
    settings = SPEC.load_settings(database_url=postgres.fresh(SPEC), bulk_lane_transactions=1)
    for lane, waits in ((True, True), (False, False)):
        db = open_database(SPEC, settings, lane=lane)
        try:
            assert second_writer_waited(db) is waits
        finally:
            db.dispose()


def test_max_writers_cannot_be_negative():
    with pytest.raises(ValueError, match="max_writers"):
        Database("sqlite:///never-opened.db", max_writers=-1)
