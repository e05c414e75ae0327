"""A number's usage against the caps that apply to it today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from nhm_allocation.eligibility import Candidate, Usage, daily_cap
from nhm_allocation.periods import day_start, epoch, from_epoch_ms, hour_start
from nhm_allocation.policy import CallingPolicy


@dataclass(frozen=True)
class UsageReport:
    phone_number: str
    calls_today: int
    # The warm-up step's cap for WARMING numbers.
    daily_cap: int
    calls_this_hour: int
    hourly_cap: int
    last_allocate_time: datetime | None


def usage_report(candidate: Candidate, policy: CallingPolicy, now: datetime, usage: Usage | None = None) -> UsageReport:
    usage = usage or candidate.usage
    cap, _ = daily_cap(candidate, policy, now)
    return UsageReport(
        phone_number=candidate.phone_number,
        calls_today=usage.used_today(epoch(day_start(now, policy.reset_zone))),
        daily_cap=cap,
        calls_this_hour=usage.used_this_hour(epoch(hour_start(now))),
        hourly_cap=policy.hourly_cap,
        last_allocate_time=from_epoch_ms(usage.last_ms),
    )
