"""Change feeds when a watcher falls behind retention, and snapshots on the follower's side (both databases)."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import Column, MetaData, String, Table, delete, insert, select

from nhm_platform.clock import FakeClock
from nhm_platform.db import Database
from nhm_platform.errors import FailedPrecondition
from nhm_platform.feed import ChangeLog, FeedFollower, Heartbeat
from nhm_platform.replica import CursorStore, follow_feed, upsert

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def feed_db(empty_database_url):
    metadata = MetaData()
    log = ChangeLog(metadata, "resync_feed")
    db = Database(empty_database_url("resync"), timeout=10)
    metadata.create_all(db.engine)
    with db.transaction() as session:
        session.execute(insert(log.head), log.seed_rows())
    yield db, log
    db.dispose()


def test_a_watcher_catching_up_while_entries_are_pruned_fails_loudly(feed_db):
    """Entries pruned between two of a watcher's reads must end the watch (resync), never be skipped."""
    db, log = feed_db
    for day in range(6):
        with db.transaction() as session:
            log.append(session, tenant_id="acme", kind=1, resource_type="number", resource_key=f"n{day}",
                       payload=b"", change_time=T0 + timedelta(days=day))
    watch = log.watch(db.read, 0, None, lambda: True, batch=2, poll_interval=0.01)
    assert [next(watch).revision, next(watch).revision] == [1, 2]
    with db.transaction() as session:  # the watcher is still two entries in: 3 and 4 go
        assert log.prune(session, T0 + timedelta(days=4)) == 4
    with pytest.raises(FailedPrecondition) as err:
        next(watch)
    assert err.value.reason == "REVISION_COMPACTED"


@dataclass(frozen=True)
class Message:
    """A Watch response as follow_feed reads one: revision 0 is a snapshot item."""

    revision: int
    key: str = ""
    value: str = ""
    heartbeat: bool = False


class Call:
    """A Watch call: waits for ``start``, yields its messages, then blocks until cancelled."""

    def __init__(self, messages, start: threading.Event | None = None) -> None:
        self.messages, self.start = messages, start
        self.cancelled = threading.Event()

    def __iter__(self):
        if self.start is not None:
            self.start.wait(10)
        yield from self.messages
        self.cancelled.wait(10)

    def cancel(self) -> None:
        self.cancelled.set()


class Replica:
    """A key/value replica with its cursor, in a real database."""

    def __init__(self, url: str) -> None:
        metadata = MetaData()
        self.cursors = CursorStore(metadata)
        self.table = Table("kv_replica", metadata, Column("key", String(32), primary_key=True),
                           Column("value", String(32), nullable=False))
        self.db = Database(url, timeout=10)
        metadata.create_all(self.db.engine)
        self.transactions: list[list[int]] = []

    def apply_change(self, session, message: Message) -> None:
        upsert(session, self.table, {"key": message.key, "value": message.value}, ["key"])

    def reset(self, session) -> None:
        session.execute(delete(self.table))

    def follower(self, open_stream) -> FeedFollower:
        return follow_feed(service="test", upstream="upstream", db=self.db, cursors=self.cursors,
                           clock=FakeClock(), open_stream=open_stream, apply_change=self.apply_change,
                           reset=self.reset, backoff_initial=0.01, backoff_max=0.05)

    def state(self) -> tuple[int, dict[str, str]]:
        with self.db.read() as session:
            rows = {key: value for key, value in session.execute(select(self.table.c.key, self.table.c.value))}
            return self.cursors.load(session, "upstream"), rows


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_snapshot_is_applied_whole_in_one_transaction():
    """A snapshot longer than a batch is never applied in parts (a half-replaced replica between them)."""
    applied: list[tuple[list[int], int, bool]] = []
    snapshot = [Message(0, f"k{i}", "v") for i in range(7)] + [Message(30, heartbeat=True), Message(31, "k1", "w")]
    follower = FeedFollower("test", "upstream", open_stream=lambda after, snap: Call(snapshot),
                            load_cursor=lambda: 0, apply=lambda c, r, reset: applied.append((list(c), r, reset)),
                            revision_of=lambda m: m.revision, is_heartbeat=lambda m: m.heartbeat,
                            clock=FakeClock(), batch_max=2)
    follower.start()
    wait_until(lambda: applied and applied[-1][1] == 31)
    follower.stop()
    assert [(len(changes), revision, reset) for changes, revision, reset in applied] == [(7, 30, True), (1, 31, False)]


