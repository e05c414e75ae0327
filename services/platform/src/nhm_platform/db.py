"""SQLAlchemy 2 engine and transactions, on SQLite (embedded default) and PostgreSQL (production).

SQLite runs in WAL mode with foreign keys on, a busy timeout, and one writer per process (a lock, then
BEGIN IMMEDIATE), which is what keeps "database is locked" away under load. A database that cannot be
reached, or stays locked, surfaces as UNAVAILABLE; a serialization failure or deadlock as ABORTED.

On PostgreSQL every transaction starts by naming the rows it may touch (row_scope.py): one prepared statement
sets the transaction-local tenant settings that row-level security compares each row with (and the lock wait of
a coalesced batch).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import structlog
from sqlalchemy import Engine, String, bindparam, create_engine, event, func, literal, select, text, true
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from nhm_platform.errors import Aborted, PermissionDenied, Unavailable
from nhm_platform.row_scope import NO_ROWS, PLATFORM_SETTING, TENANT_SETTING, RowScope, current_row_scope
from nhm_platform.statements import Compiled

_log = structlog.get_logger("nhm.db")
_SQLITE_SYNCHRONOUS = {"OFF", "NORMAL", "FULL", "EXTRA"}
_PG_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
AUTOMATIC_PREPARE_NEVER = 2**62  # psycopg's prepare_threshold: executions before it prepares a query by itself
# The owner's function that lets the application role refresh statistics (migrations.create_analyze_function).
ANALYZE_FUNCTION = "nhm_analyze"
_SCOPE_INFO = "nhm_row_scope"  # Session.info key: the row scope the open transaction has set


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
    def transaction(self, *, lock_wait: float | None = None) -> Iterator[Session]:
        """A read-write transaction: committed when the block ends, rolled back if it raises.

        lock_wait: on PostgreSQL, seconds a statement may wait for a row lock (lock_timeout) in this transaction,
        set in the statement that sets the row scope."""
        with translate_errors(), self._write_lock, Session(self.engine, expire_on_commit=False) as session:
            if self.is_sqlite:  # take the write lock up front instead of upgrading a read lock later
                session.connection(execution_options={"sqlite_begin": "BEGIN IMMEDIATE"})
            else:
                self._start_scope(session, lock_wait)
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
            if not self.is_sqlite:
                self._start_scope(session)
            yield session

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only transaction whose statements all see one snapshot (REPEATABLE READ on PostgreSQL;
        a SQLite read transaction in WAL mode already is one)."""
        with translate_errors(), Session(self.engine, expire_on_commit=False) as session:
            if not self.is_sqlite:
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                self._start_scope(session)
            try:
                yield session
            finally:
                session.rollback()

    def use_row_scope(self, session: Session, scope: RowScope) -> None:
        """Switch the open transaction to another row scope (a coalesced call of another caller), if it differs.
        Call it outside a savepoint: a rollback to a savepoint would undo the switch."""
        if self.is_sqlite or session.info.get(_SCOPE_INFO, NO_ROWS) == scope:
            return
        _SET_SCOPE.execute(session, _scope_values(scope))
        session.info[_SCOPE_INFO] = scope

    def _start_scope(self, session: Session, lock_wait: float | None = None) -> None:
        # Set even for no scope: a session-level value (connection options) must never widen a transaction.
        scope = current_row_scope()
        if lock_wait is None:
            _SET_SCOPE.execute(session, _scope_values(scope))
        else:
            _SET_SCOPE_AND_LOCK_WAIT.execute(session, {**_scope_values(scope),
                                                       "lock_timeout": str(int(lock_wait * 1000))})
        session.info[_SCOPE_INFO] = scope

    def check_row_security_applies(self) -> None:
        """Refuse a PostgreSQL role that row-level security would not hold: a superuser, a role with
        BYPASSRLS, or the owner of the tables (or a member of the owner's role), who could turn it off."""
        if self.is_sqlite:
            return
        with translate_errors(), self.engine.connect() as connection:
            row = connection.execute(text(
                "SELECT current_user AS name, r.rolsuper, r.rolbypassrls,"
                " (SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_class c"
                "   JOIN pg_namespace n ON n.oid = c.relnamespace"
                "  WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
                "    AND pg_has_role(current_user, c.relowner, 'MEMBER')) AS owned"
                " FROM pg_roles r WHERE r.rolname = current_user")).one()
        problem = ("is a superuser" if row.rolsuper else "has BYPASSRLS" if row.rolbypassrls
                   else f"owns the tables ({row.owned})" if row.owned else "")
        if problem:
            raise RuntimeError(
                f"the service connects to PostgreSQL as {row.name!r}, which {problem}: row-level security would "
                "not hold it to one tenant's rows. Connect (database_url) as the application role "
                "(database_app_role, e.g. CREATE ROLE nhm_app LOGIN NOSUPERUSER NOBYPASSRLS) and run migrations "
                "as the owner (migration_database_url); see docs/operations.md#database-roles")

    def dispose(self) -> None:
        self.engine.dispose()


def refresh_statistics(session: Session, tables: tuple[str, ...]) -> None:
    """Refresh the query planner's statistics of some tables now (after a bulk change). On PostgreSQL only the
    owner may ANALYZE: the owner's function nhm_analyze does it for the application role (migrations)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SELECT {ANALYZE_FUNCTION}(CAST(:tables AS text[]))"), {"tables": list(tables)})
        return
    session.execute(text("PRAGMA analysis_limit=1000"))  # sample, bounded time
    for table in tables:
        session.execute(text(f"ANALYZE {table}"))


def _set_config(setting: str, parameter: str) -> Any:
    """set_config(setting, :parameter, true): a transaction-local setting."""
    return func.set_config(literal(setting), bindparam(parameter, type_=String()), true())


# One statement at the start of each transaction (prepared: it runs on every transaction of every service).
_SCOPE_SETTINGS = (_set_config(TENANT_SETTING, "tenant"), _set_config(PLATFORM_SETTING, "platform"))
_SET_SCOPE = Compiled(select(*_SCOPE_SETTINGS), prepared=True)
_SET_SCOPE_AND_LOCK_WAIT = Compiled(select(*_SCOPE_SETTINGS, _set_config("lock_timeout", "lock_timeout")),
                                    prepared=True)


def _scope_values(scope: RowScope) -> dict[str, str]:
    return {"tenant": scope.tenant_id, "platform": "on" if scope.platform else ""}


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    try:
        yield
    except DBAPIError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate in _PG_RETRYABLE_SQLSTATES:
            raise Aborted("a concurrent change conflicted with this one; retry", reason="CONFLICT") from exc
        if sqlstate == "42501" and "row-level security" in str(exc.orig):
            # A write of another tenant's row: only a bug gets here (the repositories filter by tenant too).
            _log.warning("db.row_security_refused", error=str(exc.orig).splitlines()[0])
            raise PermissionDenied("row-level security refused a row outside this call's tenant",
                                   reason="ROW_LEVEL_SECURITY") from exc
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
