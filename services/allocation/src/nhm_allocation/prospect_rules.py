"""When a prospect may be called: the calling window in the prospect's local time and per-prospect limits.

Pure functions of the policy, the prospect's time zone, the time and the prospect's recent calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from nhm_allocation.enums import Restriction
from nhm_allocation.policy import CallingPolicy, TimeOfDay

DAY = timedelta(hours=24)
WEEK = timedelta(days=7)
# How far back the allocator looks for a prospect's calls.
LOOKBACK = WEEK


@dataclass(frozen=True)
class CallingRestriction:
    reason: Restriction
    # When calling the prospect becomes allowed again (inside the window and under the limits).
    allowed_time: datetime
    time_zone: str


def in_window(policy: CallingPolicy, local: datetime) -> bool:
    start, end = policy.window_start.minute_of_day, policy.window_end.minute_of_day
    minute = local.hour * 60 + local.minute
    if start == end:
        return True
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end  # a window across midnight, e.g. 22:00-02:00


def next_allowed(policy: CallingPolicy, zone: ZoneInfo, when: datetime) -> datetime:
    """`when` if it falls inside the calling window, else the next time the window opens."""
    local = when.astimezone(zone)
    if in_window(policy, local):
        return when
    opening = _at(local, policy.window_start, zone)
    if opening <= when:
        opening = _at(local + timedelta(days=1), policy.window_start, zone)
    return opening


def _at(local: datetime, time: TimeOfDay, zone: ZoneInfo) -> datetime:
    return datetime(local.year, local.month, local.day, time.hours, time.minutes, tzinfo=zone).astimezone(UTC)


def _limit_lifts(times: Sequence[datetime], since: datetime, limit: int, span: timedelta) -> datetime | None:
    """When enough of the calls in (since, now] age out to bring them under limit; None if already under."""
    if limit <= 0:
        return None
    window = sorted(t for t in times if t > since)
    if len(window) < limit:
        return None
    return window[len(window) - limit] + span


def restriction(policy: CallingPolicy, zone: ZoneInfo, zone_name: str, now: datetime,
                recent_calls: Sequence[datetime]) -> CallingRestriction | None:
    """None if the prospect may be called now; else the reason and when it becomes allowed.

    recent_calls: times of the prospect's calls (not released) in the last LOOKBACK.
    """
    lifts = [
        (lift, reason) for lift, reason in (
            (_limit_lifts(recent_calls, now - DAY, policy.max_per_prospect_day, DAY), Restriction.PROSPECT_DAILY_LIMIT),
            (_limit_lifts(recent_calls, now - WEEK, policy.max_per_prospect_week, WEEK),
             Restriction.PROSPECT_WEEKLY_LIMIT),
        ) if lift is not None
    ]
    if lifts:
        lift, reason = max(lifts, key=lambda item: item[0])
        return CallingRestriction(reason, next_allowed(policy, zone, lift), zone_name)
    allowed = next_allowed(policy, zone, now)
    if allowed != now:
        return CallingRestriction(Restriction.OUTSIDE_CALLING_WINDOW, allowed, zone_name)
    return None
