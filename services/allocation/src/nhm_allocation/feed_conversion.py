"""Upstream messages (registry numbers and campaign policies, scoring health) as allocator domain values."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from nhm.registry.v1 import registry_pb2
from nhm.scoring.v1 import scoring_pb2
from nhm_allocation.enums import Tier
from nhm_allocation.health_view import HealthView, health_view
from nhm_allocation.policy import (
    DEFAULT_WARMUP_CAPS,
    DEFAULT_WARMUP_STEP,
    CallingPolicy,
    TimeOfDay,
    zone_or_default,
)
from nhm_platform.protoconv import from_duration, optional_timestamp

_FALLBACK_NUMBER = registry_pb2.FALLBACK_BEHAVIOR_FALLBACK_NUMBER


def _time_of_day(message: Any, default: TimeOfDay) -> TimeOfDay:
    hours, minutes = message.hours, message.minutes
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        return default
    return TimeOfDay(hours, minutes)


def policy_from_proto(policy: registry_pb2.CallingPolicy) -> CallingPolicy:
    """The effective policy: every unset field takes its documented default."""
    defaults = CallingPolicy()
    tiers = tuple(Tier(t) for t in policy.local_presence.tiers
                  if t in Tier._value2member_map_ and t not in (Tier.UNSPECIFIED, Tier.FALLBACK))
    zone = policy.cap_reset_time_zone if policy.HasField("cap_reset_time_zone") else defaults.cap_reset_zone
    return CallingPolicy(
        daily_cap=policy.daily_cap_per_number if policy.HasField("daily_cap_per_number") else defaults.daily_cap,
        hourly_cap=policy.hourly_cap_per_number if policy.HasField("hourly_cap_per_number") else defaults.hourly_cap,
        tiers=tuple(dict.fromkeys(tiers)) or defaults.tiers,
        allow_at_risk=policy.allow_at_risk if policy.HasField("allow_at_risk") else defaults.allow_at_risk,
        sticky=policy.sticky_caller_id if policy.HasField("sticky_caller_id") else defaults.sticky,
        sticky_ttl=from_duration(policy.sticky_ttl) if policy.HasField("sticky_ttl") else defaults.sticky_ttl,
        window_start=(_time_of_day(policy.calling_window_start, defaults.window_start)
                      if policy.HasField("calling_window_start") else defaults.window_start),
        window_end=(_time_of_day(policy.calling_window_end, defaults.window_end)
                    if policy.HasField("calling_window_end") else defaults.window_end),
        max_per_prospect_day=(policy.max_calls_per_prospect_per_day
                              if policy.HasField("max_calls_per_prospect_per_day") else defaults.max_per_prospect_day),
        max_per_prospect_week=(policy.max_calls_per_prospect_per_week if policy.HasField(
            "max_calls_per_prospect_per_week") else defaults.max_per_prospect_week),
        cap_reset_zone=zone_or_default(zone).key,
        fallback_number=(policy.fallback_phone_number
                         if policy.fallback_behavior == _FALLBACK_NUMBER and policy.fallback_phone_number else ""),
    )


@functools.lru_cache(maxsize=1024)
def policy_from_bytes(raw: bytes) -> CallingPolicy:
    """The effective policy of a stored (serialized) CallingPolicy; remembered, as campaigns rarely change."""
    return policy_from_proto(registry_pb2.CallingPolicy.FromString(raw))


def number_values(number: registry_pb2.Number, tenant_id: str, now: datetime) -> dict[str, Any]:
    """A registry Number as a row of the numbers replica table."""
    plan = number.warmup_plan
    caps = [c for c in plan.daily_caps if c > 0] or list(DEFAULT_WARMUP_CAPS)
    step = from_duration(plan.step_duration) if plan.HasField("step_duration") else DEFAULT_WARMUP_STEP
    if step.total_seconds() <= 0:
        step = DEFAULT_WARMUP_STEP
    return {
        "tenant_id": tenant_id,
        "phone_number": number.phone_number,
        "country": number.country[:3],
        "area_code": number.area_code[:8],
        "exchange": number.exchange[:8],
        "region": number.region[:64],
        "time_zone": number.time_zone[:64],
        "display_name": number.display_name[:64],
        "state": int(number.state),
        "rest_until": optional_timestamp(number, "rest_until"),
        "warmup_caps": ",".join(str(c) for c in caps)[:200],
        "warmup_step_seconds": int(step.total_seconds()),
        "warmup_start_time": optional_timestamp(number, "warmup_start_time"),
        "update_time": now,
    }


def health_from_proto(health: scoring_pb2.NumberHealth) -> HealthView:
    return health_view(
        int(health.status),
        dict(health.carrier_status),
        [(int(s.source), int(s.status)) for s in health.sources],
        any(f.triggered for f in health.factors),
    )
