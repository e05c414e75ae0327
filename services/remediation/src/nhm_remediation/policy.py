"""Each tenant's remediation policy: every duration and threshold of a case, with documented defaults.

Defaults come from the domain notes: rest 2-4 weeks (14 days), warm-up 20 -> 40 -> 60 -> 100 calls/day with a
step every few days (3), reviews take 3-5 business days (5), still labelled after 30 days -> retire, and a
20-30 % resting buffer in a pool (alert above 30 %). A tenant stores only what it sets; reads merge defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from nhm_platform.errors import FieldViolation, InvalidArgument

DAY = timedelta(days=1)


@dataclass(frozen=True)
class RemediationPolicy:
    # Open WATCH cases for At Risk numbers.
    watch_at_risk: bool = True
    # Quarantine At Risk numbers under watch.
    quarantine_at_risk: bool = False
    # Rest of the first cycle.
    rest_duration: timedelta = 14 * DAY
    # Each escalation multiplies the rest by this (cycle n rests rest_duration * multiplier**(n-1)).
    escalation_rest_multiplier: float = 2.0
    # Warm-up ramp of daily caps, one step per warmup_step_duration.
    warmup_daily_caps: tuple[int, ...] = (20, 40, 60, 100)
    warmup_step_duration: timedelta = 3 * DAY
    # Deadlines of operator tasks, in business days (Monday to Friday, UTC).
    dispute_review_business_days: int = 5
    registration_business_days: int = 5
    # Cycles before retirement is recommended (flagged again after the last one).
    max_cycles: int = 3
    # Still labelled this long after the case opened: recommend retirement.
    max_labelled_duration: timedelta = 30 * DAY
    # Retire automatically when retirement is recommended.
    auto_retire: bool = False
    # Alert when more than this share of a campaign's numbers rest (or sit in quarantine) at once.
    max_resting_share: float = 0.30
    # One Free Caller Registry form instead of one registration per carrier.
    use_free_caller_registry: bool = True

    def rest_for_cycle(self, cycle: int) -> timedelta:
        return self.rest_duration * (self.escalation_rest_multiplier ** max(cycle - 1, 0))

    @property
    def warmup_duration(self) -> timedelta:
        return self.warmup_step_duration * len(self.warmup_daily_caps)


DEFAULT_POLICY = RemediationPolicy()
FIELDS = tuple(f.name for f in dataclasses.fields(RemediationPolicy))
# Bounds that keep a policy sensible (and within what the registry accepts: rests up to 365 days).
MAX_REST = timedelta(days=180)
MAX_WARMUP_STEPS = 30


def effective(stored: dict[str, Any]) -> RemediationPolicy:
    """The policy a tenant gets: its stored fields over the defaults."""
    return dataclasses.replace(DEFAULT_POLICY, **{k: v for k, v in stored.items() if k in FIELDS})


def merge(stored: dict[str, Any], given: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """Apply an update: each path takes the given value, or goes back to its default when not given."""
    merged = dict(stored)
    for path in paths:
        if path in given:
            merged[path] = given[path]
        else:
            merged.pop(path, None)
    validate(effective(merged), field="policy")
    return merged


def validate(policy: RemediationPolicy, field: str) -> None:
    violations: list[FieldViolation] = []

    def bad(name: str, description: str) -> None:
        violations.append(FieldViolation(f"{field}.{name}", description))

    if not timedelta(hours=1) <= policy.rest_duration <= MAX_REST:
        bad("rest_duration", f"between 1 hour and {MAX_REST.days} days")
    if not 1.0 <= policy.escalation_rest_multiplier <= 10.0:
        bad("escalation_rest_multiplier", "between 1 and 10")
    elif policy.rest_for_cycle(policy.max_cycles) > MAX_REST:
        bad("escalation_rest_multiplier",
            f"with max_cycles {policy.max_cycles} the last rest would exceed {MAX_REST.days} days")
    caps = policy.warmup_daily_caps
    if not caps:
        bad("warmup_daily_caps", "at least one step")
    elif len(caps) > MAX_WARMUP_STEPS:
        bad("warmup_daily_caps", f"at most {MAX_WARMUP_STEPS} steps")
    for i, cap in enumerate(caps):
        if not 1 <= cap <= 10_000:
            bad(f"warmup_daily_caps[{i}]", "between 1 and 10000 calls per day")
        elif i and cap < caps[i - 1]:
            bad(f"warmup_daily_caps[{i}]", "a ramp: each step's cap is at least the one before")
    if not timedelta(minutes=1) <= policy.warmup_step_duration <= timedelta(days=30):
        bad("warmup_step_duration", "between 1 minute and 30 days")
    for name in ("dispute_review_business_days", "registration_business_days"):
        if not 1 <= getattr(policy, name) <= 60:
            bad(name, "between 1 and 60 business days")
    if not 1 <= policy.max_cycles <= 20:
        bad("max_cycles", "between 1 and 20")
    if not timedelta(hours=1) <= policy.max_labelled_duration <= timedelta(days=365):
        bad("max_labelled_duration", "between 1 hour and 365 days")
    if not 0.0 < policy.max_resting_share <= 1.0:
        bad("max_resting_share", "greater than 0 and at most 1")
    if violations:
        raise InvalidArgument.for_fields(violations)
