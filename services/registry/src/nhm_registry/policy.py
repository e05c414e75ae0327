"""A campaign's calling policy: defaults for what is unset, and the checks on what is set."""

from __future__ import annotations

import dataclasses
import zoneinfo
from collections.abc import Collection
from datetime import timedelta

from nhm_registry.commands import PolicyInput, TimeOfDayInput
from nhm_registry.domain import CallingPolicy, FallbackBehavior, LocalPresenceTier, TimeOfDay
from nhm_registry.settings import RegistrySettings
from nhm_registry.validation import UNSPECIFIED, Violations, enum_value

FIELDS = tuple(f.name for f in dataclasses.fields(CallingPolicy))


@dataclasses.dataclass(frozen=True)
class PolicyLimits:
    max_daily_cap_per_number: int
    max_sticky_ttl: timedelta


def defaults(settings: RegistrySettings) -> CallingPolicy:
    return CallingPolicy(
        daily_cap_per_number=settings.default_daily_cap_per_number,
        hourly_cap_per_number=settings.default_hourly_cap_per_number,
        local_presence=tuple(LocalPresenceTier(t.strip()) for t in settings.default_local_presence_tiers.split(",")
                             if t.strip()),
        allow_at_risk=settings.default_allow_at_risk,
        sticky_caller_id=settings.default_sticky_caller_id,
        sticky_ttl=timedelta(seconds=settings.default_sticky_ttl),
        calling_window_start=TimeOfDay.parse(settings.default_calling_window_start),
        calling_window_end=TimeOfDay.parse(settings.default_calling_window_end),
        max_calls_per_prospect_per_day=settings.default_max_calls_per_prospect_per_day,
        max_calls_per_prospect_per_week=settings.default_max_calls_per_prospect_per_week,
        cap_reset_time_zone=settings.default_cap_reset_time_zone,
        fallback_behavior=FallbackBehavior.FAIL_CLOSED,
        fallback_phone_number="",
    )


def limits(settings: RegistrySettings) -> PolicyLimits:
    return PolicyLimits(settings.max_daily_cap_per_number, timedelta(seconds=settings.max_sticky_ttl))


def resolve(given: PolicyInput, base: CallingPolicy, default: CallingPolicy, fields: Collection[str],
            field: str, violations: Violations) -> CallingPolicy:
    """base with each of fields replaced by the given value, or by the default when it is not given."""
    values = {}
    for name in fields:
        raw = getattr(given, name)
        at = f"{field}.{name}"
        if raw is None:
            values[name] = getattr(default, name)
        elif name == "local_presence":
            values[name] = _tiers(raw, at, violations) or default.local_presence
        elif name in ("calling_window_start", "calling_window_end"):
            values[name] = _time_of_day(raw, at, violations)
        elif name == "fallback_behavior":
            values[name] = enum_value(FallbackBehavior, raw, at, violations, default=default.fallback_behavior)
        else:
            values[name] = raw
    return dataclasses.replace(base, **values)


def check(policy: CallingPolicy, limits: PolicyLimits, field: str, violations: Violations) -> None:
    """Violations of the effective policy (the fallback number's ownership is checked by the caller)."""
    for name in ("daily_cap_per_number", "hourly_cap_per_number", "max_calls_per_prospect_per_day",
                 "max_calls_per_prospect_per_week"):
        value = getattr(policy, name)
        if value <= 0:
            violations.add(f"{field}.{name}", "must be greater than 0")
        elif value > limits.max_daily_cap_per_number:
            violations.add(f"{field}.{name}", f"at most {limits.max_daily_cap_per_number}")
    if policy.sticky_ttl <= timedelta(0):
        violations.add(f"{field}.sticky_ttl", "must be positive")
    elif policy.sticky_ttl > limits.max_sticky_ttl:
        violations.add(f"{field}.sticky_ttl", f"at most {limits.max_sticky_ttl.days} days")
    if policy.calling_window_start.minute_of_day >= policy.calling_window_end.minute_of_day:
        violations.add(f"{field}.calling_window_end", "must be later than calling_window_start (same day)")
    if not _is_time_zone(policy.cap_reset_time_zone):
        violations.add(f"{field}.cap_reset_time_zone", "an IANA time zone such as America/New_York")
    if policy.fallback_behavior is FallbackBehavior.FALLBACK_NUMBER and not policy.fallback_phone_number:
        violations.add(f"{field}.fallback_phone_number", "required when fallback_behavior is FALLBACK_NUMBER")
    if policy.fallback_behavior is FallbackBehavior.FAIL_CLOSED and policy.fallback_phone_number:
        violations.add(f"{field}.fallback_phone_number", "only used when fallback_behavior is FALLBACK_NUMBER")


def _tiers(raw: tuple[str, ...], field: str, violations: Violations) -> tuple[LocalPresenceTier, ...]:
    tiers: list[LocalPresenceTier] = []
    for i, name in enumerate(raw):
        if name == UNSPECIFIED:
            violations.add(f"{field}.tiers[{i}]", "UNSPECIFIED is not a tier")
            continue
        tier = enum_value(LocalPresenceTier, name, f"{field}.tiers[{i}]", violations)
        if tier is None:
            continue
        if tier in tiers:
            violations.add(f"{field}.tiers[{i}]", f"{tier.value} is listed twice")
        tiers.append(tier)
    return tuple(tiers)


def _time_of_day(raw: TimeOfDayInput, field: str, violations: Violations) -> TimeOfDay:
    if not 0 <= raw.hours <= 23:
        violations.add(f"{field}.hours", "0-23")
    if not 0 <= raw.minutes <= 59:
        violations.add(f"{field}.minutes", "0-59")
    return TimeOfDay(raw.hours, raw.minutes)


def _is_time_zone(name: str) -> bool:
    if not name or name.startswith("/") or ".." in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
