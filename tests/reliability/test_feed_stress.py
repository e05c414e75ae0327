"""A change feed under writers with random transaction lengths while its follower is dropped again and again.

Writers own resources and bump each one's sequence number, the change and its feed entry in one transaction that
stays open for a random time; a pruner keeps only a short retention; the follower (the kit's follow_feed, as every
service uses it) is cut off at evenly spaced points of the run, and every fifth time held away for longer than
the retention, so that its cursor is pruned and it must be refused (REVISION_COMPACTED) and list afresh.

Figures: changes lost (a gap in a resource's sequence, or a final state that differs), duplicated (a sequence
number applied twice), out of order, and resyncs. CI: 1,000 changes and 5 drops per backend;
NHM_RELIABILITY_SCALE=10 (`make reliability`): 10,000 changes and 50 drops.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from invariants.load import SCALE
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, delete, insert, select

from nhm_platform.clock import FakeClock
from nhm_platform.db import Database
from nhm_platform.errors import FailedPrecondition
from nhm_platform.feed import ChangeLog, Heartbeat, SnapshotItem
from nhm_platform.replica import CursorStore, follow_feed, upsert

# The long version outlasts the suite's 300 s timeout.
pytestmark = pytest.mark.timeout(300 * max(1, SCALE))
CHANGES = 1_000 * SCALE
DROPS = 5 * SCALE
WRITERS = 4
RESOURCES_PER_WRITER = 25
RETENTION = timedelta(seconds=0.4)


@dataclass(frozen=True)
class Message:
    revision: int
    key: str = ""
    seq: int = 0
    heartbeat: bool = False


class Refused(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, detail: str) -> None:
        self._code, self._detail = code, detail

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._detail


class Upstream:
    """The owner: resources (key, seq) and their feed, in one database."""

    def __init__(self, url: str) -> None:
        metadata = MetaData()
        self.log = ChangeLog(metadata, "stress_feed")
        self.items = Table("stress_items", metadata, Column("key", String(32), primary_key=True),
                           Column("seq", Integer, nullable=False))
        self.db = Database(url, timeout=30)
        metadata.create_all(self.db.engine)
        with self.db.transaction() as session:
            session.execute(insert(self.log.head), self.log.seed_rows())
        self.written = 0
        self._count = threading.Lock()

    def writer(self, index: int, seed: int) -> None:
        rng = random.Random(seed)
        seqs = {f"w{index}-r{j}": 0 for j in range(RESOURCES_PER_WRITER)}
        while True:
            length = rng.randint(1, 8)
            with self._count:
                if self.written >= CHANGES:
                    return
                length = min(length, CHANGES - self.written)
                self.written += length
            with self.db.transaction() as session:
                for _ in range(length):
                    key = rng.choice(list(seqs))
                    seqs[key] += 1
                    upsert(session, self.items, {"key": key, "seq": seqs[key]}, ["key"])
                    self.log.append(session, tenant_id="acme", kind=1, resource_type="item", resource_key=key,
                                    payload=str(seqs[key]).encode(), change_time=datetime.now(UTC))
                    time.sleep(rng.uniform(0, 0.002))  # the transaction stays open a random time

    def prune(self) -> None:
        with self.db.transaction() as session:
            self.log.prune(session, datetime.now(UTC) - RETENTION)

    def state(self) -> dict[str, int]:
        with self.db.read() as session:
            return {key: seq for key, seq in session.execute(select(self.items.c.key, self.items.c.seq))}

    def head(self) -> int:
        with self.db.read() as session:
            return self.log.head_revision(session)[0]

    def open_stream(self, after: int, snapshot: bool) -> Stream:
        return Stream(self, after, snapshot)


class Stream:
    """A Watch call over the upstream's ChangeLog, as a servicer streams it; cancel() drops it."""

    def __init__(self, upstream: Upstream, after: int, snapshot: bool) -> None:
        self._upstream, self._after, self._snapshot = upstream, after, snapshot
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def __iter__(self):
        upstream = self._upstream

        def items(session):
            for key, seq in session.execute(select(upstream.items.c.key, upstream.items.c.seq)):
                yield SnapshotItem("acme", "item", (key, seq))

        watch = upstream.log.watch(upstream.db.read, self._after, None, lambda: not self._cancelled.is_set(),
                                   poll_interval=0.01, heartbeat_interval=0.2, batch=random.choice([7, 50, 500]),
                                   snapshot=items if self._snapshot else None, snapshot_session=upstream.db.snapshot)
        try:
            for item in watch:
                if self._cancelled.is_set():
                    raise Refused(grpc.StatusCode.CANCELLED, "dropped")
                if isinstance(item, Heartbeat):
                    yield Message(item.revision, heartbeat=True)
                elif isinstance(item, SnapshotItem):
                    yield Message(0, *item.payload)
                else:
                    yield Message(item.revision, item.resource_key, int(item.payload))
        except FailedPrecondition as exc:
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None


