"""Group commit: calls that arrive together share a transaction, and each still gets its own outcome."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event, text

from nhm_platform.coalescing import TransactionCoalescer
from nhm_platform.db import Database
from nhm_platform.errors import Aborted, InvalidArgument

CALLERS = 12


def with_tables(url: str) -> Database:
    """A counter at 0 and an empty ledger."""
    database = Database(url)
    with database.transaction() as session:
        session.execute(text("CREATE TABLE counters (k varchar(8) PRIMARY KEY, n integer NOT NULL)"))
        session.execute(text("INSERT INTO counters VALUES ('a', 0)"))
        session.execute(text("CREATE TABLE ledger (k varchar(32) PRIMARY KEY)"))
    return database


@pytest.fixture
def db(backend, sqlite_provisioner, postgres_provisioner):
    provisioner = sqlite_provisioner if backend == "sqlite" else postgres_provisioner
    database = with_tables(provisioner.empty("coalescing"))
    yield database
    database.dispose()


def commits_of(db: Database) -> list[int]:
    commits = [0]
    event.listen(db.engine, "commit", lambda _conn: commits.__setitem__(0, commits[0] + 1))
    return commits


def add_one_under(cap: int, key: str):
    """One call's work: write its ledger row, then count it against the cap (conditional UPDATE); refused at the
    cap, after the write, which must then not stay."""
    def work(session):
        session.execute(text("INSERT INTO ledger VALUES (:k)"), {"k": key})
        bumped = session.execute(text("UPDATE counters SET n = n + 1 WHERE k = 'a' AND n < :cap RETURNING n"),
                                 {"cap": cap}).first()
        if bumped is None:
            raise InvalidArgument("cap reached")
        return bumped.n
    return work


def run_together(coalescer: TransactionCoalescer, works, keys=None) -> list[object]:
    """Start every work at once (behind a slow first transaction, so the rest queue up); results in order."""
    results: list[object] = [None] * len(works)
    gate = threading.Event()

    def slow_first(session):
        session.execute(text("SELECT 1"))
        gate.wait(5)
        return "first"

    def call(i: int) -> None:
        try:
            results[i] = coalescer.run(works[i], keys[i] if keys else None)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[i] = error

    first = threading.Thread(target=lambda: coalescer.run(slow_first))
    first.start()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(works))]
    for thread in threads:
        thread.start()
    while len(coalescer._pending) < len(works):  # wait until all are queued
        threading.Event().wait(0.01)
    gate.set()
    for thread in [first, *threads]:
        thread.join(30)
    return results


def test_calls_that_arrive_together_commit_together_and_each_sees_the_ones_before(db):
    coalescer = TransactionCoalescer(db, max_calls=CALLERS, max_transactions=1)
    commits = commits_of(db)
    results = run_together(coalescer, [add_one_under(100, f"c{i}") for i in range(CALLERS)])
    assert sorted(results) == list(range(1, CALLERS + 1))  # each saw the counts of the calls before it
    assert commits[0] == 2  # the slow first call's transaction, then all the others in one
    with db.read() as session:
        assert session.execute(text("SELECT n FROM counters")).scalar() == CALLERS
        assert session.execute(text("SELECT count(*) FROM ledger")).scalar() == CALLERS


def test_a_failing_call_is_rolled_back_alone_and_the_cap_holds(db):
    coalescer = TransactionCoalescer(db, max_calls=CALLERS, max_transactions=1)
    results = run_together(coalescer, [add_one_under(5, f"c{i}") for i in range(CALLERS)])
    refused = [r for r in results if isinstance(r, InvalidArgument)]
    assert sorted(r for r in results if isinstance(r, int)) == [1, 2, 3, 4, 5]
    assert len(refused) == CALLERS - 5
    with db.read() as session:
        assert session.execute(text("SELECT n FROM counters")).scalar() == 5
        assert session.execute(text("SELECT count(*) FROM ledger")).scalar() == 5


def test_calls_that_fail_between_others_are_rolled_back_alone(db):
    """Each call's savepoint stays open after it (the next one nests in it): a failing call rolls back to its own,
    taking nothing of the calls before it, and the calls after it commit."""
    coalescer = TransactionCoalescer(db, max_calls=CALLERS, max_transactions=1)

    def written_then_failed(key: str):
        def work(session):
            session.execute(text("INSERT INTO ledger VALUES (:k)"), {"k": key})
            session.execute(text("UPDATE counters SET n = n + 100 WHERE k = 'a'"))
            raise InvalidArgument("refused after writing")
        return work

    works = [add_one_under(100, f"c{i}") if i % 3 != 1 else written_then_failed(f"c{i}") for i in range(CALLERS)]
    results = run_together(coalescer, works)
    kept = [f"c{i}" for i in range(CALLERS) if i % 3 != 1]
    assert [isinstance(r, InvalidArgument) for r in results] == [i % 3 == 1 for i in range(CALLERS)]
    assert sorted(r for r in results if isinstance(r, int)) == list(range(1, len(kept) + 1))
    with db.read() as session:
        assert session.execute(text("SELECT n FROM counters")).scalar() == len(kept)
        assert sorted(session.execute(text("SELECT k FROM ledger")).scalars()) == sorted(kept)


def test_a_failed_commit_fails_every_call_of_the_batch_and_applies_none(db):
    coalescer = TransactionCoalescer(db, max_calls=CALLERS, max_transactions=1, retries=0)

    def fail_the_commit(session):
        def refuse(_session):
            raise RuntimeError("commit failed")
        event.listen(session, "before_commit", refuse, once=True)

    works = [add_one_under(100, f"c{i}") for i in range(CALLERS - 1)]
    results = run_together(coalescer, [*works, fail_the_commit])
    assert all(isinstance(r, RuntimeError) for r in results), results  # nobody was told it succeeded
    with db.read() as session:
        assert session.execute(text("SELECT n FROM counters")).scalar() == 0
        assert session.execute(text("SELECT count(*) FROM ledger")).scalar() == 0


class LedgerOfBatches:
    """Batch hooks: begin notes the keys it is given; end writes one ledger row naming the calls that succeeded."""

    def __init__(self) -> None:
        self.begun: list[list[object]] = []

    def begin(self, session, calls) -> None:
        self.begun.append([key for _scope, key in calls])
        session.info["served"] = []

    def end(self, session) -> None:
        served = session.info.pop("served")
        session.execute(text("INSERT INTO ledger VALUES (:k)"), {"k": "batch:" + ",".join(sorted(served))})


def served_under(cap: int, key: str):
    counted = add_one_under(cap, key)

    def work(session):
        n = counted(session)
        session.info["served"].append(key)  # only once it can no longer fail, as the hooks' contract asks
        return n
    return work


def test_batch_hooks_read_for_every_call_before_the_first_and_write_after_the_last(db):
    hooks = LedgerOfBatches()
    coalescer = TransactionCoalescer(db, max_calls=CALLERS, max_transactions=1, hooks=hooks)
    keys = [f"c{i:02d}" for i in range(CALLERS)]
    results = run_together(coalescer, [served_under(5, key) for key in keys], keys)
    assert sorted(r for r in results if isinstance(r, int)) == [1, 2, 3, 4, 5]
    assert hooks.begun[0] == [None] and sorted(hooks.begun[1]) == keys  # every queued call's key, one batch
    served = sorted(key for key, result in zip(keys, results, strict=True) if isinstance(result, int))
    with db.read() as session:
        rows = set(session.execute(text("SELECT k FROM ledger WHERE k LIKE 'batch:%'")).scalars())
    assert rows == {"batch:", "batch:" + ",".join(served)}  # in the same transactions, the failed ones left out


def read_then_serve(key: str, *, refuse: bool = False, statement: str = "SELECT n FROM counters"):
    """A call that writes nothing of its own: it reads, then is refused or served (the hooks write for it)."""
    def work(session):
        session.execute(text(statement))
        if refuse:
            raise InvalidArgument("refused")
        session.info["served"].append(key)
        return key
    return work


def test_calls_that_write_nothing_run_without_savepoints_and_fail_alone(db):
    hooks = LedgerOfBatches()
    coalescer = TransactionCoalescer(db, max_calls=CALLERS, max_transactions=1, hooks=hooks, call_savepoints=False)
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    keys = [f"c{i:02d}" for i in range(6)]  # the ledger's key holds the served ones' keys in 32 characters
    results = run_together(coalescer, [read_then_serve(key, refuse=i % 3 == 1) for i, key in enumerate(keys)], keys)
    assert [isinstance(r, InvalidArgument) for r in results] == [i % 3 == 1 for i in range(len(keys))]
    assert not [s for s in statements if "SAVEPOINT" in s.upper()]
    served = [key for i, key in enumerate(keys) if i % 3 != 1]
    with db.read() as session:
        rows = set(session.execute(text("SELECT k FROM ledger WHERE k LIKE 'batch:%'")).scalars())
    assert rows == {"batch:", "batch:" + ",".join(served)}


def test_a_statement_that_fails_in_a_call_without_savepoint_fails_its_batch(db):
    """On PostgreSQL a failed statement aborts the transaction: the calls after it could not run, nor the commit."""
    hooks = LedgerOfBatches()
    coalescer = TransactionCoalescer(db, max_calls=CALLERS, max_transactions=1, hooks=hooks, call_savepoints=False,
                                     retries=0)
    keys = [f"c{i:02d}" for i in range(CALLERS)]
    works = [read_then_serve(key, statement="SELECT * FROM no_such_table" if i == 3 else "SELECT 1")
             for i, key in enumerate(keys)]
    results = run_together(coalescer, works, keys)
    assert all(isinstance(r, Exception) for r in results), results  # nobody was told it succeeded
    with db.read() as session:
        assert set(session.execute(text("SELECT k FROM ledger")).scalars()) == {"batch:"}  # the first batch's


def test_one_call_at_a_time_runs_without_savepoints(db):
    coalescer = TransactionCoalescer(db)
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert coalescer.run(add_one_under(100, "alone")) == 1
    assert not [s for s in statements if "SAVEPOINT" in s.upper()]
    with pytest.raises(InvalidArgument):
        coalescer.run(add_one_under(1, "refused"))
    with db.read() as session:
        assert session.execute(text("SELECT count(*) FROM ledger")).scalar() == 1


@pytest.fixture
def pg_db(postgres):
    """The db fixture's tables on PostgreSQL (where a call can wait for a row another transaction holds)."""
    database = with_tables(postgres.empty("coalescing_pg"))
    yield database
    database.dispose()


