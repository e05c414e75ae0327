"""The weekly report: where a tenant's numbers stand against a week ago, why, and what flagged numbers cost.

Statuses at a time come from the status history (each number's last transition at or before it); call figures
from the hourly buckets of the 7 days (to the hour), which also count the calls placed while a number was
Flagged or Blocked — overall and per carrier — as it stood when the calls were reported.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_scoring import buckets, health_store
from nhm_scoring.health_store import HistoryRow
from nhm_scoring.policy import FactorKind
from nhm_scoring.reputation import CARRIERS, Carrier, HealthStatus, Source

PERIOD = timedelta(days=7)
TOP_CAUSES = 10

# The seed's causes, as the dashboard names them.
CAUSE_NAMES = {
    FactorKind.DAILY_VOLUME: "High call volume from one number (per day)",
    FactorKind.HOURLY_VOLUME: "High call volume from one number (per hour)",
    FactorKind.ANSWER_RATE: "Low answer rate",
    FactorKind.SHORT_CALLS: "Short call duration",
    FactorKind.AVERAGE_TALK_TIME: "Short average talk time",
    FactorKind.COMPLAINTS: "Consumer complaints",
    FactorKind.INBOUND_USAGE: "No inbound usage",
    FactorKind.BLOCKED_CALLS: "Calls blocked (SIP 603/607/608)",
    FactorKind.ATTESTATION: "STIR/SHAKEN attestation B or C",
    FactorKind.REPEAT_DIALING: "Repeat dialling of one prospect",
}


@dataclass(frozen=True)
class Change:
    phone_number: str
    from_status: HealthStatus
    now: HistoryRow


@dataclass(frozen=True)
class Cause:
    factor: FactorKind | None
    source: Source | None
    description: str
    numbers: int


@dataclass(frozen=True)
class CarrierShare:
    carrier: Carrier
    calls: int
    calls_from_flagged: int

    @property
    def share(self) -> float:
        return self.calls_from_flagged / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class WeeklyReport:
    tenant_id: str
    period_start: datetime
    period_end: datetime
    counts_now: dict[HealthStatus, int]
    counts_week_ago: dict[HealthStatus, int]
    changed: list[Change]
    newly_at_risk: list[str]
    top_causes: list[Cause]
    flagged_call_share: list[CarrierShare]
    answer_rate_flagged: float
    answer_rate_clean: float
    outbound_calls: int


def _all_statuses(counts: Mapping[HealthStatus, int]) -> dict[HealthStatus, int]:
    return {status: counts.get(status, 0) for status in HealthStatus if status is not HealthStatus.UNSPECIFIED}


def _ceil_hour(when: datetime) -> int:
    return math.ceil(when.timestamp() / 3600)


class WeeklyReports:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db, self._clock = db, clock

    def build(self, tenant_id: str, period_end: datetime | None) -> WeeklyReport:
        end = period_end or self._clock.now()
        start = end - PERIOD
        with self._db.snapshot() as session:
            counts_now = health_store.counts_at(session, tenant_id, end)
            counts_then = health_store.counts_at(session, tenant_id, start)
            # Only numbers that were not Healthy at one end of the week can have changed or be a cause.
            bad_now = health_store.unhealthy_at(session, tenant_id, end)
            bad_then = health_store.unhealthy_at(session, tenant_id, start)
            now_rows = {**health_store.last_at(session, tenant_id, end, bad_then.keys() - bad_now.keys()), **bad_now}
            then_rows = {**health_store.last_at(session, tenant_id, start, bad_now.keys() - bad_then.keys()),
                         **bad_then}
            totals = buckets.period_totals(session, tenant_id, _ceil_hour(start), _ceil_hour(end))
        changed = []
        for phone, row in sorted(now_rows.items()):
            before = then_rows.get(phone)
            if before is None and row.to_status is HealthStatus.HEALTHY:
                continue  # new this week and healthy: nothing to report
            from_status = before.to_status if before is not None else HealthStatus.UNSPECIFIED
            if from_status is not row.to_status:
                changed.append(Change(phone, from_status, row))
        changed.sort(key=lambda c: (-int(c.now.to_status), c.phone_number))
        newly_at_risk = sorted(phone for phone, row in bad_now.items() if row.to_status is HealthStatus.AT_RISK
                               and phone in then_rows and then_rows[phone].to_status is HealthStatus.HEALTHY)
        shares = [CarrierShare(c, totals.outbound, getattr(totals, f"flagged_{c.name.lower()}")) for c in CARRIERS]
        clean_outbound = totals.outbound - totals.flagged_outbound
        return WeeklyReport(
            tenant_id=tenant_id, period_start=start, period_end=end,
            counts_now=_all_statuses(counts_now), counts_week_ago=_all_statuses(counts_then),
            changed=changed, newly_at_risk=newly_at_risk, top_causes=_top_causes(bad_now),
            flagged_call_share=shares,
            answer_rate_flagged=totals.flagged_answered / totals.flagged_outbound if totals.flagged_outbound else 0.0,
            answer_rate_clean=(totals.answered - totals.flagged_answered) / clean_outbound if clean_outbound else 0.0,
            outbound_calls=totals.outbound,
        )


def _top_causes(rows: Mapping[str, HistoryRow]) -> list[Cause]:
    """What put the numbers that are not Healthy where they are: factors and labelling sources, by numbers."""
    factors: Counter[FactorKind] = Counter()
    sources: Counter[Source] = Counter()
    for row in rows.values():
        if row.to_status is HealthStatus.HEALTHY:
            continue
        factors.update(FactorKind(f) for f in set(row.factors))
        sources.update(Source(s) for s in set(row.sources))
    causes = [Cause(kind, None, CAUSE_NAMES[kind], n) for kind, n in factors.items()]
    causes += [Cause(None, source, f"Labelled by {source.display}", n) for source, n in sources.items()]
    causes.sort(key=lambda c: (-c.numbers, c.description))
    return causes[:TOP_CAUSES]
