"""Lifecycle transitions: the whole table (allowed and refused), what each state needs, the history."""

from __future__ import annotations

import itertools
from datetime import timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from nhm.registry.v1 import registry_pb2 as pb
from nhm.type.v1 import types_pb2 as types

SF = "+14152220123"
ACTIVE, QUARANTINED, RESTING, WARMING, RETIRED = (
    types.LIFECYCLE_STATE_ACTIVE, types.LIFECYCLE_STATE_QUARANTINED, types.LIFECYCLE_STATE_RESTING,
    types.LIFECYCLE_STATE_WARMING, types.LIFECYCLE_STATE_RETIRED)
STATES = [ACTIVE, QUARANTINED, RESTING, WARMING, RETIRED]
ALLOWED = {
    ACTIVE: {QUARANTINED, RESTING, WARMING, RETIRED},
    WARMING: {ACTIVE, QUARANTINED, RESTING, RETIRED},
    QUARANTINED: {ACTIVE, RESTING, WARMING, RETIRED},
    RESTING: {RESTING, WARMING, RETIRED},
    RETIRED: set(),
}
# How to bring a new (ACTIVE) number into each state.
PATHS = {ACTIVE: [], QUARANTINED: [QUARANTINED], RESTING: [RESTING], WARMING: [WARMING], RETIRED: [RETIRED]}


def in_days(clock, days):
    ts = Timestamp()
    ts.FromDatetime(clock.now() + timedelta(days=days))
    return ts


def move(registry, clock, target, number=SF, **extra):
    if target == RESTING and "rest_until" not in extra:
        extra["rest_until"] = in_days(clock, 14)
    request = pb.TransitionNumberRequest(phone_number=number, target_state=target, reason="test", **extra)
    return registry.stub.TransitionNumber(request, metadata=registry.a)


def test_every_transition_of_the_table_is_allowed_or_refused(registry, clock):
    """One number per (from, to) pair, on one server."""
    for i, (source, target) in enumerate(itertools.product(STATES, STATES)):
        number = registry.phone(i)
        registry.create(number)
        for step in PATHS[source]:
            move(registry, clock, step, number)
        if target in ALLOWED[source]:
            reply = move(registry, clock, target, number)
            assert reply.number.state == target, (source, target)
            assert (reply.transition.from_state, reply.transition.to_state) == (source, target)
        else:
            error = registry.error(lambda number=number, target=target: move(registry, clock, target, number))
            assert error.code() is grpc.StatusCode.FAILED_PRECONDITION, (source, target)
            assert registry.reason(error) == "TRANSITION_NOT_ALLOWED"
            got = registry.stub.GetNumber(pb.GetNumberRequest(phone_number=number), metadata=registry.a).number
            assert got.state == source


def test_retired_is_final_and_rested_numbers_warm_first(registry, clock):
    registry.create(SF)
    move(registry, clock, RESTING)
    error = registry.error(lambda: move(registry, clock, ACTIVE))
    assert "WARMING" in error.details()
    move(registry, clock, RETIRED)
    error = registry.error(lambda: move(registry, clock, ACTIVE))
    assert "final" in error.details()


def test_resting_needs_a_future_end_and_warming_gets_a_plan(registry, clock):
    registry.create(SF)
    for extra, field in [({"rest_until": None}, "rest_until"), ({"rest_until": in_days(clock, -1)}, "rest_until"),
                         ({"rest_until": in_days(clock, 400)}, "rest_until")]:
        request = pb.TransitionNumberRequest(phone_number=SF, target_state=RESTING, **{
            k: v for k, v in extra.items() if v is not None})
        error = registry.error(lambda request=request: registry.stub.TransitionNumber(request, metadata=registry.a))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and field in registry.violations(error)
    error = registry.error(lambda: move(registry, clock, QUARANTINED, rest_until=in_days(clock, 3)))
    assert "rest_until" in registry.violations(error)
    error = registry.error(lambda: move(registry, clock, QUARANTINED, warmup_plan=pb.WarmupPlan(daily_caps=[5])))
    assert "warmup_plan" in registry.violations(error)
    error = registry.error(lambda: move(registry, clock, types.LIFECYCLE_STATE_UNSPECIFIED))
    assert "target_state" in registry.violations(error)

    resting = move(registry, clock, RESTING, rest_until=in_days(clock, 14)).number
    assert resting.rest_until == in_days(clock, 14)
    longer = move(registry, clock, RESTING, rest_until=in_days(clock, 30)).number  # escalation: a longer rest
    assert longer.rest_until == in_days(clock, 30)
    clock.advance(timedelta(days=30))
    warming = move(registry, clock, WARMING).number
    assert not warming.HasField("rest_until")
    assert list(warming.warmup_plan.daily_caps) == [20, 40, 60, 100]
    assert warming.warmup_plan.step_duration == Duration(seconds=3 * 86400)
    assert warming.warmup_start_time == in_days(clock, 0)
    active = move(registry, clock, ACTIVE).number
    assert not active.HasField("warmup_plan") and not active.HasField("warmup_start_time")
    custom = move(registry, clock, WARMING, warmup_plan=pb.WarmupPlan(daily_caps=[10, 30])).number
    assert list(custom.warmup_plan.daily_caps) == [10, 30] and custom.warmup_plan.step_duration.seconds == 3 * 86400


