"""Usage periods: the day a daily cap counts (midnight to midnight in the campaign's reset time zone, 23 or 25
hours long across a daylight-saving change) and the clock hour an hourly cap counts (UTC hours).

A period is identified by the epoch second it starts at, so periods of different zones compare by time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


def day_start(now: datetime, zone: ZoneInfo) -> datetime:
    """The local midnight that started `now`'s day in `zone`, as an aware UTC time."""
    local = now.astimezone(zone)
    return datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)


def next_day_start(now: datetime, zone: ZoneInfo) -> datetime:
    local = now.astimezone(zone).date() + timedelta(days=1)
    return datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)


def hour_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def next_hour_start(now: datetime) -> datetime:
    return hour_start(now) + timedelta(hours=1)


def epoch(when: datetime) -> int:
    return int(when.timestamp())


def epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def from_epoch_ms(value: int) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value else None
