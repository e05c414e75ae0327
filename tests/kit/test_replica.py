"""Replicas of upstream data: cursors and API keys, applied with the cursor in one transaction."""

from __future__ import annotations

import threading

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import MetaData, select

from nhm.registry.v1 import registry_pb2
from nhm_platform.auth import Role, hash_key
from nhm_platform.clock import FakeClock
from nhm_platform.db import Database
from nhm_platform.replica import ApiKeyReplica, CursorStore, follow_feed


def credential(key_id: str, secret: str, *, revoked: bool = False, role=registry_pb2.API_KEY_ROLE_TENANT):
    key = registry_pb2.ApiKey(id=key_id, tenant_id="acme", name=f"key {key_id}", role=role)
    if revoked:
        key.revoke_time.CopyFrom(Timestamp(seconds=1))
    return registry_pb2.ApiKeyCredential(api_key=key, secret_sha256=hash_key(secret))


class Call:
    def __init__(self, items):
        self.items = items
        self.cancelled = threading.Event()

    def __iter__(self):
        yield from self.items
        self.cancelled.wait(10)

    def cancel(self):
        self.cancelled.set()


def test_keys_follow_the_feed_and_revocation_takes_effect(empty_database_url):
    metadata = MetaData()
    cursors, keys = CursorStore(metadata), ApiKeyReplica(metadata)
    db = Database(empty_database_url("replica"))
    metadata.create_all(db.engine)
    keys.bind(db)
    clock = FakeClock()
    changes = [
        registry_pb2.WatchChangesResponse(revision=1, api_key=credential("k1", "s1")),
        registry_pb2.WatchChangesResponse(revision=2, api_key=credential("k2", "s2",
                                                                         role=registry_pb2.API_KEY_ROLE_READ_ONLY)),
        registry_pb2.WatchChangesResponse(revision=3, api_key=credential("k1", "s1", revoked=True)),
        registry_pb2.WatchChangesResponse(revision=3, heartbeat=True),
    ]

    def apply_change(session, change):
        if change.HasField("api_key"):
            keys.apply(session, change.api_key)

    follower = follow_feed(service="test", upstream="registry", db=db, cursors=cursors, clock=clock,
                           open_stream=lambda after, snapshot: Call(changes[after:]), apply_change=apply_change,
                           reset=keys.clear)
    follower.start()
    assert follower.wait_until_current(10)
    follower.stop()
    assert keys.resolve(hash_key("s1")) is None  # revoked
    principal = keys.resolve(hash_key("s2"))
    assert principal is not None and principal.role is Role.READ_ONLY and principal.tenant_id == "acme"
    with db.read() as session:
        assert cursors.load(session, "registry") == 3
        assert sorted(session.execute(select(keys.table.c.key_id)).scalars()) == ["k1", "k2"]
    db.dispose()


def test_cursor_only_moves_forward_unless_a_snapshot_resets_it(empty_database_url):
    metadata = MetaData()
    cursors = CursorStore(metadata)
    db = Database(empty_database_url("cursor"))
    metadata.create_all(db.engine)
    clock = FakeClock()
    with db.transaction() as session:
        cursors.save(session, "registry", 10, clock)
        cursors.save(session, "registry", 7, clock)  # a slower replica of the same service
    with db.read() as session:
        assert cursors.load(session, "registry") == 10
    with db.transaction() as session:
        cursors.save(session, "registry", 4, clock, exact=True)  # the upstream was reset; a snapshot says 4
    with db.read() as session:
        assert cursors.load(session, "registry") == 4
    db.dispose()


def test_after_batch_runs_once_per_batch_in_the_same_transaction(empty_database_url):
    metadata = MetaData()
    cursors, keys = CursorStore(metadata), ApiKeyReplica(metadata)
    db = Database(empty_database_url("replica"))
    metadata.create_all(db.engine)
    keys.bind(db)
    changes = [registry_pb2.WatchChangesResponse(revision=i, api_key=credential(f"k{i}", f"s{i}")) for i in (1, 2, 3)]
    seen = []

    def apply_change(session, change):
        session.info.setdefault("touched", []).append(change.api_key.api_key.id)
        keys.apply(session, change.api_key)

    def after_batch(session):
        # Runs inside the batch's transaction: it sees the batch's changes, before the cursor is saved.
        seen.append((session.info.pop("touched"), cursors.load(session, "registry"),
                     sorted(session.execute(select(keys.table.c.key_id)).scalars())))

    follower = follow_feed(service="test", upstream="registry", db=db, cursors=cursors, clock=FakeClock(),
                           open_stream=lambda after, snapshot: Call(changes[after:]), apply_change=apply_change,
                           reset=keys.clear, after_batch=after_batch)
    follower.start()
    assert follower.wait_until_current(10)
    follower.stop()
    assert [ids for ids, _, _ in seen] in ([["k1", "k2", "k3"]], [["k1"], ["k2", "k3"]], [["k1", "k2"], ["k3"]],
                                           [["k1"], ["k2"], ["k3"]])
    assert all(cursor < 3 for _, cursor, _ in seen)
    assert seen[-1][2] == ["k1", "k2", "k3"]
    db.dispose()


def test_a_key_committed_while_the_cache_loads_is_not_lost(empty_database_url):
    """A load that read the keys before a commit invalidated the cache must not install that stale read."""
    import contextlib

    metadata = MetaData()
    keys = ApiKeyReplica(metadata)
    db = Database(empty_database_url("replica"))
    metadata.create_all(db.engine)
    with db.transaction() as session:
        keys.apply(session, credential("k1", "s1"))

    def commit_second_key():
        with db.transaction() as session:
            keys.apply(session, credential("k2", "s2"))

    class CommitDuringRead:
        """Commits a new key right after the cache's read finished, before the load installs its result."""

        def __init__(self):
            self.hook = commit_second_key

        @contextlib.contextmanager
        def read(self):
            with db.read() as session:
                yield session
            hook, self.hook = self.hook, None
            if hook is not None:
                hook()

    keys.bind(CommitDuringRead())
    assert keys.resolve(hash_key("s1")) is not None
    assert keys.resolve(hash_key("s2")) is not None  # the load raced with k2's commit; k2 is still found
    db.dispose()


def test_a_key_revoked_by_another_process_stops_here_within_the_cache_age(empty_database_url):
    """Replicas or workers of a service share its database: a revocation one of them applies invalidates only
    its own cache. The others read the keys again once their cache is max_age old."""
    metadata = MetaData()
    db = Database(empty_database_url("replica"))
    metadata.create_all(db.engine, tables=[ApiKeyReplica(metadata).table])
    other_process = ApiKeyReplica(MetaData()).bind(db)
    with db.transaction() as session:
        other_process.apply(session, credential("k1", "s1"))
    long_lived = ApiKeyReplica(MetaData()).bind(db, max_age=3600)
    short_lived = ApiKeyReplica(MetaData()).bind(db, max_age=0)
    assert long_lived.resolve(hash_key("s1")) is not None and short_lived.resolve(hash_key("s1")) is not None
    with db.transaction() as session:
        other_process.apply(session, credential("k1", "s1", revoked=True))
    assert other_process.resolve(hash_key("s1")) is None  # its own commit: at once
    assert short_lived.resolve(hash_key("s1")) is None  # another process's commit: once its cache is old
    assert long_lived.resolve(hash_key("s1")) is not None  # (why the age is bounded: 1 s by default)
    db.dispose()