def test_a_reconnecting_follower_leaves_the_process_wide_random_generator_alone():
    """Its jitter has its own generator: an application (or a Hypothesis test) that seeds random draws the same
    numbers whether or not a follower is retrying in the background."""

    class Unavailable(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.UNAVAILABLE

    attempts = []

    def refuse(after: int, snapshot: bool) -> None:
        attempts.append(after)
        raise Unavailable()

    random.seed(7)
    state = random.getstate()
    follower = FeedFollower("test", "upstream", open_stream=refuse, load_cursor=lambda: 0,
                            apply=lambda c, r, reset: None, revision_of=lambda m: m.revision,
                            is_heartbeat=lambda m: m.heartbeat, clock=FakeClock(), backoff_initial=0.001,
                            backoff_max=0.002)
    follower.start()
    try:
        wait_until(lambda: len(attempts) >= 20)
    finally:
        follower.stop()
    assert random.getstate() == state


def test_a_snapshot_never_undoes_what_another_replica_of_the_service_applied(empty_database_url):
    """Two replicas share a database. One streams a snapshot at revision 10 while the other applies live changes
    through 12: the late snapshot must not replace them (nor move the shared cursor back), and its follower
    resumes from the stored cursor."""
    replica = Replica(empty_database_url("replicas"))
    release = threading.Event()
    opened: list[tuple[int, bool]] = []
    streams = iter([
        Call([Message(0, "a", "snapshot"), Message(0, "b", "snapshot"), Message(10, heartbeat=True)], release),
        Call([Message(13, "b", "13")]),
    ])

    def open_stream(after, snap):
        opened.append((after, snap))
        return next(streams)

    follower = replica.follower(open_stream)
    follower.start()
    wait_until(lambda: opened)
    with replica.db.transaction() as session:  # the other replica, live through revision 12
        for key, value in (("a", "11"), ("b", "12")):
            replica.apply_change(session, Message(0, key, value))
        replica.cursors.save(session, "upstream", 12, FakeClock())
    release.set()
    wait_until(lambda: replica.state()[0] == 13)
    follower.stop()
    assert opened == [(0, True), (12, False)]
    assert replica.state() == (13, {"a": "11", "b": "13"})
    replica.db.dispose()


def test_a_follower_behind_retention_relists_and_resumes(feed_db, empty_database_url):
    """A follower whose cursor was pruned is refused (FAILED_PRECONDITION), takes a snapshot and resumes."""
    import grpc

    db, log = feed_db
    state: dict[str, str] = {}

    def write(key: str, value: str, day: int) -> None:
        with db.transaction() as session:
            state[key] = value
            log.append(session, tenant_id="acme", kind=1, resource_type="kv", resource_key=key,
                       payload=value.encode(), change_time=T0 + timedelta(days=day))

    class Refused(grpc.RpcError):
        def __init__(self, error: FailedPrecondition) -> None:
            self.error = error

        def code(self):
            return grpc.StatusCode.FAILED_PRECONDITION

        def details(self):
            return str(self.error)

    opened: list[tuple[int, bool]] = []
    refusals: list[str] = []

    def open_stream(after, snap):
        opened.append((after, snap))

        def items():
            with db.snapshot() as session:
                head, _ = log.head_revision(session)
            if snap:
                yield from [Message(0, k, v) for k, v in sorted(state.items())] + [Message(head, heartbeat=True)]
            try:
                for record in log.watch(db.read, head if snap else after, None, lambda: not stopped.is_set(),
                                       poll_interval=0.01):
                    if isinstance(record, Heartbeat):
                        yield Message(record.revision, heartbeat=True)
                    else:
                        yield Message(record.revision, record.resource_key, record.payload.decode())
            except FailedPrecondition as exc:
                refusals.append(exc.reason)
                raise Refused(exc) from None

        class Stream:
            def __iter__(self):
                return items()

            def cancel(self):
                stopped.set()
        stopped = threading.Event()
        return Stream()

    replica = Replica(empty_database_url("relist"))
    with replica.db.transaction() as session:  # it had followed through revision 1 long ago
        replica.cursors.save(session, "upstream", 1, FakeClock())
    for day, (key, value) in enumerate([("a", "1"), ("b", "1"), ("a", "2"), ("c", "1"), ("b", "2")]):
        write(key, value, day)
    with db.transaction() as session:
        assert log.prune(session, T0 + timedelta(days=3)) == 3
    follower = replica.follower(open_stream)
    follower.start()
    wait_until(lambda: replica.state()[0] == 5)
    write("c", "2", 9)
    wait_until(lambda: replica.state()[0] == 6)
    follower.stop()
    assert refusals == ["REVISION_COMPACTED"]
    assert opened == [(1, False), (1, True)]
    assert replica.state() == (6, state)
    replica.db.dispose()
