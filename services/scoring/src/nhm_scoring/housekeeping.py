"""The periodic pass: rescore numbers whose health time alone can change, and prune what no window needs.

A number is time-sensitive while it has activity in the longest window or a label that has not expired:
its windows slide and its labels age even when no event arrives. Numbers with neither are not touched.
Time comes from the injected clock; the pass runs every rescore_interval seconds of real time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import delete

from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.periodic import Periodic
from nhm_platform.row_scope import platform_rows
from nhm_scoring import buckets, health_store, number_replica, policy_store, raw_events
from nhm_scoring.activity import epoch_day, epoch_hour
from nhm_scoring.models import feed, idempotency
from nhm_scoring.rescoring import rescore
from nhm_scoring.settings import ScoringSettings

_log = structlog.get_logger("nhm.scoring.housekeeping")
# Numbers rescored per transaction, so a long pass never holds the database for long.
CHUNK = 500
# Prospect counters serve "today or yesterday".
PROSPECT_DAYS = 3


@dataclass(frozen=True)
class PassResult:
    rescored: int = 0
    changed: int = 0
    pruned: int = 0


class Housekeeper:
    def __init__(self, db: Database, clock: Clock, settings: ScoringSettings) -> None:
        self._db, self._clock, self._settings = db, clock, settings
        self._periodic = Periodic("scoring-housekeeping", settings.rescore_interval, self._run_and_log)

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def _run_and_log(self) -> None:
        result = self.run_once()
        if result.changed or result.pruned:
            _log.info("scoring.pass", rescored=result.rescored, changed=result.changed, pruned=result.pruned)

    def run_once(self) -> PassResult:
        with platform_rows():  # every tenant's time-sensitive numbers and old rows
            return self._pass()

    def _pass(self) -> PassResult:
        rescored = changed = 0
        with self._db.read() as session:
            tenants = health_store.tenants_with_time_sensitive(session)
        for tenant in tenants:
            with self._db.read() as session:
                phones = health_store.time_sensitive_phones(session, tenant)
            count, moved = self._rescore(tenant, phones)
            rescored, changed = rescored + count, changed + moved
        return PassResult(rescored, changed, self.prune())

    def rescore_tenant(self, tenant_id: str) -> int:
        """Rescore every number of a tenant (after its policy changed); returns how many were rescored."""
        with self._db.read() as session:
            phones = number_replica.all_phones(session, tenant_id)
        return self._rescore(tenant_id, phones)[0]

    def _rescore(self, tenant_id: str, phones: Sequence[str]) -> tuple[int, int]:
        changed = 0
        for i in range(0, len(phones), CHUNK):
            if self._periodic.stopping:
                break
            with self._db.transaction() as session:
                policy = policy_store.load(session, tenant_id)
                changed += rescore(session, tenant_id, phones[i:i + CHUNK], self._clock.now(), policy)
        return len(phones), changed

    def prune(self) -> int:
        now, s = self._clock.now(), self._settings
        with self._db.transaction() as session:
            pruned = buckets.prune(session, before_hour=epoch_hour(now - timedelta(days=s.hourly_retention_days)),
                                   before_day=epoch_day(now - timedelta(days=s.daily_retention_days)),
                                   prospects_before_day=epoch_day(now) - PROSPECT_DAYS)
            pruned += raw_events.prune(session, now - timedelta(days=s.event_retention_days))
            pruned += feed.prune(session, now - timedelta(days=s.health_feed_retention_days))
            pruned += session.execute(delete(idempotency.table).where(
                idempotency.table.c.create_time < now - timedelta(days=s.request_id_retention_days))).rowcount or 0
        return int(pruned)
