"""Hot statements compiled once per dialect and run on the transaction's DBAPI cursor.

SQLAlchemy's execution path (execution context, parameter construction, result metadata, the ORM session's
connection lookup) costs 40-60 µs per statement; the driver itself 3-10 µs on SQLite. An allocation runs about
ten statements, so on the hot path that overhead was the largest single item of the serial part of a coalesced
batch (docs/performance.md). A :class:`Compiled` statement keeps SQLAlchemy for what it is good at — building
the SQL for each dialect, its bind and result type processors — and only skips the per-call machinery.

Only plain statements qualify: bound parameters by name, no expanding IN lists or other post-compile
parameters (checked at compile time). Errors are raised as SQLAlchemy's ``DBAPIError`` with the driver's error
as ``orig``, exactly as ``Connection.execute`` raises them, and a connection the driver reports as lost is
invalidated so that the pool never hands it out again.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import operator
import threading
from collections import namedtuple
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import TypeEngine

from nhm_platform.errors import Unavailable

# Values a set parameter (in_set) carries in one statement at most: a plan for the largest sets stays sound.
SET_LIMIT = 10_000
_CONNECTION = "nhm.connection"
_SAVEPOINTS = itertools.count()
Processor = Callable[[Any], Any] | None


def connection_of(session: Session) -> Connection:
    """The session's connection, looked up once per (nested) transaction: the ORM's lookup costs ~20 µs a call,
    and it is that lookup which emits a pending SAVEPOINT, so it is made again in each new savepoint."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    cached = session.info.get(_CONNECTION)
    if cached is not None and cached[0] is transaction:
        return cached[1]  # type: ignore[no-any-return]
    connection = session.connection()
    session.info[_CONNECTION] = (transaction, connection)
    return connection


@contextlib.contextmanager
def savepoint(session: Session, *, release: bool = True) -> Iterator[None]:
    """A SAVEPOINT on the driver: rolled back to if the block raises (the exception goes on), released if not.

    release=False keeps it open when the block succeeds, saving the round trip of releasing it: for a block
    followed by others in the same transaction, each of which rolls back at most to its own savepoint (the
    transaction's end releases them all). A savepoint that must free what its block locked (a rolled-back
    UPDATE) is rolled back, which either way it is.

    Session.begin_nested costs several times more (it compiles its SAVEPOINT each time and keeps ORM state);
    this is for blocks of Core and Compiled statements only. Do not open an ORM nested transaction inside it:
    the ORM would not know that a rollback to this savepoint ended its own."""
    name = f"nhm_sp_{next(_SAVEPOINTS)}"
    connection = connection_of(session)
    _driver_execute(connection, f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        if not connection.invalidated:  # a lost connection took the whole transaction with it
            _driver_execute(connection, f"ROLLBACK TO SAVEPOINT {name}")
        raise
    if release:
        _driver_execute(connection, f"RELEASE SAVEPOINT {name}")


def _cursor(connection: Connection) -> Any:
    if connection.invalidated:  # lost earlier in this transaction (SQLAlchemy would raise PendingRollbackError)
        raise Unavailable("the database connection was lost; retry", reason="DATABASE_UNAVAILABLE")
    return connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def _driver_execute(connection: Connection, sql: str) -> None:
    cursor = _cursor(connection)
    try:
        cursor.execute(sql)
    except connection.dialect.loaded_dbapi.Error as error:
        raise _translated(connection, sql, (), error, cursor) from error
    finally:
        cursor.close()


def dialect_of(session: Session) -> str:
    """"postgresql" or "sqlite": the dialect of the session's transaction."""
    return connection_of(session).dialect.name


def in_set(dialect: str, column: Any, parameter: BindParameter[Any]) -> ColumnElement[bool]:
    """column is one of a set of strings given as one parameter (typed set_type, valued set_value), so a statement
    is compiled once for a set of any size and can be a Compiled one. PostgreSQL: ``= ANY(:p)`` over a text array.
    SQLite: ``IN (SELECT value FROM json_each(:p))`` over a JSON array, which SQLite plans as an index search per
    value, as it does an IN list. An IN list instead makes SQLAlchemy expand every value on every call, and gives
    psycopg a new query text for each size of set."""
    if dialect == "postgresql":
        return column == any_(parameter)  # type: ignore[no-any-return]
    return column.in_(select(func.json_each(parameter).table_valued("value").c.value))  # type: ignore[no-any-return]


def set_type(dialect: str) -> TypeEngine[Any]:
    return postgresql.ARRAY(String) if dialect == "postgresql" else String()


def set_value(dialect: str, values: Sequence[str]) -> list[str] | str:
    """What an in_set parameter takes: at most SET_LIMIT values."""
    return list(values) if dialect == "postgresql" else json.dumps(list(values))


def set_filters(session: Session, column: Any, values: Collection[str]) -> Iterator[ColumnElement[bool]]:
    """Conditions that pick a set of strings in queries of ordinary (not Compiled) statements: one condition on
    column per statement to run, together covering values in sorted order (numbers, the order their rows' locks
    are taken in), each with at most SET_LIMIT values as one in_set parameter. Each query's text is then the same
    for a set of any size: IN lists of hundreds of parameters cost SQLAlchemy an expansion on every call and
    psycopg a parse of the long text, about a tenth of a scoring rescoring batch (docs/performance.md)."""
    ordered = sorted(values)
    dialect = dialect_of(session)
    for i in range(0, len(ordered), SET_LIMIT):
        chunk = ordered[i:i + SET_LIMIT]
        yield in_set(dialect, column, bindparam(None, set_value(dialect, chunk), type_=set_type(dialect)))


@dataclass(frozen=True)
class _Plan:
    sql: str
    positional: tuple[str, ...] | None  # parameter order for qmark drivers (SQLite); None: by name (psycopg)
    ordered: Callable[[Mapping[str, Any]], Sequence[Any]] | None  # the positional values of a mapping, in order
    defaults: Mapping[str, Any]
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]
    row: Any  # namedtuple class of the result columns, or None for a statement without result
    results: tuple[Processor, ...]


