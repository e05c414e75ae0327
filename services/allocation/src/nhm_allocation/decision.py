"""What an allocation says about itself: the decision record and the refusal, in domain terms."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nhm_allocation.eligibility import CAP_REASONS
from nhm_allocation.enums import Reason, Tier

_TIER_WORDS = {Tier.AREA_CODE: "same area code", Tier.REGION: "same state/region", Tier.COUNTRY: "same country",
               Tier.ANY: "any number of the campaign", Tier.FALLBACK: "the campaign's fallback caller ID"}
_REASON_WORDS = {
    Reason.NOT_ACTIVE: "not active", Reason.QUARANTINED: "quarantined", Reason.RESTING: "resting",
    Reason.RETIRED: "retired", Reason.WARMUP_CAP: "at warm-up cap", Reason.AT_RISK: "at risk",
    Reason.FLAGGED: "flagged", Reason.BLOCKED: "blocked", Reason.DAILY_CAP: "at daily cap",
    Reason.HOURLY_CAP: "at hourly cap", Reason.NEIGHBOR_SPOOFING: "same NPA-NXX as the prospect",
    Reason.TIER_NOT_ALLOWED: "outside the allowed local-presence tiers",
}


@dataclass
class Tally:
    """Numbers looked at for one call and why each one passed over was passed over."""

    considered: set[str] = field(default_factory=set)
    excluded: Counter[Reason] = field(default_factory=Counter)
    # Numbers counted in groups (a whole pool's refusal) rather than one by one.
    counted: int = 0

    @property
    def size(self) -> int:
        """How many numbers were looked at."""
        return len(self.considered) + self.counted

    def seen(self, phone_number: str) -> bool:
        return phone_number in self.considered

    def consider(self, phone_number: str, reason: Reason | None) -> None:
        self.considered.add(phone_number)
        if reason is not None:
            self.excluded[reason] += 1

    def consider_many(self, count: int, reason: Reason | None) -> None:
        """count numbers alike in every rule, all passed over for reason (or none)."""
        self.counted += count
        if reason is not None:
            self.excluded[reason] += count

    def reclassify(self, old: Reason | None, new: Reason) -> None:
        """A candidate that looked eligible lost a race for its last slot: count it under its cap."""
        if old is not None:
            self.excluded[old] -= 1
            if not self.excluded[old]:
                del self.excluded[old]
        self.excluded[new] += 1

    def forget(self, phone_number: str, reason: Reason | None) -> None:
        """Look at a number again (a full evaluation after the fast path)."""
        self.considered.discard(phone_number)
        if reason is not None:
            self.excluded[reason] -= 1
            if not self.excluded[reason]:
                del self.excluded[reason]

    @property
    def capped(self) -> bool:
        return any(reason in CAP_REASONS for reason in self.excluded)

    def summary(self) -> str:
        if not self.excluded:
            return ""
        parts = ", ".join(f"{count} {_REASON_WORDS[reason]}" for reason, count in self.excluded.most_common())
        return f"; passed over {sum(self.excluded.values())}: {parts}"


@dataclass(frozen=True)
class Refusal:
    """Nothing eligible: how many numbers were looked at and why each was passed over."""

    considered: int
    exclusions: dict[Reason, int]
    # When the earliest capped number frees up, if caps are what blocked.
    retry_time: datetime | None


def age_in_words(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def explain_sticky(phone_number: str, age: timedelta) -> str:
    return f"sticky: {phone_number} was used for this prospect {age_in_words(age)}"


def explain_choice(phone_number: str, tier: Tier, used_before: int, cap: int, tally: Tally) -> str:
    return (f"{_TIER_WORDS[tier]}: {phone_number} was the least used today ({used_before} of {cap} calls)"
            f"{tally.summary()}")


def explain_fallback(phone_number: str, tally: Tally) -> str:
    return f"fallback: no number was eligible, so the campaign's fallback {phone_number} was used{tally.summary()}"
