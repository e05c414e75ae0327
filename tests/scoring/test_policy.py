"""The scoring policy: documented defaults, per-tenant changes that rescore, validation, idempotent retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from scoring.stack import A, B, error_of, phone, status, triggered

from nhm.scoring.v1 import scoring_pb2 as spb
from nhm_platform.protoconv import to_duration
from nhm_testing.errors import violations

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def update(stack, metadata=A, request_id="", **fields):
    """UpdateScoringPolicy naming every given field in the mask (None: name it but leave it unset)."""
    weights = fields.pop("factor_weights", None)
    policy = spb.ScoringPolicy(**{k: v for k, v in fields.items() if v is not None})
    paths = list(fields)
    if weights is not None:
        for key, value in weights.items():
            if value is not None:
                policy.factor_weights[key] = value
            paths.append(f"factor_weights.{key}")
    request = spb.UpdateScoringPolicyRequest(policy=policy, update_mask=FieldMask(paths=paths), request_id=request_id)
    return stack.scoring.UpdateScoringPolicy(request, metadata=metadata)


def test_defaults_come_from_the_domain_and_every_field_is_set(stack):
    policy = stack.scoring.GetScoringPolicy(spb.GetScoringPolicyRequest(), metadata=A).policy
    assert (policy.daily_volume_threshold, policy.hourly_volume_threshold) == (150, 50)
    assert (policy.answer_rate_threshold, policy.answer_rate_window_days, policy.answer_rate_min_calls) == (0.08, 3, 20)
    assert policy.short_call_duration.seconds == 10 and policy.short_call_share_threshold == 0.30
    assert policy.average_talk_time_threshold.seconds == 15
    assert (policy.complaint_threshold, policy.inbound_ratio_threshold) == (3, 0.02)
    assert policy.blocked_share_threshold == 0.05
    assert (policy.blocked_burst_count, policy.blocked_window.seconds) == (5, 3 * 86400)
    assert (policy.repeat_dial_threshold, policy.at_risk_score_threshold) == (3, 50)
    assert (policy.label_fresh_for.seconds, policy.label_expires_after.seconds) == (7 * 86400, 30 * 86400)
    assert policy.max_event_age.seconds == 7 * 86400
    assert dict(policy.factor_weights) == {
        "DAILY_VOLUME": 30, "HOURLY_VOLUME": 20, "ANSWER_RATE": 30, "SHORT_CALLS": 25, "AVERAGE_TALK_TIME": 15,
        "COMPLAINTS": 50, "INBOUND_USAGE": 10, "BLOCKED_CALLS": 50, "ATTESTATION": 10, "REPEAT_DIALING": 25}


def test_changing_the_policy_rescores_the_tenants_numbers(stack, clock):
    stack.create_numbers(phone(1), phone(2))
    stack.create_numbers(phone(3), metadata=B)
    clock.set(NOW.replace(hour=20))
    stack.report(stack.calls.day(phone(1), NOW.replace(hour=8), calls=100, answered=4, inbound=5))
    stack.report(stack.calls.day(phone(3), NOW.replace(hour=8), calls=100, answered=4, inbound=5), metadata=B)
    health = stack.health(phone(1))
    assert status(health) == "HEALTHY" and triggered(health) == {"ANSWER_RATE"}  # risk 30 < 50

    reply = update(stack, at_risk_score_threshold=30)
    assert reply.rescored == 2 and reply.policy.at_risk_score_threshold == 30
    assert reply.policy.daily_volume_threshold == 150  # the rest keep their defaults
    health = stack.health(phone(1))
    assert status(health) == "AT_RISK"
    assert stack.history(phone(1))[0].cause.startswith("answer rate 4% below 8% (risk score 30, threshold 30)")
    assert status(stack.health(phone(2))) == "HEALTHY"
    assert status(stack.health(phone(3), metadata=B)) == "HEALTHY"  # globex keeps its own policy

    # Back to the default threshold, but answer rate weighs more: still At Risk; then the default weight again.
    reply = update(stack, at_risk_score_threshold=None, factor_weights={"ANSWER_RATE": 60})
    assert reply.policy.at_risk_score_threshold == 50 and reply.policy.factor_weights["ANSWER_RATE"] == 60
    assert reply.policy.factor_weights["DAILY_VOLUME"] == 30
    assert status(stack.health(phone(1))) == "AT_RISK"
    update(stack, factor_weights={"ANSWER_RATE": None})
    assert status(stack.health(phone(1))) == "HEALTHY"

    # A longer short-call duration applies to calls already counted (talk times are kept per whole second).
    stack.report(stack.calls.day(phone(2), NOW.replace(hour=8), calls=30, answered=10, talk=12, inbound=2))
    assert triggered(stack.health(phone(2))) == {"AVERAGE_TALK_TIME"}
    update(stack, short_call_duration=to_duration(timedelta(seconds=15)))
    assert triggered(stack.health(phone(2))) == {"AVERAGE_TALK_TIME", "SHORT_CALLS"}


def test_invalid_policies_and_masks_are_refused_with_the_field(stack):
    bad = error_of(lambda: update(stack, answer_rate_threshold=1.5, answer_rate_window_days=0,
                                  short_call_duration=to_duration(timedelta(seconds=61)),
                                  factor_weights={"BOGUS": 5, "ANSWER_RATE": 500}))
    assert bad.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(bad)) == {"policy.answer_rate_threshold", "policy.answer_rate_window_days",
                                    "policy.short_call_duration", "policy.factor_weights[BOGUS]",
                                    "policy.factor_weights[ANSWER_RATE]"}
    order = error_of(lambda: update(stack, label_fresh_for=to_duration(timedelta(days=40))))
    assert "policy.label_fresh_for" in violations(order)
    for path in ("tenant_id", "score", ""):
        request = spb.UpdateScoringPolicyRequest(update_mask=FieldMask(paths=[path] if path else []))
        refused = error_of(lambda request=request: stack.scoring.UpdateScoringPolicy(request, metadata=A))
        assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
    # Nothing was stored by any of them.
    policy = stack.scoring.GetScoringPolicy(spb.GetScoringPolicyRequest(), metadata=A).policy
    assert policy.answer_rate_threshold == 0.08 and policy.label_fresh_for.seconds == 7 * 86400


def test_a_retried_update_returns_the_first_answer(stack):
    stack.create_numbers(phone(1))
    first = update(stack, request_id="r-1", complaint_threshold=2)
    again = update(stack, request_id="r-1", complaint_threshold=2)
    assert again == first
    update(stack, complaint_threshold=4)
    # The retry does not undo the later change.
    assert update(stack, request_id="r-1", complaint_threshold=2) == first
    assert stack.scoring.GetScoringPolicy(spb.GetScoringPolicyRequest(), metadata=A).policy.complaint_threshold == 4
    reused = error_of(lambda: update(stack, request_id="r-1", complaint_threshold=5))
    assert reused.code() is grpc.StatusCode.FAILED_PRECONDITION
