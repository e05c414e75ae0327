"""A tenant's scoring policy: every threshold, window and weight, with the defaults from domain.md.

A stored policy keeps only what the tenant set; everything else takes the default below, so a better
default reaches every tenant that never chose otherwise. How each threshold is compared:

| Factor | Triggered when | Default |
|---|---|---|
| daily volume | busiest UTC day of today and yesterday >= threshold | 150 calls |
| hourly volume | busiest hour of the last 24 h > threshold | 50 calls |
| answer rate | answered / outbound over the window < threshold (needs min calls) | 8 % over 3 days, 20 calls |
| short calls | share of answered calls shorter than short_call_duration > threshold | 10 s, 30 % |
| average talk time | mean talk time of answered calls < threshold | 15 s |
| complaints | complaints and do-not-call requests in 30 days >= threshold | 3 |
| inbound usage | inbound / outbound < threshold, or inbound disabled (needs min calls) | 0.02 |
| blocked calls | 603/607/608 share of outbound >= threshold (needs min calls) | 5 % |
| 608 burst | SIP 608 responses within blocked_window >= count: the number is Blocked | 5 in 3 days |
| attestation | STIR/SHAKEN level B or C | - |
| repeat dialling | most calls to one prospect on one UTC day (today, yesterday) > threshold | 3 |

The behavioural risk score is the sum of the weights of the triggered factors (at most 100); a number
whose risk score reaches at_risk_score_threshold is At Risk before any carrier labels it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum

from nhm_platform.errors import FieldViolation


class FactorKind(Enum):
    """The risk factors, named as RiskFactorKind without its prefix."""

    DAILY_VOLUME = 1
    HOURLY_VOLUME = 2
    ANSWER_RATE = 3
    SHORT_CALLS = 4
    AVERAGE_TALK_TIME = 5
    COMPLAINTS = 6
    INBOUND_USAGE = 7
    BLOCKED_CALLS = 8
    ATTESTATION = 9
    REPEAT_DIALING = 10


# Points each triggered factor adds to the behavioural risk score. With the default threshold of 50, two
# volume/answer-rate signals together, or complaints or blocking alone, make a number At Risk.
DEFAULT_FACTOR_WEIGHTS: Mapping[FactorKind, float] = {
    FactorKind.DAILY_VOLUME: 30,
    FactorKind.HOURLY_VOLUME: 20,
    FactorKind.ANSWER_RATE: 30,
    FactorKind.SHORT_CALLS: 25,
    FactorKind.AVERAGE_TALK_TIME: 15,
    FactorKind.COMPLAINTS: 50,
    FactorKind.INBOUND_USAGE: 10,
    FactorKind.BLOCKED_CALLS: 50,
    FactorKind.ATTESTATION: 10,
    FactorKind.REPEAT_DIALING: 25,
}


@dataclass(frozen=True)
class ScoringPolicy:
    daily_volume_threshold: int = 150
    hourly_volume_threshold: int = 50
    answer_rate_threshold: float = 0.08
    answer_rate_window_days: int = 3
    answer_rate_min_calls: int = 20
    short_call_duration: timedelta = timedelta(seconds=10)
    short_call_share_threshold: float = 0.30
    average_talk_time_threshold: timedelta = timedelta(seconds=15)
    complaint_threshold: int = 3
    inbound_ratio_threshold: float = 0.02
    blocked_share_threshold: float = 0.05
    blocked_burst_count: int = 5
    blocked_window: timedelta = timedelta(days=3)
    repeat_dial_threshold: int = 3
    at_risk_score_threshold: int = 50
    label_fresh_for: timedelta = timedelta(days=7)
    label_expires_after: timedelta = timedelta(days=30)
    max_event_age: timedelta = timedelta(days=7)
    factor_weights: Mapping[FactorKind, float] = field(default_factory=lambda: dict(DEFAULT_FACTOR_WEIGHTS))

    def weight(self, kind: FactorKind) -> float:
        return self._weights[kind]

    @functools.cached_property
    def _weights(self) -> dict[FactorKind, float]:
        """Every factor's weight, worked out once per policy: rescoring asks ten times a number."""
        return {kind: float(self.factor_weights.get(kind, DEFAULT_FACTOR_WEIGHTS[kind])) for kind in FactorKind}

    @property
    def short_call_seconds(self) -> int:
        return int(self.short_call_duration.total_seconds())


DEFAULTS = ScoringPolicy()
FIELDS = tuple(f.name for f in dataclasses.fields(ScoringPolicy))
DURATION_FIELDS = frozenset(f.name for f in dataclasses.fields(ScoringPolicy) if f.type == "timedelta")
# Complaints are counted over a fixed 30 days (domain.md); history older than the longest window is not needed.
COMPLAINT_WINDOW_DAYS = 30
# Talk times are kept as a histogram of whole seconds up to this, so short_call_duration can change later.
MAX_SHORT_CALL_SECONDS = 60
# Buckets the periodic pass and the report need: the longest window any policy may use.
MAX_WINDOW_DAYS = 30


@dataclass(frozen=True)
class _Range:
    low: float
    high: float
    integral: bool = False