class Compiled:
    """A Core statement run on the driver; rows come back as named tuples with SQLAlchemy's type processing.

    prepared=True makes it a server-side prepared statement on PostgreSQL (planned once per connection, then
    PostgreSQL's plan cache decides between generic and custom plans). Use it for statements whose plan cannot go
    wrong as tables grow — primary-key lookups and updates — never for range walks: a generic plan chosen while a
    table was small is what the kit's engine otherwise avoids (no automatic preparation, see nhm_platform.db).
    """

    def __init__(self, statement: ClauseElement, *, prepared: bool = False) -> None:
        self._statement = statement
        self._prepared = prepared
        self._plans: dict[str, _Plan] = {}
        self._lock = threading.Lock()

    def rows(self, session: Session, params: Mapping[str, Any]) -> list[Any]:
        return self._run(session, params, fetch=True)

    def first(self, session: Session, params: Mapping[str, Any]) -> Any | None:
        rows = self._run(session, params, fetch=True)
        return rows[0] if rows else None

    def execute(self, session: Session, params: Mapping[str, Any]) -> None:
        self._run(session, params, fetch=False)

    def execute_many(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """The statement once for each row of parameters, in one driver call (executemany; no result rows).
        SQLAlchemy's own executemany builds each row's parameters through its execution context, which was
        most of the cost of writing a thousand rows this way on SQLite."""
        if not rows:
            return
        connection = connection_of(session)
        dialect = connection.dialect
        plan = self._plans.get(dialect.name) or self._compile(dialect)
        arguments = [_arguments(plan, row) for row in rows]
        cursor = _cursor(connection)
        try:
            cursor.executemany(plan.sql, arguments)
        except dialect.loaded_dbapi.Error as error:
            raise _translated(connection, plan.sql, arguments[:1], error, cursor) from error
        finally:
            cursor.close()

    def _run(self, session: Session, params: Mapping[str, Any], *, fetch: bool) -> list[Any]:
        connection = connection_of(session)
        dialect = connection.dialect
        plan = self._plans.get(dialect.name) or self._compile(dialect)
        arguments = _arguments(plan, params)
        cursor = _cursor(connection)
        try:
            if self._prepared and plan.positional is None:
                cursor.execute(plan.sql, arguments, prepare=True)
            else:
                cursor.execute(plan.sql, arguments)
            if not fetch or plan.row is None:
                return []
            fetched = cursor.fetchall()
        except dialect.loaded_dbapi.Error as error:
            raise _translated(connection, plan.sql, arguments, error, cursor) from error
        finally:
            cursor.close()
        make, results = plan.row._make, plan.results
        if not any(results):
            return [make(r) for r in fetched]
        return [make([v if p is None or v is None else p(v) for p, v in zip(results, r, strict=True)])
                for r in fetched]

    def _compile(self, dialect: Any) -> _Plan:
        with self._lock:
            if dialect.name in self._plans:
                return self._plans[dialect.name]
            compiled: Any = self._statement.compile(dialect=dialect)
            expanding = [name for name, bind in compiled.binds.items() if bind.expanding]
            if expanding or compiled.literal_execute_params or compiled.post_compile_params:
                raise ValueError(f"not a plain statement (expanding or post-compile parameters): {expanding}")
            required = {bind.key for bind in compiled.binds.values() if bind.required}
            defaults = {name: value for name, value in compiled.construct_params(_check=False).items()
                        if name not in required}
            binds = tuple((name, process) for name, process in compiled._bind_processors.items()
                          if process is not None)
            columns = compiled._result_columns
            row = namedtuple("Row", [entry[0] for entry in columns], rename=True) if columns else None
            results = tuple(entry[3]._cached_result_processor(dialect, None) for entry in columns)
            positional = tuple(compiled.positiontup) if compiled.positional else None
            ordered = picker(positional) if positional is not None else None
            plan = _Plan(compiled.string, positional, ordered, defaults, binds, row, results)
            self._plans[dialect.name] = plan
            return plan


def picker(names: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """The values of names in a mapping, as a tuple in that order (picked in C; one name or none give a tuple too)."""
    if len(names) > 1:
        return operator.itemgetter(*names)
    return lambda values: tuple(values[name] for name in names)


def _arguments(plan: _Plan, params: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
    """One call's parameters as the driver takes them: defaults filled in, bind processors applied, in order.
    Runs once a row of an executemany, so a statement with neither defaults nor processors skips the copy."""
    values = params
    if plan.defaults or plan.binds:
        values = {**plan.defaults, **params}
        for name, process in plan.binds:
            values[name] = process(values[name])
    return plan.ordered(values) if plan.ordered is not None else values


def _translated(connection: Connection, sql: str, params: Any, error: Exception, cursor: Any) -> DBAPIError:
    dialect = connection.dialect
    lost = dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
    if lost:
        connection.invalidate(error)
    return DBAPIError.instance(sql, params, error, dialect.loaded_dbapi.Error,  # type: ignore[return-value]
                               connection_invalidated=lost, dialect=dialect)
