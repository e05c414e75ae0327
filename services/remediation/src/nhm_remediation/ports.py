"""What remediation needs from other services, as small interfaces; ``upstream.py`` holds the gRPC adapters and
tests substitute fakes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from nhm_remediation.domain import LifecycleState, RegistryAction


class UpstreamError(Exception):
    """A call to another service failed. ``transient``: retrying later may work (UNAVAILABLE, deadline)."""

    def __init__(self, message: str, *, transient: bool, code: str = "") -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code


@dataclass(frozen=True)
class DayActivity:
    date: str  # YYYY-MM-DD (UTC)
    outbound_calls: int
    answered_calls: int
    talk_time: timedelta
    complaints: int


@dataclass(frozen=True)
class CallActivity:
    days: tuple[DayActivity, ...]
    # Most recent outbound call start times, newest first.
    sample_call_times: tuple[datetime, ...]


class RegistryPort(Protocol):
    def apply(self, tenant_id: str, phone_number: str, action: RegistryAction) -> LifecycleState:
        """Carry out a lifecycle action; returns the number's state after it. Raises UpstreamError."""
        ...

    def state(self, tenant_id: str, phone_number: str) -> LifecycleState:
        """The number's state now. Raises UpstreamError."""
        ...


class ActivityPort(Protocol):
    def call_activity(self, tenant_id: str, phone_number: str, days: int, sample_size: int) -> CallActivity:
        """Calls per day over the last ``days`` days (oldest first) and sample call times. Raises UpstreamError."""
        ...


class WeeklyReportPort(Protocol):
    def weekly_report(self, tenant_id: str, period_end: datetime) -> dict[str, Any]:
        """Scoring's weekly report as JSON-ready data. Raises UpstreamError."""
        ...
