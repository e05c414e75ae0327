"""What a number did, summed from its hourly and daily buckets over the policy's windows.

Buckets are keyed by UTC hour (seconds since the epoch // 3600) and UTC day (// 86400). Nothing here reads raw
call history: the repository loads the few daily bucket rows of the windows and the hour windows already added up
(:class:`HourlyActivity`), and :func:`summarize` adds them up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from nhm_scoring.policy import COMPLAINT_WINDOW_DAYS, ScoringPolicy

HOURS_PER_DAY = 24


def epoch_hour(when: datetime) -> int:
    return int(when.timestamp()) // 3600


def epoch_day(when: datetime) -> int:
    return int(when.timestamp()) // 86400


def day_start(day: int) -> datetime:
    return datetime.fromtimestamp(day * 86400, UTC)


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)


@dataclass(frozen=True)
class DailyCounts:
    """One number's UTC day."""

    day: int
    outbound: int = 0
    answered: int = 0
    inbound: int = 0
    talk_ms: int = 0
    blocked: int = 0
    complaints: int = 0
    max_prospect_calls: int = 0


@dataclass(frozen=True)
class HourlyActivity:
    """One number's hourly buckets over the hour windows, added up by the database (buckets.load_hours)."""

    busiest_outbound: int = 0  # the most outbound calls in one hour of the last 24
    sip608: int = 0  # SIP 608 rejections in the blocked-call window
    any_calls: bool = False  # an outbound call or a 608 in any hour of either window


@dataclass(frozen=True)
class Activity:
    """A number's behaviour as the factors need it (all zero for a number that has not called)."""

    today_outbound: int = 0
    yesterday_outbound: int = 0
    busiest_hour_outbound: int = 0
    window_outbound: int = 0
    window_answered: int = 0
    window_inbound: int = 0
    window_talk_ms: int = 0
    window_short: int = 0
    window_blocked: int = 0
    sip608_in_blocked_window: int = 0
    complaints: int = 0
    max_prospect_calls: int = 0
    # Anything at all in the longest window: while true, time alone can change the number's health.
    any_recent: bool = False


@dataclass(frozen=True)
class Windows:
    """The bucket ranges one scoring needs, from a time and a policy."""

    today: int
    answer_window_first_day: int
    first_day: int
    first_hour_24h: int
    first_hour_blocked: int
    first_hour: int

    @classmethod
    def at(cls, now: datetime, policy: ScoringPolicy) -> Windows:
        today, hour = epoch_day(now), epoch_hour(now)
        answer_first = today - policy.answer_rate_window_days + 1
        first_hour_24h = hour - HOURS_PER_DAY + 1
        first_hour_blocked = epoch_hour(now - policy.blocked_window) + 1
        return cls(
            today=today,
            answer_window_first_day=answer_first,
            first_day=min(answer_first, today - COMPLAINT_WINDOW_DAYS + 1, today - 1),
            first_hour_24h=first_hour_24h,
            first_hour_blocked=first_hour_blocked,
            first_hour=min(first_hour_24h, first_hour_blocked),
        )


def summarize(windows: Windows, days: Iterable[DailyCounts], hours: HourlyActivity, short_calls: int) -> Activity:
    """Add up one number's buckets; short_calls is already limited to the answer-rate window."""
    today = yesterday = outbound = answered = inbound = talk = blocked = complaints = prospect = 0
    any_recent = short_calls > 0
    for d in days:
        if d.day > windows.today or d.day < windows.first_day:
            continue
        any_recent = any_recent or bool(d.outbound or d.inbound or d.complaints)
        complaints += d.complaints
        if d.day == windows.today:
            today = d.outbound
        if d.day == windows.today - 1:
            yesterday = d.outbound
        if d.day >= windows.today - 1:
            prospect = max(prospect, d.max_prospect_calls)
        if d.day >= windows.answer_window_first_day:
            outbound += d.outbound
            answered += d.answered
            inbound += d.inbound
            talk += d.talk_ms
            blocked += d.blocked
    return Activity(
        today_outbound=today, yesterday_outbound=yesterday, busiest_hour_outbound=hours.busiest_outbound,
        window_outbound=outbound, window_answered=answered, window_inbound=inbound, window_talk_ms=talk,
        window_short=short_calls, window_blocked=blocked, sip608_in_blocked_window=hours.sip608,
        complaints=complaints, max_prospect_calls=prospect, any_recent=any_recent or hours.any_calls,
    )