class Follower:
    """The consumer: a replica, every change it applied in order, and its cursor, in its own database."""

    def __init__(self, url: str, upstream: Upstream) -> None:
        metadata = MetaData()
        self.cursors = CursorStore(metadata)
        self.replica = Table("replica_items", metadata, Column("key", String(32), primary_key=True),
                             Column("seq", Integer, nullable=False))
        self.applied = Table("applied_changes", metadata, Column("id", Integer, primary_key=True),
                             Column("key", String(32), nullable=False), Column("seq", Integer, nullable=False),
                             Column("from_snapshot", Boolean, nullable=False))
        self.db = Database(url, timeout=30)
        metadata.create_all(self.db.engine)
        self.upstream = upstream
        self.calls: list[tuple[Stream, bool]] = []
        self.hold = threading.Event()  # set: the next connection waits longer than the retention first
        self.follower = follow_feed(service="stress", upstream="upstream", db=self.db, cursors=self.cursors,
                                    clock=FakeClock(), open_stream=self._open, apply_change=self._apply,
                                    reset=lambda session: session.execute(delete(self.replica)),
                                    backoff_initial=0.005, backoff_max=0.05)

    def _open(self, after: int, snapshot: bool) -> Stream:
        if self.hold.is_set():
            time.sleep(RETENTION.total_seconds() * 3)
            self.hold.clear()
        stream = self.upstream.open_stream(after, snapshot)
        self.calls.append((stream, snapshot))
        return stream

    def _apply(self, session, message: Message) -> None:
        upsert(session, self.replica, {"key": message.key, "seq": message.seq}, ["key"])
        session.execute(insert(self.applied).values(key=message.key, seq=message.seq,
                                                    from_snapshot=message.revision == 0))

    def drop(self, hold: bool) -> None:
        if hold:
            self.hold.set()
        if self.calls:
            self.calls[-1][0].cancel()

    def cursor(self) -> int:
        with self.db.read() as session:
            return self.cursors.load(session, "upstream")

    def listed(self) -> bool:
        """Whether the first list (the snapshot every follower starts with) has been applied."""
        with self.db.read() as session:
            return session.execute(select(self.cursors.table.c.revision).where(
                self.cursors.table.c.upstream == "upstream")).first() is not None

    def state(self) -> dict[str, int]:
        with self.db.read() as session:
            return {key: seq for key, seq in session.execute(select(self.replica.c.key, self.replica.c.seq))}

    def history(self) -> list[tuple[str, int, bool]]:
        with self.db.read() as session:
            return [tuple(row) for row in session.execute(  # type: ignore[misc]
                select(self.applied.c.key, self.applied.c.seq, self.applied.c.from_snapshot)
                .order_by(self.applied.c.id))]