def test_history_is_recorded_newest_first_with_actor_reason_and_time(registry, clock):
    registry.create(SF)
    clock.advance(timedelta(hours=1))
    move(registry, clock, QUARANTINED)
    clock.advance(timedelta(hours=1))
    service = pb.TransitionNumberRequest(phone_number=SF, target_state=RESTING, reason="flagged by Hiya",
                                         rest_until=in_days(clock, 14))
    registry.stub.TransitionNumber(service, metadata=(*registry.service, ("x-nhm-tenant-id", "acme")))
    first = registry.stub.ListNumberTransitions(pb.ListNumberTransitionsRequest(phone_number=SF, page_size=2),
                                                metadata=registry.a)
    assert [(t.from_state, t.to_state) for t in first.transitions] == [(QUARANTINED, RESTING), (ACTIVE, QUARANTINED)]
    assert first.transitions[0].actor == "service:service" and first.transitions[0].reason == "flagged by Hiya"
    assert first.transitions[1].actor == "tenant:static"
    assert first.transitions[0].transition_time == in_days(clock, 0)
    rest = registry.stub.ListNumberTransitions(pb.ListNumberTransitionsRequest(
        phone_number=SF, page_size=2, page_token=first.next_page_token), metadata=registry.a)
    assert [t.to_state for t in rest.transitions] == [ACTIVE] and not rest.next_page_token


def test_retire_leaves_every_campaign_and_keeps_answering_callbacks(registry, clock):
    registry.create(SF, inbound_enabled=True)
    campaigns = [registry.campaign(f"c{i}").id for i in range(2)]
    for campaign_id in campaigns:
        registry.stub.AssignNumbers(pb.AssignNumbersRequest(campaign_id=campaign_id, phone_numbers=[SF]),
                                    metadata=registry.a)
    before = registry.stub.GetNumber(pb.GetNumberRequest(phone_number=SF), metadata=registry.a).number
    assert sorted(before.campaign_ids) == sorted(campaigns)
    error = registry.error(lambda: registry.stub.RetireNumber(pb.RetireNumberRequest(
        phone_number=SF, etag="stale"), metadata=registry.a))
    assert error.code() is grpc.StatusCode.ABORTED
    retired = registry.stub.RetireNumber(pb.RetireNumberRequest(phone_number=SF, reason="burned",
                                                                etag=before.etag), metadata=registry.a).number
    assert retired.state == RETIRED and list(retired.campaign_ids) == []
    assert retired.inbound_required_until == in_days(clock, 30)
    for campaign_id in campaigns:
        campaign = registry.stub.GetCampaign(pb.GetCampaignRequest(campaign_id=campaign_id), metadata=registry.a)
        assert campaign.campaign.number_count == 0
    error = registry.error(lambda: registry.stub.AssignNumbers(pb.AssignNumbersRequest(
        campaign_id=campaigns[0], phone_numbers=[SF]), metadata=registry.a))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "phone_numbers[0]" in registry.violations(error)
    error = registry.error(lambda: registry.stub.RetireNumber(pb.RetireNumberRequest(phone_number=SF),
                                                              metadata=registry.a))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    history = registry.stub.ListNumberTransitions(pb.ListNumberTransitionsRequest(phone_number=SF),
                                                  metadata=registry.a).transitions
    assert (history[0].to_state, history[0].reason) == (RETIRED, "burned")


@pytest.mark.parametrize("key", ["a", "service"])
def test_transition_of_an_unknown_number_is_not_found(registry, clock, key):
    metadata = registry.a if key == "a" else (*registry.service, ("x-nhm-tenant-id", "acme"))
    error = registry.error(lambda: registry.stub.TransitionNumber(pb.TransitionNumberRequest(
        phone_number=SF, target_state=QUARANTINED), metadata=metadata))
    assert error.code() is grpc.StatusCode.NOT_FOUND
