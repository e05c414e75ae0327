"""Following the registry's and scoring's change feeds into the eligibility replica, and how current it is.

Each upstream is followed with the service key, from the cursor stored with what was applied (a snapshot
when there is none). While an upstream is down the replica keeps serving what it last knew; staleness is the
time since the follower was last known current with its upstream (or, after a restart, since the stored
cursor was last written).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2
from sqlalchemy import select

from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from nhm_allocation.eligibility_replica import EligibilityReplica
from nhm_allocation.models import cursors
from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.feed import FeedFollower
from nhm_platform.metrics import FEED_LAG_SECONDS
from nhm_platform.protoconv import as_utc
from nhm_platform.replica import follow_feed, service_metadata, upstream_channel
from nhm_platform.settings import ServerSettings

_log = structlog.get_logger("nhm.allocation.replication")
UPSTREAMS = ("registry", "scoring")
# The gRPC health entry that says whether the eligibility replica is current (the service itself keeps serving
# from what it last knew either way).
HEALTH_ENTRY = "allocation.replication"


@dataclass(frozen=True)
class FeedState:
    upstream: str
    revision: int
    connected: bool
    last_sync_time: datetime | None
    staleness: timedelta | None


class Replication:
    def __init__(self, *, service: str, db: Database, clock: Clock, replica: EligibilityReplica,
                 registry_target: str, scoring_target: str, settings: ServerSettings) -> None:
        self._service, self._db, self._clock, self._settings = service, db, clock, settings
        service_key = settings.service_key
        self._channels: list[grpc.Channel] = []
        self._followers: dict[str, FeedFollower] = {}
        if (registry_target or scoring_target) and not service_key:
            _log.warning("replication.no_service_key", detail="set NHM_SERVICE_KEY to follow the upstream feeds")
        metadata = service_metadata(service_key)
        if registry_target and service_key:
            registry = registry_pb2_grpc.RegistryServiceStub(self._channel(registry_target))

            def open_registry(after: int, snapshot: bool) -> Any:
                return registry.WatchChanges(
                    registry_pb2.WatchChangesRequest(after_revision=after, snapshot=snapshot), metadata=metadata)

            self._followers["registry"] = follow_feed(
                service=service, upstream="registry", db=db, cursors=cursors, clock=clock,
                open_stream=open_registry, apply_change=replica.apply_registry, reset=replica.reset_registry,
                after_batch=replica.after_batch)
        if scoring_target and service_key:
            scoring = scoring_pb2_grpc.ScoringServiceStub(self._channel(scoring_target))

            def open_scoring(after: int, snapshot: bool) -> Any:
                return scoring.WatchHealth(
                    scoring_pb2.WatchHealthRequest(after_revision=after, snapshot=snapshot), metadata=metadata)

            self._followers["scoring"] = follow_feed(
                service=service, upstream="scoring", db=db, cursors=cursors, clock=clock,
                open_stream=open_scoring, apply_change=replica.apply_scoring, reset=replica.reset_scoring,
                after_batch=replica.after_batch)
        self._stored: dict[str, tuple[int, datetime | None]] = {}
        self._stop = threading.Event()
        self._reporter: threading.Thread | None = None

    def _channel(self, target: str) -> grpc.Channel:
        channel = upstream_channel(target, self._settings)
        self._channels.append(channel)
        return channel

    def start(self) -> None:
        self._stored = self._load_stored()
        for follower in self._followers.values():
            follower.start()

    def stop(self) -> None:
        self._stop.set()
        if self._reporter is not None:
            self._reporter.join(5)
        for follower in self._followers.values():
            follower.stop()
        for channel in self._channels:
            channel.close()

    def wait_until_current(self, timeout: float) -> bool:
        return all(f.wait_until_current(timeout) for f in self._followers.values())

    def _load_stored(self) -> dict[str, tuple[int, datetime | None]]:
        with self._db.read() as session:
            rows = session.execute(select(cursors.table)).all()
        return {r.upstream: (int(r.revision), as_utc(r.update_time)) for r in rows}

    def states(self) -> list[FeedState]:
        """Every upstream the replica depends on, followed or not."""
        stored = self._load_stored()
        now = self._clock.now()
        result = []
        for upstream in UPSTREAMS:
            revision, stored_time = stored.get(upstream, (0, None))
            follower = self._followers.get(upstream)
            connected = False
            last_sync = stored_time
            if follower is not None:
                status = follower.status()
                connected = status.connected
                revision = max(revision, status.revision)
                if status.last_sync_time is not None:
                    last_sync = status.last_sync_time
            staleness = max(now - last_sync, timedelta(0)) if last_sync is not None else None
            if staleness is not None:
                FEED_LAG_SECONDS.labels(self._service, upstream).set(staleness.total_seconds())
            result.append(FeedState(upstream, revision, connected, last_sync, staleness))
        return result

    def staleness(self) -> timedelta | None:
        """How old the eligibility data is: the worst of the followed upstreams (no database read)."""
        now = self._clock.now()
        worst: timedelta | None = None
        for upstream, follower in self._followers.items():
            last_sync = follower.status().last_sync_time or self._stored.get(upstream, (0, None))[1]
            if last_sync is None:
                continue
            age = max(now - last_sync, timedelta(0))
            worst = age if worst is None or age > worst else worst
        return worst

    def current(self, stale_after: timedelta) -> bool:
        """Whether every followed upstream was current within stale_after (unknown counts as stale)."""
        now = self._clock.now()
        for upstream, follower in self._followers.items():
            last_sync = follower.status().last_sync_time or self._stored.get(upstream, (0, None))[1]
            if last_sync is None or now - last_sync > stale_after:
                return False
        return True

    def publish_health(self, health_servicer: health.HealthServicer, *, stale_after: timedelta,
                       interval: float) -> None:
        """Keep the HEALTH_ENTRY health entry SERVING while the replica is current, NOT_SERVING when stale."""

        def report() -> None:
            while True:
                status = health_pb2.HealthCheckResponse
                health_servicer.set(HEALTH_ENTRY, status.SERVING if self.current(stale_after) else status.NOT_SERVING)
                if self._stop.wait(interval):
                    return

        self._reporter = threading.Thread(target=report, name="allocation-replication-health", daemon=True)
        self._reporter.start()