def audit(history: list[tuple[str, int, bool]], final: dict[str, int], truth: dict[str, int]) -> dict[str, int]:
    """Per resource, in the order applied: a live change must be the next sequence number after what the
    replica held (lower: duplicated or out of order; higher: a change was lost); a snapshot item may jump ahead
    but never back."""
    last: dict[str, int] = defaultdict(int)
    figures = {"lost": 0, "duplicated": 0, "out_of_order": 0}
    seen: set[tuple[str, int]] = set()
    for key, seq, from_snapshot in history:
        if from_snapshot:
            if seq < last[key]:
                figures["out_of_order"] += 1
        else:
            if (key, seq) in seen:
                figures["duplicated"] += 1
            elif seq < last[key]:
                figures["out_of_order"] += 1
            elif seq > last[key] + 1:
                figures["lost"] += seq - last[key] - 1
            seen.add((key, seq))
        last[key] = seq
    figures["lost"] += sum(1 for key, seq in truth.items() if final.get(key) != seq)
    return figures


def test_no_change_is_lost_duplicated_or_reordered_while_the_follower_is_dropped(empty_database_url, backend):
    upstream = Upstream(empty_database_url("stress_upstream"))
    follower = Follower(empty_database_url("stress_follower"), upstream)
    started = time.monotonic()
    follower.follower.start()
    # Drops start once the follower has listed: a drop held while it was still starting would delay its first
    # list, which is a snapshot anyway, and the resync path would go unexercised.
    deadline = time.monotonic() + 30
    while not follower.listed():
        assert time.monotonic() < deadline, "the follower never applied its first list"
        time.sleep(0.01)
    writers = [threading.Thread(target=upstream.writer, args=(i, 1000 + i)) for i in range(WRITERS)]
    for thread in writers:
        thread.start()
    drops = 0
    while any(t.is_alive() for t in writers):
        if drops < DROPS and upstream.written >= (drops + 1) * CHANGES // (DROPS + 1):
            drops += 1
            follower.drop(hold=drops % 5 == 1)
        upstream.prune()
        time.sleep(0.005)
    for thread in writers:
        thread.join()
    head = upstream.head()
    deadline = time.monotonic() + 60
    while follower.cursor() < head:
        assert time.monotonic() < deadline, f"follower stuck at {follower.cursor()} of {head}"
        upstream.prune()
        time.sleep(0.02)
    follower.follower.stop()
    elapsed = time.monotonic() - started

    figures = audit(follower.history(), follower.state(), upstream.state())
    resyncs = sum(1 for _, snapshot in follower.calls[1:] if snapshot)
    print(f"\nfeed stress [{backend}]: {head} changes by {WRITERS} writers in {elapsed:.1f} s, follower dropped "
          f"{drops} times ({(drops + 4) // 5} held beyond retention), {resyncs} resyncs; lost {figures['lost']}, "
          f"duplicated {figures['duplicated']}, out of order {figures['out_of_order']}")
    assert head == CHANGES
    assert drops == DROPS
    assert figures == {"lost": 0, "duplicated": 0, "out_of_order": 0}
    assert resyncs >= 1, "no drop outlasted the retention: the resync path was not exercised"
    upstream.db.dispose()
    follower.db.dispose()


def test_the_audit_catches_a_lost_a_duplicated_and_a_reordered_change():
    """The checks above can fail: each kind of fault, planted in a history, is counted."""
    truth = {"a": 3, "b": 2}
    assert audit([("a", 1, False), ("a", 2, False), ("a", 3, False), ("b", 1, False), ("b", 2, False)],
                 truth, truth) == {"lost": 0, "duplicated": 0, "out_of_order": 0}
    assert audit([("a", 1, False), ("a", 3, False), ("b", 1, True), ("b", 2, False)], truth, truth)["lost"] == 1
    assert audit([("a", 1, False), ("a", 2, False), ("a", 2, False), ("a", 3, False)], {"a": 3}, {"a": 3}) == {
        "lost": 0, "duplicated": 1, "out_of_order": 0}
    assert audit([("a", 2, True), ("a", 1, True)], {"a": 1}, {"a": 2}) == {"lost": 1, "duplicated": 0,
                                                                          "out_of_order": 1}
    assert audit([("a", 1, False), ("a", 3, True), ("a", 2, False)], {"a": 2}, {"a": 3})["out_of_order"] == 1
