"""A campaign's calling policy with every default the allocator applies (domain.md, registry issue).

The registry sends effective values; the allocator applies the same defaults again so that an unset field
never means "no limit" by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nhm_allocation.enums import Tier

# Seed: 100-150 calls per number per day; domain: safe 75-100/day.
DEFAULT_DAILY_CAP = 100
# Spikes above ~50/hour draw flags.
DEFAULT_HOURLY_CAP = 50
# Same area code -> same state/region -> same country -> any number of the campaign.
DEFAULT_TIERS = (Tier.AREA_CODE, Tier.REGION, Tier.COUNTRY, Tier.ANY)
DEFAULT_STICKY_TTL = timedelta(days=30)
# US rule: 8 am - 9 pm in the prospect's local time.
DEFAULT_WINDOW_START = (8, 0)
DEFAULT_WINDOW_END = (21, 0)
# Florida: at most 3 calls to one person per 24 h; collections: at most 7 in 7 days.
DEFAULT_MAX_PER_PROSPECT_DAY = 3
DEFAULT_MAX_PER_PROSPECT_WEEK = 7
DEFAULT_CAP_RESET_ZONE = "America/New_York"
# Warm-up: start low and step up, 20 -> 40 -> 60 -> 100 calls/day, one step every 3 days.
DEFAULT_WARMUP_CAPS = (20, 40, 60, 100)
DEFAULT_WARMUP_STEP = timedelta(days=3)


@dataclass(frozen=True)
class TimeOfDay:
    hours: int
    minutes: int

    @property
    def minute_of_day(self) -> int:
        return self.hours * 60 + self.minutes

    def __str__(self) -> str:
        return f"{self.hours:02d}:{self.minutes:02d}"


@dataclass(frozen=True)
class CallingPolicy:
    """Effective policy. A calling window whose start equals its end allows the whole day; a prospect limit
    of 0 turns that limit off; a daily or hourly cap of 0 lets no call through."""

    daily_cap: int = DEFAULT_DAILY_CAP
    hourly_cap: int = DEFAULT_HOURLY_CAP
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    allow_at_risk: bool = False
    sticky: bool = True
    sticky_ttl: timedelta = DEFAULT_STICKY_TTL
    window_start: TimeOfDay = TimeOfDay(*DEFAULT_WINDOW_START)
    window_end: TimeOfDay = TimeOfDay(*DEFAULT_WINDOW_END)
    max_per_prospect_day: int = DEFAULT_MAX_PER_PROSPECT_DAY
    max_per_prospect_week: int = DEFAULT_MAX_PER_PROSPECT_WEEK
    cap_reset_zone: str = DEFAULT_CAP_RESET_ZONE
    # Set when the campaign opted in to a fallback caller ID instead of failing closed.
    fallback_number: str = ""

    @property
    def reset_zone(self) -> ZoneInfo:
        return zone_or_default(self.cap_reset_zone)


def zone_or_default(name: str, default: str = DEFAULT_CAP_RESET_ZONE) -> ZoneInfo:
    """The named IANA zone; the default zone for an empty or unknown name."""
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


@dataclass(frozen=True)
class WarmupPlan:
    """A ramp of daily caps for a WARMING number: step i applies for `step`, then step i+1; after the last
    step the last cap applies until the registry moves the number to ACTIVE."""

    daily_caps: tuple[int, ...] = DEFAULT_WARMUP_CAPS
    step: timedelta = DEFAULT_WARMUP_STEP

    def cap_at(self, elapsed: timedelta) -> int:
        caps = self.daily_caps or DEFAULT_WARMUP_CAPS
        step_seconds = self.step.total_seconds() if self.step > timedelta(0) else DEFAULT_WARMUP_STEP.total_seconds()
        index = max(0, int(elapsed.total_seconds() // step_seconds))
        return caps[min(index, len(caps) - 1)]
