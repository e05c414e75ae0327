"""A number's health from its factors and labels: the seed's status, a 0-100 score, per source and carrier.

Status rules, in order: any blocking (a BLOCKED label, or a SIP 608 burst) → Blocked; any spam/scam label →
Flagged; a minor label, or a behavioural risk score at or over the policy's threshold → At Risk (the early
warning before carriers label the number); else Healthy. A label counts until label_expires_after; from
label_fresh_for on its weight falls linearly towards 0, which lowers the score it costs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from nhm_scoring.activity import Activity
from nhm_scoring.factors import Factor, NumberTraits, blocked_burst, evaluate
from nhm_scoring.policy import FactorKind, ScoringPolicy
from nhm_scoring.reputation import CARRIERS, SOURCE_CARRIER, Carrier, HealthStatus, Label, Source

# Points a label at full weight takes off the score.
LABEL_PENALTY = {Label.MINOR: 30, Label.SPAM: 60, Label.SCAM: 70, Label.BLOCKED: 90}
# Points a SIP 608 burst takes off.
BURST_PENALTY = 90
# The highest score each status may show, so the score never contradicts the status.
STATUS_CEILING = {HealthStatus.HEALTHY: 100, HealthStatus.AT_RISK: 69, HealthStatus.FLAGGED: 39,
                  HealthStatus.BLOCKED: 9}


@dataclass(frozen=True)
class LabelState:
    """The latest observation of one source about one number."""

    source: Source
    label: Label
    raw_label: str
    observe_time: datetime
    score: float | None = None


@dataclass(frozen=True)
class SourceView:
    source: Source
    label: Label
    raw_label: str
    status: HealthStatus
    observe_time: datetime
    weight: float

    @property
    def words(self) -> str:
        return f"{self.source.display}: {self.raw_label or self.label.words}"


@dataclass(frozen=True)
class Assessment:
    status: HealthStatus
    score: int
    risk_score: int
    factors: tuple[Factor, ...]
    sources: tuple[SourceView, ...]
    carrier_status: dict[Carrier, HealthStatus]
    # Why the status is what it is: a sentence, the phrase for history, and what it rests on.
    summary: str
    cause: str
    cause_factors: tuple[FactorKind, ...]
    cause_sources: tuple[Source, ...]
    # Whether time alone (windows sliding, labels ageing) can change this assessment.
    time_sensitive: bool


def label_weight(observe_time: datetime, now: datetime, policy: ScoringPolicy) -> float:
    """1 while fresh, then falling linearly to 0 at label_expires_after (0: the label is ignored)."""
    age = now - observe_time
    if age >= policy.label_expires_after:
        return 0.0
    if age <= policy.label_fresh_for:
        return 1.0
    span = (policy.label_expires_after - policy.label_fresh_for).total_seconds()
    return round(1.0 - (age - policy.label_fresh_for).total_seconds() / span, 4)


def source_views(labels: Iterable[LabelState], now: datetime, policy: ScoringPolicy) -> list[SourceView]:
    """What each source says now; expired labels are left out."""
    views = []
    for state in sorted(labels, key=lambda s: s.source):
        weight = label_weight(state.observe_time, now, policy)
        if weight <= 0:
            continue
        views.append(SourceView(state.source, state.label, state.raw_label, state.label.status, state.observe_time,
                                weight))
    return views


def carrier_statuses(views: Iterable[SourceView]) -> dict[Carrier, HealthStatus]:
    """Each carrier's view: the worst label of the carrier itself and of its analytics engine."""
    statuses = dict.fromkeys(CARRIERS, HealthStatus.HEALTHY)
    for view in views:
        carrier = SOURCE_CARRIER.get(view.source)
        if carrier is not None and view.status > statuses[carrier]:
            statuses[carrier] = view.status
    return statuses


def assess(activity: Activity, traits: NumberTraits, labels: Sequence[LabelState], policy: ScoringPolicy,
           now: datetime) -> Assessment:
    factors = tuple(evaluate(activity, traits, policy))
    triggered = [f for f in factors if f.triggered]
    risk = int(min(100, round(sum(f.weight for f in triggered))))
    views = tuple(source_views(labels, now, policy))
    burst = blocked_burst(activity, policy)
    by_status: dict[HealthStatus, list[SourceView]] = defaultdict(list)
    for view in views:
        by_status[view.status].append(view)
    risky = risk >= policy.at_risk_score_threshold

    if by_status[HealthStatus.BLOCKED] or burst:
        status = HealthStatus.BLOCKED
        sources = by_status[HealthStatus.BLOCKED]
        causes_factors = [f for f in factors if f.kind is FactorKind.BLOCKED_CALLS] if burst else []
    elif by_status[HealthStatus.FLAGGED]:
        status, sources, causes_factors = HealthStatus.FLAGGED, by_status[HealthStatus.FLAGGED], []
    elif by_status[HealthStatus.AT_RISK] or risky:
        status = HealthStatus.AT_RISK
        sources = by_status[HealthStatus.AT_RISK]
        causes_factors = triggered if risky else []
    else:
        status, sources, causes_factors = HealthStatus.HEALTHY, [], []

    score = 100 - risk
    penalty = max((LABEL_PENALTY.get(v.label, 0) * v.weight for v in views), default=0.0)
    score -= round(penalty)
    if burst:
        score -= BURST_PENALTY
    score = max(0, min(score, STATUS_CEILING[status]))

    phrases = [v.words for v in sources] + [f.cause for f in causes_factors]
    if status is HealthStatus.HEALTHY:
        cause = f"no spam labels; risk score {risk} below {policy.at_risk_score_threshold}"
        if triggered:
            cause += " (" + ", ".join(f.cause for f in triggered) + ")"
    else:
        cause = "; ".join(phrases)
        if status is HealthStatus.AT_RISK and risky:
            cause += f" (risk score {risk}, threshold {policy.at_risk_score_threshold})"
    carriers = carrier_statuses(views)
    return Assessment(
        status=status, score=score, risk_score=risk, factors=factors, sources=views, carrier_status=carriers,
        summary=_summary(status, cause, carriers, sources),
        cause=cause,
        cause_factors=tuple(f.kind for f in causes_factors),
        cause_sources=tuple(v.source for v in sources),
        time_sensitive=activity.any_recent or bool(views),
    )


def _summary(status: HealthStatus, cause: str, carriers: dict[Carrier, HealthStatus],
             sources: Sequence[SourceView]) -> str:
    text = f"{status.words}: {cause}."
    if status in (HealthStatus.FLAGGED, HealthStatus.BLOCKED, HealthStatus.AT_RISK) and sources:
        affected = [c.display for c in CARRIERS if carriers[c] is status]
        if affected:
            text += f" Affects {', '.join(affected)}."
        elif status is not HealthStatus.AT_RISK:
            text += " Call-blocking apps only; no carrier labels it."
    return text
