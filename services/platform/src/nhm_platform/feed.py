"""Change feeds: the owner's side (an ordered, retained log written with each change) and the follower's side.

Owner: every change and its feed entry are written in one transaction. Revisions come from one counter row
updated inside that transaction, so a later revision can never commit before an earlier one (the row lock
orders them): a reader that resumes after revision N never skips an entry that committed late. A resume from
a revision older than the retained log fails with FAILED_PRECONDITION (REVISION_COMPACTED): list afresh.

Follower: a background thread that opens the owner's Watch stream after its stored cursor, applies changes in
batches (the consumer stores the cursor in the same transaction as what it applied), reconnects with jittered
backoff, and reports how current it is.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import grpc
import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    bindparam,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from nhm_platform.clock import Clock
from nhm_platform.errors import FailedPrecondition
from nhm_platform.metrics import FEED_LAG_SECONDS, FEED_REVISION
from nhm_platform.protoconv import as_utc
from nhm_platform.statements import Compiled

_log = structlog.get_logger("nhm.feed")


@dataclass(frozen=True)
class ChangeRecord:
    revision: int
    tenant_id: str
    kind: int
    resource_type: str
    resource_key: str
    payload: bytes
    change_time: datetime


@dataclass(frozen=True)
class Heartbeat:
    revision: int


@dataclass(frozen=True)
class SnapshotItem:
    """One resource of a snapshot (sent with revision 0), as the servicer's snapshot function yields it."""

    tenant_id: str
    resource_type: str
    payload: Any


