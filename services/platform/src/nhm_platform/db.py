"""SQLAlchemy 2 engine and transactions, on SQLite (embedded default) and PostgreSQL (production).

SQLite runs in WAL mode with foreign keys on, a busy timeout, and one writer per process (a lock, then
BEGIN IMMEDIATE), which is what keeps "database is locked" away under load. A database that cannot be
reached, or stays locked, surfaces as UNAVAILABLE; a serialization failure or deadlock as ABORTED.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from nhm_platform.errors import Aborted, Unavailable

_SQLITE_SYNCHRONOUS = {"OFF", "NORMAL", "FULL", "EXTRA"}
_PG_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
AUTOMATIC_PREPARE_NEVER = 2**62  # psycopg's prepare_threshold: executions before it prepares a query by itself


class Database:
    def __init__(self, url: str, *, pool_size: int = 16, timeout: float = 5.0,
                 sqlite_synchronous: str = "FULL") -> None:
        parsed = make_url(url)
        self.url = url
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url, timeout, sqlite_synchronous, pool_size)
            self._write_lock: contextlib.AbstractContextManager[Any] = threading.Lock()
        elif self.dialect == "postgresql":
            self.engine = create_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                pool_timeout=timeout,
                connect_args={
                    "connect_timeout": max(1, int(timeout)),
                    "options": f"-c statement_timeout={int(timeout * 1000)} -c lock_timeout={int(timeout * 1000)}",
                    # No automatic server-side prepared statements: psycopg prepares a query after 5 runs and
                    # PostgreSQL may then keep a generic plan made while the table was small (a sequential scan)
                    # for the life of the pooled connection; an IN (...) existence check during a 40,000-number
                    # import went from 0.05 s to 40 s. Only statements marked prepared (nhm_platform.statements,
                    # the allocation hot path's key lookups) are prepared, explicitly; psycopg ignores an explicit
                    # request when the threshold is None, so it is set out of reach instead.
                    "prepare_threshold": AUTOMATIC_PREPARE_NEVER,
                },
            )
            self._write_lock = contextlib.nullcontext()
        else:
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite:/// or postgresql+psycopg://")

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A read-write transaction: committed when the block ends, rolled back if it raises."""
        with translate_errors(), self._write_lock, Session(self.engine, expire_on_commit=False) as session:
            if self.is_sqlite:  # take the write lock up front instead of upgrading a read lock later
                session.connection(execution_options={"sqlite_begin": "BEGIN IMMEDIATE"})
            try:
                yield session
            except BaseException:
                session.rollback()
                raise
            session.commit()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction. On PostgreSQL each statement sees the latest commits (READ COMMITTED)."""
        with translate_errors(), Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only transaction whose statements all see one snapshot (REPEATABLE READ on PostgreSQL;
        a SQLite read transaction in WAL mode already is one)."""
        with translate_errors(), Session(self.engine, expire_on_commit=False) as session:
            if not self.is_sqlite:
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            try:
                yield session
            finally:
                session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    try:
        yield
    except DBAPIError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate in _PG_RETRYABLE_SQLSTATES:
            raise Aborted("a concurrent change conflicted with this one; retry", reason="CONFLICT") from exc
        if sqlstate == "57014":  # query_canceled: statement_timeout
            raise Unavailable("the database did not answer in time; retry", reason="DATABASE_TIMEOUT") from exc
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            raise Unavailable("the database is unavailable or busy; retry", reason="DATABASE_UNAVAILABLE") from exc
        raise


def _sqlite_engine(url: str, timeout: float, synchronous: str, pool_size: int) -> Engine:
    synchronous = synchronous.upper()
    if synchronous not in _SQLITE_SYNCHRONOUS:
        raise ValueError(f"sqlite_synchronous must be one of {sorted(_SQLITE_SYNCHRONOUS)}")
    memory = make_url(url).database in (None, "", ":memory:")
    # A file database keeps its connections open like PostgreSQL's: opening one per transaction costs the
    # connect and its pragmas, and closing the last one checkpoints the WAL (a quarter of an allocation's time).
    pool: dict[str, Any] = {} if memory else {"poolclass": QueuePool, "pool_size": pool_size,
                                              "max_overflow": pool_size, "pool_timeout": timeout}
    engine = create_engine(url, connect_args={"timeout": timeout, "check_same_thread": False}, **pool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))

    return engine
