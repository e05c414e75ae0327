"""Transactions of the registry: a write is the change, its feed entries and its request id, committed together."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.errors import Aborted
from nhm_platform.feed import ChangeLog
from nhm_platform.idempotency import IdempotencyStore
from nhm_registry.domain import ChangeKind, Resource
from nhm_registry.repository import Repository

# (kind, resource) -> the feed entry's tenant_id, kind, resource_type, resource_key and payload.
FeedEncoder = Callable[[ChangeKind, Resource], dict[str, Any]]


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

    def publish(self, kind: ChangeKind, resources: Iterable[Resource]) -> None:
        self.changes.extend((kind, r) for r in resources)

    def remember(self, response: Any) -> None:
        """The answer a retry with the same request id gets (a protobuf message)."""
        self.remembered = response


class Transactions:
    def __init__(self, db: Database, feed: ChangeLog, idempotency: IdempotencyStore, clock: Clock,
                 encode: FeedEncoder) -> None:
        self.db, self._feed, self._idempotency, self._clock, self._encode = db, feed, idempotency, clock, encode

    @contextlib.contextmanager
    def write(self, scope: str, key: RequestKey | None) -> Iterator[UnitOfWork]:
        """A write transaction; scope is the namespace of request ids (the caller's tenant)."""
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
                if uow.changes:
                    now = self._clock.now()
                    self._feed.append_many(session, [{**self._encode(kind, r), "change_time": now}
                                                     for kind, r in uow.changes])
                if key is not None:
                    assert uow.remembered is not None, "an idempotent write must remember its answer"
                    self._idempotency.complete(session, tenant_id=scope, request_id=key.request_id,
                                               response=uow.remembered)
        except IntegrityError as exc:  # a concurrent write took the same name or number first
            raise Aborted("a concurrent change conflicted with this one; retry", reason="CONFLICT") from exc
        for hook in uow.after_commit if uow is not None and uow.replay is None else ():
            hook()

    def refresh_statistics(self) -> None:
        with self.db.transaction() as session:
            Repository(session).refresh_statistics()

    @contextlib.contextmanager
    def read(self) -> Iterator[Repository]:
        with self.db.read() as session:
            yield Repository(session)
