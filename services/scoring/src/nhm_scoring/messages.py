"""Domain values as contract messages (NumberHealth, HealthTransition, ScoringPolicy) and back.

Health is stored and fed as the NumberHealth message it is served as, so the feed, the list and the getter
can never disagree; fields that depend on the moment of reading are set by :func:`as_read`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from google.protobuf.message import Message

from nhm.scoring.v1 import scoring_pb2
from nhm_platform.protoconv import from_timestamp, to_duration, to_timestamp
from nhm_scoring.assessment import Assessment
from nhm_scoring.policy import DURATION_FIELDS, FIELDS, FactorKind, ScoringPolicy
from nhm_scoring.reputation import HealthStatus, Source


def number_health(tenant_id: str, phone: str, area_code: str, campaign_ids: Sequence[str],
                  assessment: Assessment, status_time: datetime) -> scoring_pb2.NumberHealth:
    message = scoring_pb2.NumberHealth(
        phone_number=phone,
        tenant_id=tenant_id,
        status=int(assessment.status),
        score=assessment.score,
        campaign_ids=list(campaign_ids),
        area_code=area_code,
        summary=assessment.summary,
        status_time=to_timestamp(status_time),
    )
    for view in assessment.sources:
        message.sources.add(source=int(view.source), label=int(view.label), raw_label=view.raw_label,
                            status=int(view.status), observe_time=to_timestamp(view.observe_time),
                            weight=view.weight)
    for f in assessment.factors:
        message.factors.add(kind=f.kind.value, name=f.name, value=f.value, threshold=f.threshold, weight=f.weight,
                            triggered=f.triggered, advice=f.advice, detail=f.detail)
    for carrier, status in assessment.carrier_status.items():
        message.carrier_status[carrier.key] = int(status)
    return message


def as_read(stored: bytes, update_time: datetime, now: datetime) -> scoring_pb2.NumberHealth:
    """A stored NumberHealth with its update time and how long it has been in its status, as of now."""
    message = scoring_pb2.NumberHealth.FromString(stored)
    message.update_time.CopyFrom(to_timestamp(update_time))
    status_time = from_timestamp(message.status_time)
    message.status_duration.CopyFrom(to_duration(max(now - status_time, timedelta(0))))
    return message


def transition(phone: str, from_status: HealthStatus, to_status: HealthStatus, score: int, cause: str,
               factors: Sequence[FactorKind], sources: Sequence[Source],
               when: datetime) -> scoring_pb2.HealthTransition:
    return scoring_pb2.HealthTransition(
        phone_number=phone, from_status=int(from_status), to_status=int(to_status), score=score, cause=cause,
        factors=[f.value for f in factors], sources=[int(s) for s in sources], transition_time=to_timestamp(when))


def policy_message(policy: ScoringPolicy) -> scoring_pb2.ScoringPolicy:
    """The effective policy: every field set."""
    message = scoring_pb2.ScoringPolicy()
    for name in FIELDS:
        value = getattr(policy, name)
        if name == "factor_weights":
            for kind in FactorKind:
                message.factor_weights[kind.name] = policy.weight(kind)
        elif name in DURATION_FIELDS:
            getattr(message, name).CopyFrom(to_duration(value))
        else:
            setattr(message, name, value)
    return message


def policy_changes(message: scoring_pb2.ScoringPolicy, paths: Sequence[str]) -> dict[str, object]:
    """What an update names: each path's value in the message, or None (back to the default) when unset."""
    changes: dict[str, object] = {}
    for path in paths:
        if path == "factor_weights":
            changes[path] = dict(message.factor_weights)
        elif path.startswith("factor_weights."):
            key = path.removeprefix("factor_weights.")
            changes[path] = message.factor_weights.get(key)
        elif path in DURATION_FIELDS:
            changes[path] = getattr(message, path).ToTimedelta() if message.HasField(path) else None
        else:
            changes[path] = getattr(message, path) if message.HasField(path) else None
    return changes


def serialize(message: Message) -> bytes:
    return message.SerializeToString(deterministic=True)