class ChangeLog:
    """The owner's feed, in two tables: ``<name>_changes`` and a one-row ``<name>_head`` counter."""

    def __init__(self, metadata: MetaData, name: str = "feed") -> None:
        self.changes = Table(
            f"{name}_changes",
            metadata,
            Column("revision", BigInteger, primary_key=True, autoincrement=False),
            Column("tenant_id", String(64), nullable=False),
            Column("kind", SmallInteger, nullable=False),
            Column("resource_type", String(32), nullable=False),
            Column("resource_key", String(128), nullable=False),
            Column("payload", LargeBinary, nullable=False),
            Column("change_time", DateTime(timezone=True), nullable=False),
        )
        self.head = Table(
            f"{name}_head",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=False),
            Column("revision", BigInteger, nullable=False),
            # Entries up to this revision have been pruned; resuming at or before it is refused.
            Column("compacted_through", BigInteger, nullable=False),
        )
        self._insert_many = Compiled(insert(self.changes).values(
            {c.name: bindparam(c.name) for c in self.changes.columns}))
        self._changed = threading.Condition()
        self._generation = 0

    def seed_rows(self) -> list[dict[str, int]]:
        """The head row a migration must insert."""
        return [{"id": 1, "revision": 0, "compacted_through": 0}]

    def append(self, session: Session, *, tenant_id: str, kind: int, resource_type: str, resource_key: str,
               payload: bytes, change_time: datetime) -> int:
        revision = session.execute(
            update(self.head).where(self.head.c.id == 1)
            .values(revision=self.head.c.revision + 1).returning(self.head.c.revision)
        ).scalar_one()
        session.execute(insert(self.changes).values(
            revision=revision, tenant_id=tenant_id, kind=kind, resource_type=resource_type,
            resource_key=resource_key, payload=payload, change_time=change_time))
        self._notify_after_commit(session)
        return int(revision)

    def append_many(self, session: Session, entries: Sequence[dict[str, Any]]) -> list[int]:
        """Append several entries (each a dict of append's keyword arguments) with one counter update;
        returns their revisions, in order."""
        if not entries:
            return []
        last = int(session.execute(
            update(self.head).where(self.head.c.id == 1)
            .values(revision=self.head.c.revision + len(entries)).returning(self.head.c.revision)
        ).scalar_one())
        revisions = list(range(last - len(entries) + 1, last + 1))
        self._insert_many.execute_many(session, [{**entry, "revision": revision}
                                                 for entry, revision in zip(entries, revisions, strict=True)])
        self._notify_after_commit(session)
        return revisions

    def _notify_after_commit(self, session: Session) -> None:
        if not session.info.get("nhm_feed_notify"):
            session.info["nhm_feed_notify"] = True
            event.listen(session, "after_commit", self._after_commit, once=True)

    def _after_commit(self, session: Session) -> None:
        session.info.pop("nhm_feed_notify", None)
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def head_revision(self, session: Session) -> tuple[int, int]:
        row = session.execute(select(self.head.c.revision, self.head.c.compacted_through)
                              .where(self.head.c.id == 1)).one()
        return int(row.revision), int(row.compacted_through)

    def read(self, session: Session, after: int, tenant_id: str | None, limit: int) -> list[ChangeRecord]:
        query = select(self.changes).where(self.changes.c.revision > after)
        if tenant_id:
            query = query.where(self.changes.c.tenant_id == tenant_id)
        rows = session.execute(query.order_by(self.changes.c.revision).limit(limit)).all()
        return [ChangeRecord(int(r.revision), r.tenant_id, r.kind, r.resource_type, r.resource_key,
                             bytes(r.payload), as_utc(r.change_time)) for r in rows]

    def prune(self, session: Session, older_than: datetime) -> int:
        """Drop entries older than a time (keeping the newest); returns how many were dropped."""
        newest = session.execute(select(func.max(self.changes.c.revision))).scalar()
        last = session.execute(
            select(func.max(self.changes.c.revision))
            .where(self.changes.c.change_time < older_than, self.changes.c.revision < (newest or 0))
        ).scalar()
        if last is None:
            return 0
        dropped = session.execute(delete(self.changes).where(self.changes.c.revision <= last)).rowcount
        session.execute(update(self.head).where(self.head.c.id == 1).values(
            compacted_through=func.max(self.head.c.compacted_through, last)
            if session.bind and session.bind.dialect.name == "sqlite"
            else func.greatest(self.head.c.compacted_through, last)))
        return int(dropped or 0)

    def wait_for_change(self, generation: int, timeout: float) -> int:
        """Block until a change commits in this process (or timeout); returns the new generation."""
        with self._changed:
            if self._generation == generation:
                self._changed.wait(timeout)
            return self._generation

    @property
    def generation(self) -> int:
        return self._generation

    def watch(self, read_session: Callable[[], Any], after: int, tenant_id: str | None,
              is_active: Callable[[], bool], *, poll_interval: float = 0.5, heartbeat_interval: float = 5.0,
              batch: int = 500, snapshot: Callable[[Session], Iterator[SnapshotItem]] | None = None,
              snapshot_session: Callable[[], Any] | None = None,
              ) -> Iterator[ChangeRecord | Heartbeat | SnapshotItem]:
        """Entries after a revision, then live ones, with heartbeats when idle, until is_active() is false.

        With ``snapshot``, first every current resource (read in one consistent ``snapshot_session``), then a
        heartbeat at the snapshot's revision, then changes after it; ``after`` is ignored.
        Changes committed by other processes (replicas) are seen within poll_interval; this process's own
        commits wake the watcher at once.
        """
        if snapshot is not None:
            with (snapshot_session or read_session)() as session:
                head, _ = self.head_revision(session)
                yield from snapshot(session)
            yield Heartbeat(head)
            yield from self._follow(read_session, head, tenant_id, is_active, poll_interval=poll_interval,
                                    heartbeat_interval=heartbeat_interval, batch=batch)
            return
        with read_session() as session:
            head, compacted = self.head_revision(session)
        if after < compacted:
            raise _compacted(after, compacted, head)
        if after > head:
            raise FailedPrecondition(
                f"revision {after} is ahead of the feed's head {head}: this feed was reset; list afresh",
                reason="REVISION_AHEAD", metadata={"head": str(head)})
        yield from self._follow(read_session, after, tenant_id, is_active, poll_interval=poll_interval,
                                heartbeat_interval=heartbeat_interval, batch=batch)

    def _follow(self, read_session: Callable[[], Any], cursor: int, tenant_id: str | None,
                is_active: Callable[[], bool], *, poll_interval: float, heartbeat_interval: float,
                batch: int) -> Iterator[ChangeRecord | Heartbeat]:
        idle_since = 0.0
        while is_active():
            generation = self.generation
            with read_session() as session:
                # Head first: under READ COMMITTED each statement sees a newer snapshot, so a head read after an
                # empty read could name a revision the read never saw, and the heartbeat would skip it. Every
                # revision up to a head read earlier has committed, so the read that follows sees them all.
                head, _ = self.head_revision(session)
                records = self.read(session, cursor, tenant_id, batch)
                # Compaction read after the entries: a prune that committed before the entry read (and may have
                # removed entries right after the cursor) is seen here, so a watcher catching up never skips.
                _, compacted = self.head_revision(session)
            if cursor < compacted:
                raise _compacted(cursor, compacted, head)
            if records:
                yield from records
                cursor = records[-1].revision
                idle_since = 0.0
                continue
            now = time.monotonic()
            if not idle_since or now - idle_since >= heartbeat_interval:
                yield Heartbeat(max(head, cursor))
                idle_since = now
            self.wait_for_change(generation, poll_interval)


