"""Change feeds and idempotency claims on both databases, including the ordering trap of late commits."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import MetaData, insert

from nhm_platform.clock import FakeClock
from nhm_platform.db import Database
from nhm_platform.errors import FailedPrecondition
from nhm_platform.feed import ChangeLog, FeedFollower, Heartbeat
from nhm_platform.idempotency import Claim, IdempotencyStore, fingerprint

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def make_feed_db(url):
    metadata = MetaData()
    log = ChangeLog(metadata, "test_feed")
    store = IdempotencyStore(metadata, "test_idempotency")
    db = Database(url, timeout=10)
    metadata.create_all(db.engine)
    with db.transaction() as session:
        session.execute(insert(log.head), log.seed_rows())
    return db, log, store


@pytest.fixture
def feed_db(empty_database_url):
    db, log, store = make_feed_db(empty_database_url("feed"))
    yield db, log, store
    db.dispose()


@pytest.fixture
def pg_feed_db(postgres):
    db, log, store = make_feed_db(postgres.empty("feed"))
    yield db, log, store
    db.dispose()


def append(db, log, key, tenant="acme", when=T0):
    with db.transaction() as session:
        return log.append(session, tenant_id=tenant, kind=1, resource_type="number", resource_key=key,
                          payload=key.encode(), change_time=when)


def test_revisions_increase_and_filter_by_tenant(feed_db):
    db, log, _ = feed_db
    assert [append(db, log, f"n{i}", tenant="acme" if i % 2 else "globex") for i in range(6)] == [1, 2, 3, 4, 5, 6]
    with db.read() as session:
        assert [r.resource_key for r in log.read(session, 0, "acme", 100)] == ["n1", "n3", "n5"]
        assert [r.revision for r in log.read(session, 4, None, 100)] == [5, 6]


def test_a_late_commit_never_hides_behind_a_later_revision(pg_feed_db):
    """Writer 1 takes a revision and commits late; writer 2 must not become visible before it.

    PostgreSQL only: SQLite has one writer per process, so the race cannot happen there.
    """
    db, log, _ = pg_feed_db
    first_has_revision = threading.Event()
    release_first = threading.Event()

    def slow_writer():
        with db.transaction() as session:
            log.append(session, tenant_id="acme", kind=1, resource_type="number", resource_key="slow",
                       payload=b"", change_time=T0)
            first_has_revision.set()
            release_first.wait(10)

    slow = threading.Thread(target=slow_writer)
    slow.start()
    assert first_has_revision.wait(10)
    fast = threading.Thread(target=append, args=(db, log, "fast"))
    fast.start()
    time.sleep(0.3)
    with db.read() as session:
        assert log.read(session, 0, None, 10) == []  # neither visible: the fast one waits its turn
    release_first.set()
    slow.join()
    fast.join()
    with db.read() as session:
        assert [(r.revision, r.resource_key) for r in log.read(session, 0, None, 10)] == [(1, "slow"), (2, "fast")]


def test_a_commit_between_the_watchers_statements_is_never_skipped(feed_db, monkeypatch):
    """A change that commits while the watcher reads must reach it, not be covered by a heartbeat past it.

    On PostgreSQL (READ COMMITTED) each statement of the watcher's read sees a newer snapshot; the change is
    committed from another session right after the watcher's entry read, the worst moment for it.
    """
    db, log, _ = feed_db
    append(db, log, "before")
    original_read = ChangeLog.read
    injected = []

    def read_then_commit(self, session, after, tenant_id, limit):
        records = original_read(self, session, after, tenant_id, limit)
        if not records and not injected:
            injected.append(append(db, log, "racing"))
        return records

    monkeypatch.setattr(ChangeLog, "read", read_then_commit)
    seen = []
    for item in log.watch(db.read, 1, None, lambda: len(seen) < 4, poll_interval=0.01, heartbeat_interval=0):
        seen.append(item)
        if getattr(item, "resource_key", None) == "racing":
            break
    keys = [getattr(item, "resource_key", None) for item in seen]
    assert "racing" in keys, keys
    heartbeat_before = [item.revision for item in seen[:keys.index("racing")] if isinstance(item, Heartbeat)]
    assert all(revision < injected[0] for revision in heartbeat_before), (heartbeat_before, injected)


def test_append_many_takes_consecutive_revisions_in_one_counter_update(feed_db):
    db, log, _ = feed_db
    append(db, log, "first")
    entries = [dict(tenant_id="acme", kind=1, resource_type="number", resource_key=f"b{i}", payload=b"",
                    change_time=T0) for i in range(3)]
    generation = log.generation
    with db.transaction() as session:
        assert log.append_many(session, entries) == [2, 3, 4]
        assert log.append_many(session, []) == []
    assert log.generation == generation + 1  # watchers are woken once the batch commits
    assert append(db, log, "last") == 5
    with db.read() as session:
        assert [r.resource_key for r in log.read(session, 1, None, 10)] == ["b0", "b1", "b2", "last"]
        assert log.head_revision(session) == (5, 0)


def test_watch_replays_then_heartbeats_and_refuses_compacted_revisions(feed_db):
    db, log, _ = feed_db
    for i in range(5):
        append(db, log, f"n{i}", when=T0 + timedelta(days=i))
    seen = []
    active = iter([True] * 3 + [False])
    for item in log.watch(db.read, 2, None, lambda: next(active), poll_interval=0.01, heartbeat_interval=0):
        seen.append(item)
    assert [getattr(i, "resource_key", None) for i in seen[:3]] == ["n2", "n3", "n4"]
    assert isinstance(seen[3], Heartbeat) and seen[3].revision == 5

    with db.transaction() as session:
        assert log.prune(session, T0 + timedelta(days=2)) == 2
    with pytest.raises(FailedPrecondition) as err:
        next(log.watch(db.read, 1, None, lambda: True))
    assert err.value.reason == "REVISION_COMPACTED"
    with pytest.raises(FailedPrecondition) as err:
        next(log.watch(db.read, 99, None, lambda: True))
    assert err.value.reason == "REVISION_AHEAD"
    assert next(log.watch(db.read, 2, None, lambda: True)).resource_key == "n2"


def test_idempotency_returns_first_answer_and_refuses_reuse(feed_db):
    db, _, store = feed_db
    request = Timestamp(seconds=5)
    fp = fingerprint(request, exclude=())
    with db.transaction() as session:
        assert store.claim(session, tenant_id="acme", request_id="r1", method="M", request_fingerprint=fp,
                           now=T0) is None
        store.complete(session, tenant_id="acme", request_id="r1", response=Timestamp(seconds=42))
    with db.transaction() as session:
        stored = store.claim(session, tenant_id="acme", request_id="r1", method="M", request_fingerprint=fp, now=T0)
    assert Timestamp.FromString(stored).seconds == 42
    with db.transaction() as session, pytest.raises(FailedPrecondition, match="different request"):
        store.claim(session, tenant_id="acme", request_id="r1", method="M", request_fingerprint="other", now=T0)
    with db.transaction() as session:  # ids are per tenant
        assert store.claim(session, tenant_id="globex", request_id="r1", method="M", request_fingerprint=fp,
                           now=T0) is None


def test_claiming_many_ids_at_once_finds_what_claiming_each_would(feed_db):
    db, _, store = feed_db
    with db.transaction() as session:
        store.claim(session, tenant_id="acme", request_id="answered", method="M", request_fingerprint="f", now=T0)
        store.complete(session, tenant_id="acme", request_id="answered", response=Timestamp(seconds=42))
    with db.transaction() as session:
        found = store.claim_all(session, tenant_id="acme", method="M", now=T0, requests=[
            ("new", "f"), ("answered", "f"), ("also-new", "f"), ("new", "other"), ("answered-elsewise", "f")])
        claimed_before = store.claim_all(session, tenant_id="acme", method="M", now=T0,
                                         requests=[("answered", "f"), ("answered", "other")])
    # claimed now, for its first request: a later request with the same id finds that claim
    assert found["new", "f"] == found["new", "other"] == Claim()
    assert Timestamp.FromString(found["answered", "f"].result()).seconds == 42
    assert found["also-new", "f"].result() is None and found["answered-elsewise", "f"].result() is None
    # an id answered before is judged by each request's own fingerprint
    assert Timestamp.FromString(claimed_before["answered", "f"].result()).seconds == 42
    with pytest.raises(FailedPrecondition, match="different request"):
        claimed_before["answered", "other"].result()
    with db.transaction() as session:  # the ids claimed above are taken now, by a call still without an answer
        again = store.claim_all(session, tenant_id="acme", method="M", now=T0, requests=[("new", "f")])
        with pytest.raises(FailedPrecondition, match="still being processed"):
            again["new", "f"].result()
        store.release_all(session, "acme", ["new", "answered"])  # a failed call's claim goes; an answer stays
    with db.transaction() as session:
        found = store.claim_all(session, tenant_id="acme", method="M", now=T0, requests=[("new", "f"),
                                                                                          ("answered", "f")])
    assert found["new", "f"].result() is None
    assert Timestamp.FromString(found["answered", "f"].result()).seconds == 42


class FakeCall:
    """A Watch call: yields prepared items, then fails or blocks until cancelled."""

    def __init__(self, items, fail_with=None):
        self._items, self._fail_with = list(items), fail_with
        self.cancelled = threading.Event()

    def __iter__(self):
        yield from self._items
        if self._fail_with is not None:
            raise self._fail_with
        self.cancelled.wait(10)

    def cancel(self):
        self.cancelled.set()


def test_follower_applies_in_order_resumes_from_cursor_and_resyncs_from_a_snapshot():
    import grpc

    class Stale(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.FAILED_PRECONDITION

        def details(self):
            return "compacted"

    class Dropped(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAVAILABLE

    replica: list[int] = []
    cursor = {"value": 7}
    opened: list[tuple[int, bool]] = []
    # Items are revisions; 0 is a snapshot item, negative numbers are heartbeats at that revision.
    calls = iter([
        FakeCall([8, 9], fail_with=Dropped()),
        FakeCall([], fail_with=Stale()),
        FakeCall([0, 0, -20, 21]),
    ])

    def open_stream(after, snapshot):
        opened.append((after, snapshot))
        return next(calls)

    def apply(changes, revision, reset):
        if reset:
            replica.clear()
        replica.extend(changes)
        cursor["value"] = revision

    follower = FeedFollower("test", "upstream", open_stream=open_stream, load_cursor=lambda: cursor["value"],
                            apply=apply, revision_of=abs, is_heartbeat=lambda m: m < 0,
                            clock=FakeClock(), backoff_initial=0.01)
    follower.start()
    deadline = time.monotonic() + 10
    while cursor["value"] < 21 and time.monotonic() < deadline:
        time.sleep(0.01)
    follower.stop()
    assert opened == [(7, False), (9, False), (9, True)]
    assert replica == [0, 0, 21]  # the snapshot replaced what came before it
    assert cursor["value"] == 21
    assert follower.wait_until_current(0)
    assert follower.status().revision == 21


def test_watch_with_snapshot_sends_state_then_its_revision_then_changes(feed_db):
    from nhm_platform.feed import SnapshotItem

    db, log, _ = feed_db
    for i in range(3):
        append(db, log, f"n{i}")

    def snapshot(session):
        yield SnapshotItem("acme", "number", b"state-a")
        yield SnapshotItem("acme", "number", b"state-b")

    active = iter([True, True, False])
    items = list(log.watch(db.read, 0, None, lambda: next(active), snapshot=snapshot, snapshot_session=db.snapshot,
                           poll_interval=0.01, heartbeat_interval=0))
    assert [i.payload for i in items[:2]] == [b"state-a", b"state-b"]
    assert isinstance(items[2], Heartbeat) and items[2].revision == 3
