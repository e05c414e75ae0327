"""Group commit: the writes that arrive while a transaction runs are served together in the next one.

A commit costs the same for one write as for thirty (a WAL flush, an fsync on SQLite with synchronous=FULL, a
round trip), so under load a process serves its waiting calls in one transaction instead of one each. Each call
runs in its own savepoint: a call that fails (bad input, a refusal, a failed statement) is rolled back alone and
gets its own error; the others still commit. Every call's answer is given only after the commit, so nothing is
acknowledged that could be lost; if the commit fails, every call of the batch gets that error and nothing of it
was applied, so a retry cannot double count. A conflict that aborted the whole transaction (a deadlock with
another process) is retried, and so is a call that lost such a conflict alone. On PostgreSQL a call of a batch
waits at most `lock_wait` for a row another transaction holds (it would hold up the calls after it, and keep the
rows of those before it locked); past that it is rolled back to its savepoint and runs in its own transaction.

Calls of different callers (tenants) may share a transaction: each call runs under its own caller's row scope
(row_scope.py), set before its savepoint whenever it differs from the call before it. The transaction starts in
the first call's scope, in the statement that sets the batch's lock wait, so a batch of one tenant's calls costs
one statement for both.

What the calls of a batch read and write alike may be done once for the batch (``BatchHooks``): read for all of
them before the first call, and written for all of them after the last, in the same transaction. A call then adds
its writes to the batch only once it can no longer fail, so a call rolled back to its savepoint leaves nothing
behind; a batch whose shared writes fail fails every call, as a failed commit does. Calls whose writes are all
the hooks' (``call_savepoints=False``) run without a savepoint, a round trip less each: a call that fails has
nothing to roll back, and a statement that fails (which on PostgreSQL aborts the transaction) fails the batch,
which is then served again as any conflict is, or call by call after a lock wait.

Calls are served in arrival order by the callers themselves (a waiting caller runs the next batch when a
transaction slot is free: flat combining, no extra thread). Within a batch each call sees the writes of the calls
before it, exactly as if they had committed one after the other; concurrent batches (PostgreSQL) relate to each
other as any concurrent transactions do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from nhm_platform.db import Database, translate_errors
from nhm_platform.errors import Aborted, Unavailable
from nhm_platform.row_scope import RowScope, current_row_scope, row_scope
from nhm_platform.statements import connection_of, savepoint

T = TypeVar("T")
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL: lock_timeout expired


class BatchHooks(Protocol):
    """Work a batch's calls share: `begin` before its first call (each call's row scope and key, in order),
    `end` after its last one that succeeded, both in the batch's transaction. A batch that waits longer than its
    lock wait in `begin` runs its calls one transaction each; one that does in `end`, or whose `end` raises
    Aborted, is served again in a new transaction; any other error of either fails every call."""

    def begin(self, session: Session, calls: Sequence[tuple[RowScope, Any]]) -> None: ...

    def end(self, session: Session) -> None: ...


class _Busy(Exception):
    """A call of a batch waited longer than the batch's lock wait for a row another transaction holds."""


@dataclass(eq=False)
class _Call(Generic[T]):
    work: Callable[[Session], T]
    key: Any  # what the batch hooks read ahead for the call
    # Notified (under the coalescer's lock) when the call is served, or when it may lead the next batch.
    wakeup: threading.Condition
    scope: RowScope = field(default_factory=current_row_scope)  # the caller's, taken on its own thread
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    attempts: int = field(default=0)