def _compacted(after: int, compacted: int, head: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"revision {after} is older than the feed's retention (entries through {compacted} were pruned);"
        " list afresh and watch from the revision the list returned",
        reason="REVISION_COMPACTED", metadata={"compacted_through": str(compacted), "head": str(head)})


class SnapshotSuperseded(Exception):
    """Raised by a follower's apply when another replica of the service stored a cursor at or past the
    snapshot's revision since this follower connected: the stored state is newer, so the snapshot is dropped
    and the follower resumes from the stored cursor."""


@dataclass(frozen=True)
class FollowerStatus:
    upstream: str
    revision: int
    connected: bool
    last_sync_time: datetime | None
    staleness: timedelta | None


class FeedFollower:
    """Follows one upstream feed in a background thread.

    open_stream(after, snapshot) returns the Watch call (an iterator of responses that has cancel()).
    apply(changes, revision, reset) applies the non-heartbeat responses of a batch and stores ``revision`` as
    the cursor, in one transaction; with reset the batch is a whole snapshot (every item, ``revision`` the one
    of the heartbeat that ended it) and it first empties the replica. It may raise SnapshotSuperseded.
    load_cursor() returns the stored revision. The follower asks for a snapshot when it has no cursor yet
    and when the upstream says the cursor is beyond its retention (FAILED_PRECONDITION).
    """

    def __init__(self, service: str, upstream: str, *, open_stream: Callable[[int, bool], Any],
                 load_cursor: Callable[[], int], apply: Callable[[Sequence[Any], int, bool], None],
                 revision_of: Callable[[Any], int], is_heartbeat: Callable[[Any], bool], clock: Clock,
                 backoff_initial: float = 0.1, backoff_max: float = 5.0, batch_max: int = 500) -> None:
        self._service, self._upstream = service, upstream
        self._open_stream, self._load_cursor, self._apply = open_stream, load_cursor, apply
        self._revision_of, self._is_heartbeat = revision_of, is_heartbeat
        self._snapshot_next = False
        self._clock = clock
        self._backoff_initial, self._backoff_max, self._batch_max = backoff_initial, backoff_max, batch_max
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._call: Any = None
        self._lock = threading.Lock()
        self._revision = 0
        self._connected = False
        self._last_sync: datetime | None = None
        self._caught_up = threading.Event()
        # Its own generator: the process-wide one is the application's (and its tests') to seed, and a background
        # thread drawing from it changes what they draw.
        self._jitter = random.Random()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"feed-{self._upstream}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_until_current(self, timeout: float) -> bool:
        """True once the follower has been current with its upstream at least once."""
        return self._caught_up.wait(timeout)

    def status(self) -> FollowerStatus:
        with self._lock:
            staleness = None if self._last_sync is None else max(self._clock.now() - self._last_sync, timedelta(0))
            return FollowerStatus(self._upstream, self._revision, self._connected, self._last_sync, staleness)

    def _mark_current(self, revision: int | None = None) -> None:
        with self._lock:
            if revision is not None:
                self._revision = max(self._revision, revision)
            self._last_sync = self._clock.now()
        FEED_REVISION.labels(self._service, self._upstream).set(self._revision)
        FEED_LAG_SECONDS.labels(self._service, self._upstream).set(0)
        self._caught_up.set()

    def _run(self) -> None:
        delay = self._backoff_initial
        while not self._stop.is_set():
            try:
                self._follow_once()
                delay = self._backoff_initial
            except SnapshotSuperseded as exc:
                _log.info("feed.snapshot_superseded", upstream=self._upstream, detail=str(exc))
                continue
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                if code is grpc.StatusCode.FAILED_PRECONDITION:
                    _log.warning("feed.resync", upstream=self._upstream, detail=exc.details())
                    self._snapshot_next = True
                    continue
                if code is not grpc.StatusCode.CANCELLED or not self._stop.is_set():
                    _log.info("feed.disconnected", upstream=self._upstream, code=getattr(code, "name", None))
            except Exception:  # noqa: BLE001 - a follower never dies; it logs and retries
                _log.exception("feed.error", upstream=self._upstream)
            with self._lock:
                self._connected = False
            status = self.status()
            if status.staleness is not None:
                FEED_LAG_SECONDS.labels(self._service, self._upstream).set(status.staleness.total_seconds())
            self._stop.wait(self._jitter.uniform(0, delay))  # full jitter
            delay = min(delay * 2, self._backoff_max)

    def _follow_once(self) -> None:
        cursor = self._load_cursor()
        snapshot = self._snapshot_next or cursor == 0
        self._snapshot_next = False
        with self._lock:
            self._revision = cursor
        call = self._open_stream(cursor, snapshot)
        self._call = call
        inbox: queue.Queue[Any] = queue.Queue(maxsize=self._batch_max * 4)
        done = object()
        failure: list[BaseException] = []

        def pump() -> None:
            try:
                for item in call:
                    inbox.put(item)
            except BaseException as exc:  # noqa: BLE001 - handed to the applying thread
                failure.append(exc)
            finally:
                inbox.put(done)

        reader = threading.Thread(target=pump, name=f"feed-{self._upstream}-reader", daemon=True)
        reader.start()
        try:
            unapplied: list[Any] = []
            if snapshot:
                ended = self._apply_snapshot(inbox, done)
                if ended is done:
                    return self._raise_failure(failure)
                unapplied = ended or []
            reset = bool(unapplied)
            while True:
                if unapplied:
                    batch, unapplied = unapplied, []
                else:
                    item = inbox.get()
                    if item is done:
                        break
                    batch = [item]
                with self._lock:
                    self._connected = True
                while len(batch) < self._batch_max:
                    try:
                        more = inbox.get_nowait()
                    except queue.Empty:
                        break
                    if more is done:
                        inbox.put(done)
                        break
                    batch.append(more)
                changes = [m for m in batch if not self._is_heartbeat(m)]
                last = self._revision_of(batch[-1])
                if changes or reset or last > self._revision:
                    self._apply(changes, last, reset)
                    reset = False
                self._advance(last, current=inbox.empty())
        finally:
            call.cancel()
            self._call = None
        self._raise_failure(failure)

    def _apply_snapshot(self, inbox: queue.Queue[Any], done: object) -> Any:
        """Apply a whole snapshot (its items, revision 0, up to the heartbeat that ends it) in one call, so the
        replica is never seen half replaced, and a replica of the same service applying live changes meanwhile
        never has them undone by a snapshot split across transactions.

        Returns ``done`` if the stream ended before the snapshot did, None once applied; an upstream that
        follows its items with a change rather than a heartbeat gets them back with that change, unapplied (the
        first batch then starts the snapshot)."""
        items: list[Any] = []
        while True:
            item = inbox.get()
            if item is done:
                return done
            if self._is_heartbeat(item):
                break
            items.append(item)
            if self._revision_of(item) > 0:
                return items
        revision = self._revision_of(item)
        self._apply(items, revision, True)
        with self._lock:
            self._connected = True
            self._revision = revision  # a snapshot may move the cursor back (the upstream was reset)
        self._advance(revision, current=inbox.empty())
        return None

    def _advance(self, revision: int, *, current: bool) -> None:
        if current:
            self._mark_current(revision)
        else:
            with self._lock:
                self._revision = max(self._revision, revision)

    @staticmethod
    def _raise_failure(failure: list[BaseException]) -> None:
        if failure:
            raise failure[0]
