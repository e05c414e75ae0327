"""The WatchHealth feed: every health change after a revision, then live ones; or a snapshot first."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sqlalchemy.orm import Session

from nhm.scoring.v1 import scoring_pb2
from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.feed import Heartbeat, SnapshotItem
from nhm_platform.protoconv import to_timestamp
from nhm_scoring import health_store
from nhm_scoring.health_store import CHANGE_CREATED, RESOURCE_TYPE
from nhm_scoring.messages import as_read
from nhm_scoring.models import feed


class HealthFeed:
    def __init__(self, db: Database, clock: Clock, *, poll_interval: float, heartbeat_interval: float) -> None:
        self._db, self._clock = db, clock
        self._poll, self._heartbeat = poll_interval, heartbeat_interval

    def watch(self, tenant_id: str | None, after: int, snapshot: bool,
              is_active: Callable[[], bool]) -> Iterator[scoring_pb2.WatchHealthResponse]:
        """tenant_id None: every tenant (service keys)."""

        def current(session: Session) -> Iterator[SnapshotItem]:
            for tenant, payload, update_time in health_store.snapshot(session, tenant_id):
                yield SnapshotItem(tenant, RESOURCE_TYPE, (payload, update_time))

        items = feed.watch(self._db.read, after, tenant_id, is_active, poll_interval=self._poll,
                           heartbeat_interval=self._heartbeat, snapshot=current if snapshot else None,
                           snapshot_session=self._db.snapshot)
        for item in items:
            if isinstance(item, Heartbeat):
                yield scoring_pb2.WatchHealthResponse(revision=item.revision, heartbeat=True)
            elif isinstance(item, SnapshotItem):
                payload, update_time = item.payload
                yield scoring_pb2.WatchHealthResponse(
                    revision=0, kind=CHANGE_CREATED, change_time=to_timestamp(update_time),
                    health=as_read(payload, update_time, self._clock.now()))
            else:
                message = scoring_pb2.WatchHealthResponse.FromString(item.payload)
                message.revision = item.revision
                message.kind = item.kind  # type: ignore[assignment]
                message.change_time.CopyFrom(to_timestamp(item.change_time))
                yield message