class TransactionCoalescer:
    def __init__(self, db: Database, *, max_calls: int = 32, max_transactions: int = 32, retries: int = 3,
                 lock_wait: float = 0.05, hooks: BatchHooks | None = None, call_savepoints: bool = True) -> None:
        self._db = db
        self._hooks = hooks
        self._call_savepoints = call_savepoints
        self._lock_wait = max(0.001, lock_wait)
        self._max_calls = max(1, max_calls)
        # SQLite has one writer: a second transaction would only wait for the first, with fewer calls in each.
        self._max_transactions = 1 if db.is_sqlite else max(1, max_transactions)
        self._retries = max(0, retries)
        self._pending: list[_Call[Any]] = []
        self._running = 0
        self._lock = threading.Lock()

    def run(self, work: Callable[[Session], T], key: Any = None) -> T:
        """Run work(session) in a transaction shared with the calls waiting alongside; its result once committed.
        key: what the batch hooks read ahead for this call."""
        call: _Call[T] = _Call(work, key, threading.Condition(self._lock))
        while True:
            self._submit(call)
            if isinstance(call.error, _Busy):  # it waited for a row in a batch: now alone, with the usual timeouts
                try:
                    return self._alone(call)
                except Aborted as error:  # a conflict, as in a batch: served again like one
                    call.attempts += 1
                    call.error = error
            if isinstance(call.error, Aborted) and call.attempts <= self._retries:
                call.done, call.error = False, None
                continue
            if call.error is not None:
                raise call.error
            return call.result  # type: ignore[no-any-return]

    def _alone(self, call: _Call[T]) -> T:
        with row_scope(call.scope), self._db.transaction() as session:
            self._begin(session, [call])
            result = call.work(session)
            self._end(session)
            return result

    def _submit(self, call: _Call[Any]) -> None:
        """Queue the call; while it is not served, run the next batch if a transaction slot is free, else wait.

        Each waiting call sleeps on its own condition: a finished batch wakes its own calls and the one call now
        at the head of the queue (to lead the next batch), not every waiting thread (with 32 waiting, waking all
        of them after every batch cost more than the batch's own bookkeeping)."""
        with self._lock:
            self._pending.append(call)
            while not call.done:
                if not self._pending or self._running >= self._max_transactions:
                    call.wakeup.wait()
                    continue
                batch = self._pending[:self._max_calls]
                del self._pending[:self._max_calls]
                self._running += 1
                self._wake_next_leader()
                self._lock.release()
                try:
                    self._serve(batch)
                finally:
                    self._lock.acquire()
                    self._running -= 1
                    for served in batch:
                        served.wakeup.notify()
                    self._wake_next_leader()

    def _wake_next_leader(self) -> None:
        """With a transaction slot free and calls waiting, wake the call at the head of the queue to lead."""
        if self._pending and self._running < self._max_transactions:
            self._pending[0].wakeup.notify()

    def _serve(self, batch: list[_Call[Any]]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        for attempt in range(self._retries + 1):
            try:
                # A call that waits for a row another transaction holds would hold up every call after it in the
                # batch (and the rows of those before it): it gives up soon and runs on its own.
                lock_wait = self._lock_wait if len(batch) > 1 else None
                with row_scope(batch[0].scope), self._db.transaction(lock_wait=lock_wait) as session:
                    self._begin(session, batch)
                    outcomes = [self._one(session, call, alone=len(batch) == 1) for call in batch]
                    if connection_of(session).invalidated:
                        # Lost while a call ran (that call has its error): nothing of the batch can commit, so
                        # the calls that had succeeded must not be told so either.
                        raise Unavailable("the database connection was lost; retry", reason="DATABASE_UNAVAILABLE")
                    self._end(session)
            except _Busy as busy:  # the shared reads waited for rows: each call on its own instead
                outcomes = [(None, busy)] * len(batch)
            except Aborted as error:
                if attempt < self._retries:
                    continue
                outcomes = [(None, error)] * len(batch)
            except BaseException as error:  # noqa: BLE001 - handed to every caller: no call of it was applied
                outcomes = [(None, error)] * len(batch)
            break
        for call, (result, error) in zip(batch, outcomes, strict=True):
            call.attempts += 1
            call.result, call.error, call.done = result, error, True

    def _begin(self, session: Session, calls: Sequence[_Call[Any]]) -> None:
        if self._hooks is None:
            return
        try:
            self._hooks.begin(session, [(call.scope, call.key) for call in calls])
        except DBAPIError as error:
            if len(calls) > 1 and getattr(error.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                raise _Busy from error
            raise

    def _end(self, session: Session) -> None:
        if self._hooks is None:
            return
        try:
            self._hooks.end(session)
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                # The shared writes waited for rows another batch is committing: the batch is served again.
                raise Aborted("the batch waited too long for rows another transaction holds; retry",
                              reason="CONFLICT") from error
            raise

    def _one(self, session: Session, call: _Call[Any], *, alone: bool) -> tuple[Any, BaseException | None]:
        if alone:  # its failure rolls back the whole (one-call) transaction: no savepoint needed
            return call.work(session), None
        self._db.use_row_scope(session, call.scope)
        if not self._call_savepoints:
            return self._unsaved(session, call)
        try:
            # Left open after the call: the next call's savepoint nests in it, and commit releases them all.
            with savepoint(session, release=False):
                try:
                    result = call.work(session)
                except DBAPIError as error:
                    if getattr(error.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                        raise _Busy from error
                    with translate_errors():
                        raise
        except Exception as error:  # noqa: BLE001 - handed to the call's caller, the others still commit
            return None, error
        return result, None

    @staticmethod
    def _unsaved(session: Session, call: _Call[Any]) -> tuple[Any, BaseException | None]:
        """A call that writes nothing of its own: its errors are its own, but a failed statement is the batch's."""
        try:
            return call.work(session), None
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                raise _Busy from error
            raise
        except Exception as error:  # noqa: BLE001 - handed to the call's caller, the others still commit
            return None, error
