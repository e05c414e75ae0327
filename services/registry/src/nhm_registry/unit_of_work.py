"""Transactions of the registry: a write is the change, its feed entries, its audit events and its request id,
committed together (a retry answered from the request id records nothing)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from nhm_platform.audit import Actor, AuditEntry, AuditLog, AuditSubject, FieldChange
from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.errors import Aborted
from nhm_platform.feed import ChangeLog
from nhm_platform.idempotency import IdempotencyStore
from nhm_registry.domain import ChangeKind, Resource
from nhm_registry.repository import Repository

# (kind, resource) -> the feed entry's tenant_id, kind, resource_type, resource_key and payload.
FeedEncoder = Callable[[ChangeKind, Resource], dict[str, Any]]
# resource -> how the audit trail names it and the fields it compares.
AuditDescriber = Callable[[Resource], AuditSubject]


@dataclass(frozen=True)
class Audited:
    """An audit event to write at commit: the resource after the action (as it was, for a deletion)."""

    action: str
    resource: Resource
    before: Resource | None
    reason: str
    changes: tuple[FieldChange, ...] | None


@dataclass(frozen=True)
class RequestKey:
    """An idempotent request: the client's request id, the method and a digest of the request."""

    request_id: str
    method: str
    fingerprint: str


class UnitOfWork:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.changes: list[tuple[ChangeKind, Resource]] = []
        # The stored answer when this request id was already served (nothing else happens then).
        self.replay: bytes | None = None
        self.remembered: Any = None
        self.after_commit: list[Callable[[], None]] = []
        self.audited: list[Audited] = []

    def audit(self, action: str, resource: Resource, *, before: Resource | None = None, reason: str = "",
              changes: Sequence[FieldChange] | None = None) -> None:
        """Record the action in the audit trail (see AuditSubject.entry for what it lists); pass a copy of the
        resource taken before it changed as ``before``."""
        self.audited.append(Audited(action, resource, before, reason,
                                    tuple(changes) if changes is not None else None))

    def publish(self, kind: ChangeKind, resources: Iterable[Resource]) -> None:
        self.changes.extend((kind, r) for r in resources)

    def remember(self, response: Any) -> None:
        """The answer a retry with the same request id gets (a protobuf message)."""
        self.remembered = response


class Transactions:
    def __init__(self, db: Database, feed: ChangeLog, idempotency: IdempotencyStore, audit: AuditLog, clock: Clock,
                 encode: FeedEncoder, describe: AuditDescriber) -> None:
        self.db, self._feed, self._idempotency, self._clock, self._encode = db, feed, idempotency, clock, encode
        self._audit, self._describe = audit, describe

    @contextlib.contextmanager
    def write(self, scope: str, key: RequestKey | None, actor: Actor) -> Iterator[UnitOfWork]:
        """A write transaction by actor; scope is the namespace of request ids (the caller's tenant)."""
        uow: UnitOfWork | None = None
        try:
            with self.db.transaction() as session:
                uow = UnitOfWork(Repository(session))
                if key is not None:
                    uow.replay = self._idempotency.claim(
                        session, tenant_id=scope, request_id=key.request_id, method=key.method,
                        request_fingerprint=key.fingerprint, now=self._clock.now())
                yield uow
                if uow.replay is not None:
                    return
                now = self._clock.now()
                if uow.changes:
                    self._feed.append_many(session, [{**self._encode(kind, r), "change_time": now}
                                                     for kind, r in uow.changes])
                self._audit.record(session, actor, [self._entry(a) for a in uow.audited], now)
                if key is not None:
                    assert uow.remembered is not None, "an idempotent write must remember its answer"
                    self._idempotency.complete(session, tenant_id=scope, request_id=key.request_id,
                                               response=uow.remembered)
        except IntegrityError as exc:  # a concurrent write took the same name or number first
            raise Aborted("a concurrent change conflicted with this one; retry", reason="CONFLICT") from exc
        for hook in uow.after_commit if uow is not None and uow.replay is None else ():
            hook()

    def _entry(self, audited: Audited) -> AuditEntry:
        before = self._describe(audited.before) if audited.before is not None else None
        return self._describe(audited.resource).entry(audited.action, before=before, reason=audited.reason,
                                                      changes=audited.changes)

    def refresh_statistics(self) -> None:
        with self.db.transaction() as session:
            Repository(session).refresh_statistics()

    @contextlib.contextmanager
    def read(self) -> Iterator[Repository]:
        with self.db.read() as session:
            yield Repository(session)
