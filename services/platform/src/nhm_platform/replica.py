"""What a service keeps of its upstreams: feed cursors, replicated API keys, and the follower wiring.

A consumer applies a batch of feed changes and stores the cursor in the same transaction, so a restart or
a dropped stream resumes exactly where it stopped. API keys created through the registry reach every
service through the registry's feed; :class:`ApiKeyReplica` stores them and authenticates with them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import BigInteger, Boolean, Column, DateTime, MetaData, String, Table, delete, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from nhm.registry.v1 import registry_pb2
from nhm_platform.auth import CALLER_METADATA_KEY, TENANT_METADATA_KEY, Principal, Role
from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.feed import FeedFollower, SnapshotSuperseded
from nhm_platform.row_scope import platform_rows
from nhm_platform.settings import ServerSettings


def upsert(session: Session, table: Table, values: dict[str, Any], keys: Sequence[str]) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE, on SQLite and PostgreSQL."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).values(**values)
    updates = {k: statement.excluded[k] for k in values if k not in keys}
    if updates:
        session.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=updates))
    else:
        session.execute(statement.on_conflict_do_nothing(index_elements=list(keys)))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CursorStore:
    """The last revision applied from each upstream feed."""

    def __init__(self, metadata: MetaData) -> None:
        self.table = Table(
            "feed_cursors",
            metadata,
            Column("upstream", String(32), primary_key=True),
            Column("revision", BigInteger, nullable=False),
            Column("update_time", DateTime(timezone=True), nullable=False),
        )

    def load(self, session: Session, upstream: str) -> int:
        value = session.execute(select(self.table.c.revision).where(self.table.c.upstream == upstream)).scalar()
        return int(value or 0)

    def lock(self, session: Session, upstream: str) -> int:
        """The stored revision, with the row locked until the transaction ends (replicas of one service that
        share the database apply one batch at a time; SQLite's single writer already serializes them)."""
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(insert(self.table).values(upstream=upstream, revision=0, update_time=_EPOCH)
                        .on_conflict_do_nothing(index_elements=["upstream"]))
        value = session.execute(select(self.table.c.revision).where(self.table.c.upstream == upstream)
                                .with_for_update()).scalar_one()
        return int(value)

    def save(self, session: Session, upstream: str, revision: int, clock: Clock, *, exact: bool = False) -> None:
        """Store the cursor. It only moves forward (replicas of one service may apply the same changes),
        unless exact: a snapshot replaces the replica and may move it anywhere."""
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(self.table).values(upstream=upstream, revision=revision, update_time=clock.now())
        new_revision = statement.excluded.revision
        if not exact:
            greatest = func.max if dialect == "sqlite" else func.greatest
            new_revision = greatest(self.table.c.revision, statement.excluded.revision)
        changes = {"revision": new_revision, "update_time": statement.excluded.update_time}
        session.execute(statement.on_conflict_do_update(index_elements=["upstream"], set_=changes))


_ROLES = {
    registry_pb2.API_KEY_ROLE_TENANT: Role.TENANT,
    registry_pb2.API_KEY_ROLE_READ_ONLY: Role.READ_ONLY,
}


class ApiKeyReplica:
    """API keys replicated from the registry's feed; a KeyResolver for the service that keeps them."""

    def __init__(self, metadata: MetaData) -> None:
        self.table = Table(
            "api_key_replica",
            metadata,
            Column("key_id", String(64), primary_key=True),
            Column("tenant_id", String(64), nullable=False),
            Column("name", String(200), nullable=False),
            Column("role", String(16), nullable=False),
            Column("secret_sha256", String(64), nullable=False, unique=True),
            Column("revoked", Boolean, nullable=False),
        )
        self._db: Database | None = None
        self._cache: dict[str, Principal] | None = None
        self._loaded_at = 0.0
        self._max_age = 1.0
        # Bumped by every invalidation: a load that read the table before a commit invalidated the cache must
        # not install what it read (the keys that commit added would stay unknown until the next change).
        self._generation = 0
        self._lock = threading.Lock()

    def bind(self, db: Database, *, max_age: float = 1.0) -> ApiKeyReplica:
        """Resolve against db, reading the keys again at least every max_age seconds: this process's own
        commits invalidate its cache at once, but another process of the service applying from the shared
        cursor (replicas, workers) does not, and a revoked key must stop there too."""
        self._db, self._max_age = db, max_age
        return self

    def apply(self, session: Session, credential: registry_pb2.ApiKeyCredential) -> None:
        key = credential.api_key
        role = _ROLES.get(key.role)
        revoked = key.HasField("revoke_time") or role is None
        upsert(session, self.table, {
            "key_id": key.id, "tenant_id": key.tenant_id, "name": key.name,
            "role": (role or Role.READ_ONLY).value, "secret_sha256": credential.secret_sha256, "revoked": revoked,
        }, ["key_id"])
        self._invalidate_after_commit(session)

    def clear(self, session: Session) -> None:
        """Forget every key (before a relist)."""
        session.execute(delete(self.table))
        self._invalidate_after_commit(session)

    def _invalidate_after_commit(self, session: Session) -> None:
        def invalidate(_session: Session) -> None:
            with self._lock:
                self._cache = None
                self._generation += 1

        event.listen(session, "after_commit", invalidate, once=True)

    def resolve(self, secret_sha256: str) -> Principal | None:
        with self._lock:
            cache = self._cache
            if cache is not None and time.monotonic() - self._loaded_at > self._max_age:
                cache = self._cache = None
        if cache is None:
            cache = self._load()
        return cache.get(secret_sha256)

    def _load(self) -> dict[str, Principal]:
        assert self._db is not None, "ApiKeyReplica.bind(db) first"
        with self._lock:
            generation = self._generation
        loaded_at = time.monotonic()
        with self._db.read() as session:
            rows = session.execute(select(self.table).where(self.table.c.revoked.is_(False))).all()
        cache = {r.secret_sha256: Principal(Role(r.role), r.tenant_id, key_id=r.key_id, name=r.name) for r in rows}
        with self._lock:
            if self._generation == generation:
                self._cache, self._loaded_at = cache, loaded_at
        return cache


def service_metadata(service_key: str, tenant_id: str = "", caller: str = "") -> tuple[tuple[str, str], ...]:
    """Call metadata for service-to-service calls; with tenant_id, the call acts for that tenant; caller names
    the calling service (the callee's audit trail shows "service:<caller>")."""
    metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {service_key}"),)
    if tenant_id:
        metadata += ((TENANT_METADATA_KEY, tenant_id),)
    if caller:
        metadata += ((CALLER_METADATA_KEY, caller),)
    return metadata


def follow_feed(*, service: str, upstream: str, db: Database, cursors: CursorStore, clock: Clock,
                open_stream: Callable[[int, bool], Any], apply_change: Callable[[Session, Any], None],
                reset: Callable[[Session], None],
                is_heartbeat: Callable[[Any], bool] = lambda m: bool(m.heartbeat),
                after_batch: Callable[[Session], None] | None = None, backoff_initial: float = 0.1,
                backoff_max: float = 5.0) -> FeedFollower:
    """A FeedFollower whose batches are applied, with the cursor, in one transaction of db.

    open_stream(after, snapshot) opens the upstream's Watch call; apply_change(session, response) applies one
    change (snapshot items arrive as CREATED changes with revision 0); reset(session) empties the replica
    before a snapshot is applied. after_batch(session), if given, runs once the batch's changes are applied, in
    the same transaction: for work cheaper once per batch than once per change (recomputing what they touched).
    """

    loaded = [0]  # the cursor the follower connected with

    # A follower applies every tenant's changes: the platform's rows (row_scope.py).
    def load_cursor() -> int:
        with platform_rows(), db.read() as session:
            loaded[0] = cursors.load(session, upstream)
        return loaded[0]

    def apply(changes: Sequence[Any], revision: int, starts_snapshot: bool) -> None:
        with platform_rows(), db.transaction() as session:
            stored = cursors.lock(session, upstream)
            if starts_snapshot:
                if stored != loaded[0] and stored >= revision:
                    # Another replica moved past this snapshot while it streamed: replacing what it applied
                    # with older state would undo its changes (and a cursor saved later would skip them).
                    raise SnapshotSuperseded(f"stored cursor {stored} is at or past the snapshot's {revision}")
                reset(session)
            for change in changes:
                apply_change(session, change)
            if after_batch is not None:
                after_batch(session)
            cursors.save(session, upstream, revision, clock, exact=starts_snapshot)

    return FeedFollower(service, upstream, open_stream=open_stream, load_cursor=load_cursor, apply=apply,
                        revision_of=lambda m: int(m.revision), is_heartbeat=is_heartbeat, clock=clock,
                        backoff_initial=backoff_initial, backoff_max=backoff_max)


def upstream_channel(target: str, settings: ServerSettings) -> grpc.Channel:
    """A channel to another service: TLS (mutual with a client certificate) when settings name a CA."""
    options = [("grpc.keepalive_time_ms", 30_000), ("grpc.max_receive_message_length", settings.max_message_bytes)]
    if not settings.upstream_ca_file:
        return grpc.insecure_channel(target, options=options)
    cert = Path(settings.upstream_cert_file).read_bytes() if settings.upstream_cert_file else None
    key = Path(settings.upstream_key_file).read_bytes() if settings.upstream_key_file else None
    credentials = grpc.ssl_channel_credentials(Path(settings.upstream_ca_file).read_bytes(), key, cert)
    return grpc.secure_channel(target, credentials, options=options)

