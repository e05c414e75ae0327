"""Recompute numbers' health and record what changed: the health row, a history entry on a status change, and a
feed entry, all in the caller's transaction.

Inputs are read for a whole set of numbers at once (a few queries per 500 numbers), from the buckets, never
from raw history. A health that comes out the same as stored writes nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy.orm import Session

from nhm.scoring.v1 import scoring_pb2
from nhm_platform.protoconv import to_duration, to_timestamp
from nhm_scoring import buckets, health_store, label_store, messages, number_replica, policy_store
from nhm_scoring.activity import HourlyActivity, Windows, summarize
from nhm_scoring.assessment import Assessment, assess
from nhm_scoring.folding import carrier_flags
from nhm_scoring.health_store import CHANGE_CREATED, CHANGE_UPDATED, HealthRow, HealthWrites
from nhm_scoring.number_replica import NumberFacts
from nhm_scoring.policy import ScoringPolicy
from nhm_scoring.reputation import HealthStatus

NO_HOURS = HourlyActivity()


def rescore(session: Session, tenant_id: str, phones: Collection[str], now: datetime,
            policy: ScoringPolicy | None = None) -> int:
    """Rescore the tenant's numbers among phones; returns how many changed."""
    if not phones:
        return 0
    policy = policy or policy_store.load(session, tenant_id)
    facts = number_replica.load(session, tenant_id, phones)
    if not facts:
        return 0
    known = sorted(facts)
    # Lock first: a concurrent rescoring of the same numbers waits, then reads what this one wrote.
    current = health_store.load(session, tenant_id, known, lock=True)
    windows = Windows.at(now, policy)
    days = buckets.load_days(session, tenant_id, known, windows.first_day, windows.today)
    hours = buckets.load_hours(session, tenant_id, known, windows)
    short = buckets.load_short_calls(session, tenant_id, known, windows.answer_window_first_day, windows.today,
                                     policy.short_call_seconds)
    labels = label_store.load(session, tenant_id, known)
    campaigns = number_replica.campaigns(session, tenant_id, known)
    writes = HealthWrites()
    changed = 0
    for phone in known:
        activity = summarize(windows, days.get(phone, ()), hours.get(phone, NO_HOURS), short.get(phone, 0))
        assessment = assess(activity, facts[phone].traits, labels.get(phone, ()), policy, now)
        changed += record(writes, tenant_id, facts[phone], campaigns.get(phone, []), assessment, current.get(phone),
                          now)
    writes.flush(session)
    return changed


def record(writes: HealthWrites, tenant_id: str, facts: NumberFacts, campaign_ids: list[str],
           assessment: Assessment, previous: HealthRow | None, now: datetime) -> int:
    """Gather the writes of an assessment if it differs from the previous one; 1 if it did."""
    status_changed = previous is None or previous.status is not assessment.status
    status_time = now if status_changed or previous is None else previous.status_time
    message = messages.number_health(tenant_id, facts.phone_number, facts.area_code, campaign_ids, assessment,
                                     status_time)
    payload = messages.serialize(message)
    if previous is not None and payload == previous.payload:
        if previous.time_sensitive != assessment.time_sensitive:
            writes.time_sensitive(tenant_id, facts.phone_number, assessment.time_sensitive)
        return 0
    writes.health(tenant_id, message, payload=payload, carrier_flags=carrier_flags(assessment.carrier_status),
                  time_sensitive=assessment.time_sensitive, status_time=status_time, now=now,
                  previous_status=int(previous.status) if previous is not None else None)
    message.update_time.CopyFrom(to_timestamp(now))
    message.status_duration.CopyFrom(to_duration(now - status_time))
    change = scoring_pb2.WatchHealthResponse(health=message)
    if status_changed:
        from_status = previous.status if previous is not None else HealthStatus.UNSPECIFIED
        cause = assessment.cause if previous is not None else f"first scored: {assessment.cause}"
        transition = messages.transition(facts.phone_number, from_status, assessment.status, assessment.score, cause,
                                         assessment.cause_factors, assessment.cause_sources, now)
        writes.transition(tenant_id, transition, now)
        change.transition.CopyFrom(transition)
    writes.change(tenant_id, facts.phone_number, CHANGE_CREATED if previous is None else CHANGE_UPDATED, change, now)
    return 1