def hold_counter_row(db: Database, seconds: float) -> list[float]:
    """Another transaction holds the counter row for `seconds`; the list gets the monotonic time it lets go."""
    blocker = db.engine.connect()
    blocker.execute(text("UPDATE counters SET n = n WHERE k = 'a'"))
    released = [0.0]

    def release() -> None:
        time.sleep(seconds)
        released[0] = time.monotonic()
        blocker.commit()
        blocker.close()

    threading.Thread(target=release).start()
    return released


def test_a_call_that_waits_for_a_row_leaves_the_batch_and_the_others_commit_meanwhile(pg_db):
    coalescer = TransactionCoalescer(pg_db, max_calls=CALLERS, max_transactions=1, lock_wait=0.05)
    answered: dict[str, float] = {}

    def ledger_only(key: str):
        def work(session):
            session.execute(text("INSERT INTO ledger VALUES (:k)"), {"k": key})
            return key
        return work

    def noting(work, key: str):
        def wrapped(session):
            result = work(session)
            answered[key] = time.monotonic()
            return result
        return wrapped

    released = hold_counter_row(pg_db, 1.0)
    results = run_together(coalescer, [noting(ledger_only("before"), "before"), add_one_under(100, "waits"),
                                        noting(ledger_only("after"), "after")])
    assert results == ["before", 1, "after"]  # the waiting call still succeeded, on its own
    assert answered["after"] < released[0]  # the call behind it did not wait for the row
    with pg_db.read() as session:
        assert session.execute(text("SELECT n FROM counters")).scalar() == 1
        assert session.execute(text("SELECT count(*) FROM ledger")).scalar() == 3


def test_a_call_that_left_its_batch_and_lost_a_conflict_alone_is_served_again(pg_db):
    coalescer = TransactionCoalescer(pg_db, max_calls=CALLERS, max_transactions=1, lock_wait=0.05)
    runs = []

    def conflicts_once_alone(session):
        runs.append(len(runs))
        n = session.execute(text("UPDATE counters SET n = n + 1 WHERE k = 'a' RETURNING n")).scalar_one()
        if len(runs) == 2:  # its first run on its own: as a batch's end that found its number moved on
            raise Aborted("another transaction counted meanwhile; retry", reason="CONFLICT")
        return n

    hold_counter_row(pg_db, 0.5)  # the call leaves its batch and runs alone
    results = run_together(coalescer, [lambda session: session.execute(text("SELECT 1")).scalar_one(),
                                        conflicts_once_alone])
    assert results == [1, 1]  # served again after the conflict, not answered ABORTED
    assert len(runs) == 3  # in the batch (waited), alone (aborted), then again
    with pg_db.read() as session:
        assert session.execute(text("SELECT n FROM counters")).scalar() == 1  # the aborted run left nothing
