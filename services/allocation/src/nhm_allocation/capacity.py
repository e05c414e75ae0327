"""Capacity planning: how many numbers a campaign needs per area code.

Pool size = expected daily volume / per-number cap x (1 + resting buffer) (domain.md: a 20-30% buffer
keeps enough numbers resting to rotate them out when they get flagged).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

# Share of numbers kept resting; domain: 20-30%.
DEFAULT_RESTING_BUFFER = 0.25
# Days of history the expected volume defaults to (their daily average).
HISTORY_DAYS = 7


@dataclass
class AreaCapacity:
    area_code: str
    region: str = ""
    total: int = 0
    eligible: int = 0
    resting: int = 0
    warming: int = 0
    unhealthy: int = 0
    daily_capacity: int = 0
    expected_daily_calls: int = 0
    needed: int = 0


@dataclass
class Plan:
    areas: list[AreaCapacity] = field(default_factory=list)
    total: AreaCapacity = field(default_factory=lambda: AreaCapacity(""))
    resting_buffer: float = DEFAULT_RESTING_BUFFER

    @property
    def short_of_numbers(self) -> bool:
        return self.total.needed > 0


def numbers_needed(expected: int, cap: int, buffer: float, eligible: int) -> int:
    """ceil(expected / cap x (1 + buffer)) - eligible, never below 0."""
    if expected <= 0:
        return 0
    if cap <= 0:
        return max(0, expected - eligible) if expected else 0
    return max(0, math.ceil(expected / cap * (1 + buffer) - 1e-9) - eligible)


def split_volume(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split a daily volume across area codes in proportion to weights (largest remainder, sums to total)."""
    weight_sum = sum(w for w in weights.values() if w > 0)
    if total <= 0 or weight_sum <= 0:
        return {key: 0 for key in weights}
    shares = {key: total * max(w, 0) / weight_sum for key, w in weights.items()}
    result = {key: math.floor(share) for key, share in shares.items()}
    rest = total - sum(result.values())
    for key in sorted(shares, key=lambda k: (result[k] - shares[k], k))[:rest]:
        result[key] += 1
    return result


def plan(areas: list[AreaCapacity], cap: int, buffer: float) -> Plan:
    """Fill in numbers needed per area code and the total (areas carry counts and expected calls)."""
    total = AreaCapacity("")
    for area in areas:
        area.needed = numbers_needed(area.expected_daily_calls, cap, buffer, area.eligible)
        for name in ("total", "eligible", "resting", "warming", "unhealthy", "daily_capacity",
                     "expected_daily_calls"):
            setattr(total, name, getattr(total, name) + getattr(area, name))
    total.needed = numbers_needed(total.expected_daily_calls, cap, buffer, total.eligible)
    return Plan(sorted(areas, key=lambda a: a.area_code), total, buffer)
