"""Which numbers may place a call, and in what order: every allocation rule, as pure functions.

A candidate is passed over for the first rule it breaks, in this order: lifecycle (ACTIVE, or WARMING),
health (Healthy; At Risk if the campaign allows it; never Flagged or Blocked; per carrier when the
prospect's carrier is known), neighbour spoofing (never the prospect's own NPA-NXX), local-presence tier
(one the campaign allows), then caps (the warm-up step's daily cap, the daily cap, the hourly cap).
Among eligible numbers: the closest tier first, then least used today, then least recently used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from nhm_allocation.enums import Carrier, Gate, Health, Reason, State, Tier
from nhm_allocation.health_view import UNKNOWN, HealthView
from nhm_allocation.policy import CallingPolicy, WarmupPlan

_STATE_REASONS = {State.QUARANTINED: Reason.QUARANTINED, State.RESTING: Reason.RESTING,
                  State.RETIRED: Reason.RETIRED}
_HEALTH_REASONS = {Health.BLOCKED: Reason.BLOCKED, Health.FLAGGED: Reason.FLAGGED, Health.AT_RISK: Reason.AT_RISK}
CAP_REASONS = frozenset({Reason.DAILY_CAP, Reason.HOURLY_CAP, Reason.WARMUP_CAP})


@dataclass(frozen=True)
class Place:
    """Where a number (ours or the prospect's) is: what local presence compares."""

    country: str
    area_code: str
    exchange: str
    region: str

    @property
    def area_key(self) -> str:
        return f"{self.country}-{self.area_code}" if self.area_code else ""

    @property
    def region_key(self) -> str:
        return f"{self.country}-{self.region}" if self.region else ""


@dataclass(frozen=True)
class Usage:
    """A number's counters: the day and hour they count (epoch seconds of the period start) and the calls."""

    day_start: int = 0
    day_used: int = 0
    hour_start: int = 0
    hour_used: int = 0
    last_ms: int = 0

    def used_today(self, day_start: int) -> int:
        # Periods only move forward; a counter whose day began at or after this day's start counts today.
        return self.day_used if self.day_start >= day_start else 0

    def used_this_hour(self, hour_start: int) -> int:
        return self.hour_used if self.hour_start >= hour_start else 0

    def plus_call(self, day_start: int, hour_start: int, now_ms: int) -> Usage:
        """The counters once a call of this day and hour is counted (a later day or hour starts again at one),
        as repository.count_all writes them."""
        new_day, new_hour = self.day_start < day_start, self.hour_start < hour_start
        return Usage(day_start if new_day else self.day_start, 1 if new_day else self.day_used + 1,
                     hour_start if new_hour else self.hour_start, 1 if new_hour else self.hour_used + 1, now_ms)


@dataclass(frozen=True)
class Candidate:
    phone_number: str
    place: Place
    state: State
    display_name: str = ""
    warmup: WarmupPlan | None = None
    warmup_start: datetime | None = None
    health: HealthView = UNKNOWN
    usage: Usage = Usage()

    @property
    def rotation_key(self) -> tuple[int, int, int, str]:
        """Least used today first (a counter from an earlier day means unused today), then least recently used."""
        return (self.usage.day_start, self.usage.day_used, self.usage.last_ms, self.phone_number)


@dataclass(frozen=True)
class Call:
    """One AllocateNumber call as the rules see it."""

    now: datetime
    policy: CallingPolicy
    destination: Place
    carrier: Carrier
    day_start: int
    hour_start: int


def lifecycle_reason(state: State) -> Reason | None:
    if state in (State.ACTIVE, State.WARMING):
        return None
    return _STATE_REASONS.get(state, Reason.NOT_ACTIVE)


def acceptable(status: Health, allow_at_risk: bool) -> bool:
    return status <= Health.HEALTHY or (status is Health.AT_RISK and allow_at_risk)


def health_reason(health: HealthView, carrier: Carrier, allow_at_risk: bool) -> Reason | None:
    status = health.for_carrier(carrier)
    if acceptable(status, allow_at_risk):
        return None
    return _HEALTH_REASONS[status]


def is_neighbor(place: Place, destination: Place) -> bool:
    """Same area code and exchange (NPA-NXX) as the prospect: looks like neighbour spoofing."""
    return (bool(place.exchange) and place.country == destination.country
            and place.area_code == destination.area_code and place.exchange == destination.exchange)


def matches(tier: Tier, place: Place, destination: Place) -> bool:
    if tier is Tier.AREA_CODE:
        return bool(place.area_key) and place.area_key == destination.area_key
    if tier is Tier.REGION:
        return bool(place.region_key) and place.region_key == destination.region_key
    if tier is Tier.COUNTRY:
        return bool(place.country) and place.country == destination.country
    return tier is Tier.ANY


def tier_for(place: Place, destination: Place, tiers: tuple[Tier, ...]) -> Tier | None:
    """The first of the campaign's tiers the number matches; None if it matches none of them."""
    for tier in tiers:
        if matches(tier, place, destination):
            return tier
    return None


def daily_cap(candidate: Candidate, policy: CallingPolicy, now: datetime) -> tuple[int, bool]:
    """The daily cap that applies today and whether the warm-up step sets it (it is below the campaign's)."""
    if candidate.state is State.WARMING:
        plan = candidate.warmup or WarmupPlan()
        elapsed = now - candidate.warmup_start if candidate.warmup_start else timedelta(0)
        step_cap = plan.cap_at(elapsed)
        if step_cap < policy.daily_cap:
            return step_cap, True
    return policy.daily_cap, False


def cap_reason(candidate: Candidate, call: Call) -> Reason | None:
    cap, warming = daily_cap(candidate, call.policy, call.now)
    if candidate.usage.used_today(call.day_start) >= cap:
        return Reason.WARMUP_CAP if warming else Reason.DAILY_CAP
    if candidate.usage.used_this_hour(call.hour_start) >= call.policy.hourly_cap:
        return Reason.HOURLY_CAP
    return None


def exclusion(candidate: Candidate, call: Call) -> Reason | None:
    """The first rule the candidate breaks for this call, or None if it may take the call."""
    reason = lifecycle_reason(candidate.state)
    if reason is None:
        reason = health_reason(candidate.health, call.carrier, call.policy.allow_at_risk)
    if reason is None and is_neighbor(candidate.place, call.destination):
        reason = Reason.NEIGHBOR_SPOOFING
    if reason is None and tier_for(candidate.place, call.destination, call.policy.tiers) is None:
        reason = Reason.TIER_NOT_ALLOWED
    if reason is None:
        reason = cap_reason(candidate, call)
    return reason


def gate(state: State, health: HealthView, allow_at_risk: bool) -> Gate:
    """A member's standing in the candidate indexes (see Gate); only an optimisation of exclusion()."""
    if lifecycle_reason(state) is not None:
        return Gate.CLOSED
    if acceptable(health.status, allow_at_risk):
        return Gate.OPEN
    if health.status < Health.BLOCKED and any(
            acceptable(health.for_carrier(c), allow_at_risk) for c in Carrier if c is not Carrier.UNSPECIFIED):
        return Gate.CARRIER
    return Gate.CLOSED


def preference(candidate: Candidate, call: Call) -> tuple[int, tuple[int, int, int, str]]:
    """Sort key among eligible candidates: closest allowed tier, then rotation."""
    tier = tier_for(candidate.place, call.destination, call.policy.tiers)
    rank = call.policy.tiers.index(tier) if tier is not None else len(call.policy.tiers)
    return rank, candidate.rotation_key
