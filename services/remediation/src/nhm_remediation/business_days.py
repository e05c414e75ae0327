"""Deadlines in business days (Monday to Friday, counted in UTC; public holidays are not skipped)."""

from __future__ import annotations

from datetime import datetime, timedelta


def add_business_days(start: datetime, days: int) -> datetime:
    """The same time of day, ``days`` weekdays later. Starting on a weekend counts from the next Monday."""
    current = start
    while current.weekday() >= 5:
        current += timedelta(days=1)
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current