_RANGES: Mapping[str, _Range] = {
    "daily_volume_threshold": _Range(1, 100_000, True),
    "hourly_volume_threshold": _Range(1, 10_000, True),
    "answer_rate_threshold": _Range(0, 1),
    "answer_rate_window_days": _Range(1, MAX_WINDOW_DAYS, True),
    "answer_rate_min_calls": _Range(1, 100_000, True),
    "short_call_duration": _Range(1, MAX_SHORT_CALL_SECONDS, True),
    "short_call_share_threshold": _Range(0, 1),
    "average_talk_time_threshold": _Range(0, 3600),
    "complaint_threshold": _Range(1, 10_000, True),
    "inbound_ratio_threshold": _Range(0, 100),
    "blocked_share_threshold": _Range(0, 1),
    "blocked_burst_count": _Range(1, 100_000, True),
    "blocked_window": _Range(3600, MAX_WINDOW_DAYS * 86400),
    "repeat_dial_threshold": _Range(1, 1000, True),
    "at_risk_score_threshold": _Range(1, 100, True),
    "label_fresh_for": _Range(0, 180 * 86400),
    "label_expires_after": _Range(3600, 180 * 86400),
    "max_event_age": _Range(60, MAX_WINDOW_DAYS * 86400),
}


def merge(current: ScoringPolicy, updates: Mapping[str, object], field_prefix: str = "policy") -> ScoringPolicy:
    """current with updates applied (a value of None restores the default), checked as a whole.

    updates maps policy field names to values; "factor_weights" takes a mapping of kind name to weight and
    replaces the weights named in it (None restores that weight's default). Raises a list of violations.
    """
    values = {name: getattr(current, name) for name in FIELDS}
    violations: list[FieldViolation] = []
    for name, value in updates.items():
        at = f"{field_prefix}.{name}"
        if name == "factor_weights":
            values[name] = _merge_weights(current.factor_weights, value, at, violations)
            continue
        if value is None:
            values[name] = getattr(DEFAULTS, name)
            continue
        limits = _RANGES[name]
        number = value.total_seconds() if isinstance(value, timedelta) else value
        if not isinstance(number, int | float) or not limits.low <= number <= limits.high:
            violations.append(FieldViolation(at, f"must be between {_show(name, limits.low)} and "
                                                 f"{_show(name, limits.high)}"))
            continue
        if limits.integral and float(number) != int(number):
            violations.append(FieldViolation(at, "must be a whole number" + (" of seconds" if name in DURATION_FIELDS
                                                                                else "")))
            continue
        values[name] = value
    merged = ScoringPolicy(**values)
    if merged.label_fresh_for >= merged.label_expires_after:
        violations.append(FieldViolation(f"{field_prefix}.label_fresh_for",
                                         "must be shorter than label_expires_after"))
    if violations:
        raise PolicyViolations(violations)
    return merged


class PolicyViolations(ValueError):
    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = violations


def _merge_weights(current: Mapping[FactorKind, float], given: object, at: str,
                   violations: list[FieldViolation]) -> dict[FactorKind, float]:
    weights = dict(current)
    if given is None:
        return dict(DEFAULT_FACTOR_WEIGHTS)
    assert isinstance(given, Mapping)
    for name, weight in given.items():
        kind = FactorKind.__members__.get(str(name))
        if kind is None:
            violations.append(FieldViolation(f"{at}[{name}]", "unknown risk factor; use one of "
                                             + ", ".join(FactorKind.__members__)))
        elif weight is None:
            weights[kind] = DEFAULT_FACTOR_WEIGHTS[kind]
        elif not 0 <= float(weight) <= 100:
            violations.append(FieldViolation(f"{at}[{name}]", "must be between 0 and 100"))
        else:
            weights[kind] = float(weight)
    return weights


def _show(name: str, value: float) -> str:
    if name in DURATION_FIELDS:
        return _duration_words(timedelta(seconds=value))
    return f"{value:g}"


def _duration_words(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} s"


def duration_words(value: timedelta) -> str:
    """'3 days', '10 s': how details and summaries show durations."""
    return _duration_words(value)


def effective(overrides: Mapping[str, object]) -> ScoringPolicy:
    """The policy a tenant's overrides make (defaults for the rest)."""
    return merge(DEFAULTS, overrides)


def apply_update(overrides: Mapping[str, object], changes: Mapping[str, object]
                 ) -> tuple[dict[str, object], ScoringPolicy]:
    """New overrides and the effective policy after an update.

    changes maps field names to a value, or None to restore the default. "factor_weights" replaces every
    weight (those not given return to their defaults); "factor_weights.<KIND>" sets or restores one.
    Raises PolicyViolations when the result is not a valid policy.
    """
    new = dict(overrides)
    weights = dict(new.get("factor_weights") or {})  # type: ignore[call-overload]
    for name, value in changes.items():
        if name == "factor_weights":
            weights = dict(value or {})  # type: ignore[call-overload]
        elif name.startswith("factor_weights."):
            kind = name.removeprefix("factor_weights.")
            if value is None:
                weights.pop(kind, None)
            else:
                weights[kind] = value
        elif value is None:
            new.pop(name, None)
        else:
            new[name] = value
    if weights:
        new["factor_weights"] = weights
    else:
        new.pop("factor_weights", None)
    return new, merge(DEFAULTS, new)


def overrides_to_json(overrides: Mapping[str, object]) -> str:
    plain = {name: value.total_seconds() if isinstance(value, timedelta) else value
             for name, value in overrides.items()}
    return json.dumps(plain, sort_keys=True)


def overrides_from_json(text: str) -> dict[str, object]:
    plain = json.loads(text) if text else {}
    return {name: timedelta(seconds=value) if name in DURATION_FIELDS else value for name, value in plain.items()}
