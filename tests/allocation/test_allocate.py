"""AllocateNumber and ReleaseAllocation through the real server, one rule at a time.

The replica is fed through the service's own feed followers from fake registry/scoring feeds (conftest.py);
time is a FakeClock. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from nhm.allocation.v1 import allocation_pb2 as pb
from nhm.registry.v1 import registry_pb2
from nhm.type.v1 import types_pb2 as t
from nhm_testing.keys import TENANT_A_KEY, TENANT_B_KEY, auth

# Our numbers: San Francisco (415-867), Los Angeles (213), New York (212), Chicago (312), Toronto (Canada).
SF1, SF2, SF3 = "+14158675301", "+14158675302", "+14158675303"
LA1, NY1, CHI1, TORONTO = "+12132345678", "+12127363101", "+13127861234", "+14169671234"
# Prospects.
SF_PROSPECTS = [f"+1415902{n:04d}" for n in range(100)]
SF_NEIGHBOR = "+14158679999"  # 415-867, like SF1..SF3
LA_PROSPECT, NY_PROSPECT, HONOLULU = "+12134567890", "+12125831234", "+18082345678"
# 12:00 in San Francisco, 15:00 in New York, 10:00 in Honolulu.
NOON_PT = datetime(2026, 1, 6, 20, 0, tzinfo=UTC)
REASON = pb.ExclusionReason


@pytest.fixture(autouse=True)
def midday(clock):
    clock.set(NOON_PT)


def exclusions(message) -> dict[int, int]:
    return {e.reason: e.count for e in message.exclusions}


def seed(allocation, numbers=(SF1,), **policy):
    allocation.upstream.campaign("c1", **policy)
    for phone in numbers:
        allocation.upstream.number(phone)
    allocation.sync()


def test_local_presence_falls_back_tier_by_tier_and_then_fails_closed(allocation, details):
    seed(allocation, [SF1, LA1, NY1, TORONTO], daily_cap_per_number=1)
    answers = [allocation.allocate(SF_PROSPECTS[i], f"call-{i}") for i in range(4)]
    assert [(a.caller_id, a.tier) for a in answers] == [
        (SF1, t.LOCAL_PRESENCE_TIER_AREA_CODE), (LA1, t.LOCAL_PRESENCE_TIER_REGION),
        (NY1, t.LOCAL_PRESENCE_TIER_COUNTRY), (TORONTO, t.LOCAL_PRESENCE_TIER_ANY)]
    # the region pick says why the local number was passed over
    assert exclusions(answers[1].decision) == {REASON.EXCLUSION_REASON_DAILY_CAP: 1}
    assert answers[1].usage.calls_today == 1 and answers[1].usage.daily_cap == 1
    error = allocation.refuse(SF_PROSPECTS[4], "call-4")
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    refusal = details(error, pb.AllocationRefusal)
    assert refusal.candidates_considered == 4 and exclusions(refusal) == {REASON.EXCLUSION_REASON_DAILY_CAP: 4}


def test_tiers_the_campaign_does_not_allow_are_never_used(allocation, details):
    seed(allocation, [NY1], local_presence=registry_pb2.LocalPresencePolicy(
        tiers=[t.LOCAL_PRESENCE_TIER_AREA_CODE, t.LOCAL_PRESENCE_TIER_REGION]))
    refusal = details(allocation.refuse(SF_PROSPECTS[0], "call-1"), pb.AllocationRefusal)
    assert exclusions(refusal) == {REASON.EXCLUSION_REASON_TIER_NOT_ALLOWED: 1}
    assert not refusal.HasField("retry_time")  # caps are not what blocked


def test_numbers_rotate_least_used_today_then_least_recently_used(allocation):
    seed(allocation, [SF1, SF2, SF3])
    picks = [allocation.allocate(SF_PROSPECTS[i], f"call-{i}").caller_id for i in range(9)]
    assert sorted(picks[:3]) == [SF1, SF2, SF3]
    assert picks[3:6] == picks[:3] and picks[6:] == picks[:3]  # least recently used next, evenly spread
    assert {allocation.usage(n).calls_today for n in (SF1, SF2, SF3)} == {3}


def test_sticky_caller_id_is_reused_within_its_ttl_and_then_rotates(allocation, clock):
    seed(allocation, [SF1, SF2], sticky_ttl=timedelta(days=2))
    first = allocation.allocate(SF_PROSPECTS[0], "call-1")
    other = allocation.allocate(SF_PROSPECTS[1], "call-2")
    assert other.caller_id != first.caller_id
    allocation.allocate(SF_PROSPECTS[2], "call-3")  # first.caller_id is now the more used one
    clock.advance(timedelta(hours=3))
    again = allocation.allocate(SF_PROSPECTS[0], "call-4")
    assert again.caller_id == first.caller_id and again.decision.sticky
    assert again.decision.explanation == f"sticky: {first.caller_id} was used for this prospect 3 hours ago"
    clock.advance(timedelta(days=2, hours=1))  # beyond the TTL from the last use
    later = allocation.allocate(SF_PROSPECTS[0], "call-5")
    assert not later.decision.sticky


def test_a_sticky_number_that_became_ineligible_is_passed_over(allocation):
    seed(allocation, [SF1, SF2])
    first = allocation.allocate(SF_PROSPECTS[0], "call-1")
    allocation.upstream.health(first.caller_id, t.HEALTH_STATUS_FLAGGED)
    allocation.sync()
    again = allocation.allocate(SF_PROSPECTS[0], "call-2")
    assert again.caller_id != first.caller_id and not again.decision.sticky
    assert exclusions(again.decision) == {REASON.EXCLUSION_REASON_FLAGGED: 1}


def test_sticky_can_be_turned_off(allocation):
    seed(allocation, [SF1, SF2], sticky_caller_id=False)
    first = allocation.allocate(SF_PROSPECTS[0], "call-1")
    second = allocation.allocate(SF_PROSPECTS[0], "call-2")
    assert second.caller_id != first.caller_id and not second.decision.sticky


def test_a_number_flagged_only_on_other_carriers_serves_this_carrier(allocation, details):
    seed(allocation, [SF1, SF2])
    allocation.upstream.health(SF1, t.HEALTH_STATUS_FLAGGED, carriers={"CARRIER_ATT": t.HEALTH_STATUS_FLAGGED},
                               sources=((t.REPUTATION_SOURCE_HIYA, t.HEALTH_STATUS_FLAGGED),))
    allocation.upstream.health(SF2, t.HEALTH_STATUS_FLAGGED, carriers={"CARRIER_ATT": t.HEALTH_STATUS_FLAGGED},
                               sources=((t.REPUTATION_SOURCE_NOMOROBO, t.HEALTH_STATUS_FLAGGED),))
    allocation.sync()
    unknown_carrier = details(allocation.refuse(SF_PROSPECTS[0], "call-1"), pb.AllocationRefusal)
    assert exclusions(unknown_carrier) == {REASON.EXCLUSION_REASON_FLAGGED: 2}
    verizon = allocation.allocate(SF_PROSPECTS[0], "call-2", carrier=t.CARRIER_VERIZON)
    assert verizon.caller_id == SF1  # SF2's app label applies on every carrier
    assert exclusions(verizon.decision).get(REASON.EXCLUSION_REASON_FLAGGED, 0) <= 1
    att = details(allocation.refuse(SF_PROSPECTS[1], "call-3", carrier=t.CARRIER_ATT), pb.AllocationRefusal)
    assert exclusions(att) == {REASON.EXCLUSION_REASON_FLAGGED: 2}


def test_never_the_prospects_own_area_code_and_exchange(allocation, details):
    seed(allocation, [SF1])
    refusal = details(allocation.refuse(SF_NEIGHBOR, "call-1"), pb.AllocationRefusal)
    assert exclusions(refusal) == {REASON.EXCLUSION_REASON_NEIGHBOR_SPOOFING: 1}
    allocation.upstream.number(LA1)
    allocation.sync()
    answer = allocation.allocate(SF_NEIGHBOR, "call-2")
    assert (answer.caller_id, answer.tier) == (LA1, t.LOCAL_PRESENCE_TIER_REGION)
    assert allocation.allocate(SF_PROSPECTS[0], "call-3").caller_id == SF1  # a 415-902 prospect is fine


def test_the_calling_window_is_the_prospects_local_time(allocation, clock, details):
    seed(allocation, [SF1, NY1])
    clock.set(datetime(2026, 1, 6, 15, 30, tzinfo=UTC))  # 10:30 in New York, 07:30 in California
    assert allocation.allocate(NY_PROSPECT, "call-ny").caller_id == NY1
    error = allocation.refuse(LA_PROSPECT, "call-la")
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    restriction = details(error, pb.CallingRestriction)
    assert restriction.reason == pb.CALLING_RESTRICTION_REASON_OUTSIDE_CALLING_WINDOW
    assert restriction.time_zone == "America/Los_Angeles"
    assert restriction.allowed_time.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 6, 16, 0, tzinfo=UTC)
    clock.set(datetime(2026, 1, 6, 19, 0, tzinfo=UTC))  # 09:00 in Honolulu, but the window opened at 08:00
    assert allocation.allocate(HONOLULU, "call-hi").caller_id in (SF1, NY1)


def test_the_calling_window_follows_a_daylight_saving_change(allocation, clock, details):
    seed(allocation, [NY1])
    clock.set(datetime(2026, 3, 7, 12, 30, tzinfo=UTC))  # Saturday 07:30 EST
    restriction = details(allocation.refuse(NY_PROSPECT, "call-1"), pb.CallingRestriction)
    assert restriction.allowed_time.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 7, 13, 0, tzinfo=UTC)
    clock.set(datetime(2026, 3, 8, 12, 30, tzinfo=UTC))  # Sunday, same UTC time, 08:30 EDT
    assert allocation.allocate(NY_PROSPECT, "call-2").caller_id == NY1


def test_daily_caps_reset_once_at_local_midnight_across_a_daylight_saving_change(allocation, clock, details):
    seed(allocation, [NY1], daily_cap_per_number=2, calling_window_start=(0, 0), calling_window_end=(0, 0))
    prospects = iter(f"+1617456{n:04d}" for n in range(100))
    clock.set(datetime(2026, 3, 8, 4, 30, tzinfo=UTC))  # 23:30 EST, Saturday
    for i in range(2):
        allocation.allocate(next(prospects), f"sat-{i}")
    refusal = details(allocation.refuse(next(prospects), "sat-x"), pb.AllocationRefusal)
    assert refusal.retry_time.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # midnight EST
    clock.set(datetime(2026, 3, 8, 5, 0, tzinfo=UTC))
    answers = [allocation.allocate(next(prospects), f"sun-{i}") for i in range(2)]
    assert [a.usage.calls_today for a in answers] == [1, 2]
    clock.set(datetime(2026, 3, 9, 3, 59, tzinfo=UTC))  # 23:59 EDT Sunday: still the same (23-hour) day
    refusal = details(allocation.refuse(next(prospects), "sun-x"), pb.AllocationRefusal)
    assert refusal.retry_time.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)  # midnight EDT
    clock.set(datetime(2026, 3, 9, 4, 0, tzinfo=UTC))
    assert allocation.allocate(next(prospects), "mon-0").usage.calls_today == 1


def test_a_refusal_counts_every_member_of_a_mixed_pool_under_its_own_reason(allocation, details):
    """The refusal's tally comes from the database in kinds of alike members (repository.member_kinds); it must
    say what judging each member one by one would: here with every kind of reason in one pool."""
    up = allocation.upstream
    up.campaign("c1", daily_cap_per_number=2, local_presence=registry_pb2.LocalPresencePolicy(
        tiers=[t.LOCAL_PRESENCE_TIER_AREA_CODE, t.LOCAL_PRESENCE_TIER_REGION]))
    sf = [f"+1415555{n:04d}" for n in range(10, 24)]
    for phone in [*sf, SF1, LA1, NY1, CHI1]:
        up.number(phone)
    for phone in sf[2:4]:
        up.number(phone, state=t.LIFECYCLE_STATE_QUARANTINED)
    for phone in sf[4:6]:
        up.number(phone, state=t.LIFECYCLE_STATE_WARMING, warmup_caps=(1, 5), warmup_start=NOON_PT)
    up.health(sf[6], t.HEALTH_STATUS_FLAGGED)
    up.health(sf[7], t.HEALTH_STATUS_BLOCKED)
    up.health(sf[8], t.HEALTH_STATUS_AT_RISK)  # the campaign does not allow At Risk numbers
    allocation.sync()
    # 7 healthy SF numbers, SF1 and LA1 take 2 calls each, the two warming ones 1: 20 calls, then refusals.
    answers = [allocation.allocate(SF_PROSPECTS[n], f"fill-{n}") for n in range(20)]
    assert len({a.caller_id for a in answers}) == 11
    refusal = details(allocation.refuse(SF_NEIGHBOR, "last"), pb.AllocationRefusal)  # 415-867, like SF1
    assert refusal.candidates_considered == len(sf) + 4
    assert exclusions(refusal) == {
        REASON.EXCLUSION_REASON_DAILY_CAP: 7 + 1, REASON.EXCLUSION_REASON_WARMUP_CAP: 2,
        REASON.EXCLUSION_REASON_QUARANTINED: 2, REASON.EXCLUSION_REASON_FLAGGED: 1,
        REASON.EXCLUSION_REASON_BLOCKED: 1, REASON.EXCLUSION_REASON_AT_RISK: 1,
        REASON.EXCLUSION_REASON_NEIGHBOR_SPOOFING: 1, REASON.EXCLUSION_REASON_TIER_NOT_ALLOWED: 2}
    assert refusal.HasField("retry_time")  # caps are among the reasons: tomorrow


def test_hourly_caps_refuse_until_the_next_hour(allocation, clock, details):
    seed(allocation, [SF1], hourly_cap_per_number=1)
    allocation.allocate(SF_PROSPECTS[0], "call-1")
    refusal = details(allocation.refuse(SF_PROSPECTS[1], "call-2"), pb.AllocationRefusal)
    assert exclusions(refusal) == {REASON.EXCLUSION_REASON_HOURLY_CAP: 1}
    assert refusal.retry_time.ToDatetime(tzinfo=UTC) == NOON_PT + timedelta(hours=1)
    clock.advance(timedelta(hours=1))
    assert allocation.allocate(SF_PROSPECTS[1], "call-3").usage.calls_this_hour == 1


def test_per_prospect_limits_per_day_and_per_week(allocation, clock, details):
    seed(allocation, [SF1], max_calls_per_prospect_per_day=2, max_calls_per_prospect_per_week=3)
    prospect = SF_PROSPECTS[0]
    allocation.allocate(prospect, "call-1")
    clock.advance(timedelta(hours=1))
    allocation.allocate(prospect, "call-2")
    error = allocation.refuse(prospect, "call-3")
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    daily = details(error, pb.CallingRestriction)
    assert daily.reason == pb.CALLING_RESTRICTION_REASON_PROSPECT_DAILY_LIMIT
    assert daily.allowed_time.ToDatetime(tzinfo=UTC) == NOON_PT + timedelta(hours=24)
    assert allocation.allocate(SF_PROSPECTS[1], "other-prospect").caller_id == SF1  # others are unaffected
    clock.set(NOON_PT + timedelta(hours=24))
    allocation.allocate(prospect, "call-4")
    clock.advance(timedelta(days=1))
    weekly = details(allocation.refuse(prospect, "call-5"), pb.CallingRestriction)
    assert weekly.reason == pb.CALLING_RESTRICTION_REASON_PROSPECT_WEEKLY_LIMIT
    assert weekly.allowed_time.ToDatetime(tzinfo=UTC) == NOON_PT + timedelta(days=7)


def test_warming_numbers_take_their_warmup_steps_cap(allocation, clock, details):
    allocation.upstream.campaign("c1")
    allocation.upstream.number(SF1, state=t.LIFECYCLE_STATE_WARMING, warmup_caps=(2, 3),
                               warmup_step=timedelta(days=1), warmup_start=NOON_PT - timedelta(hours=1))
    allocation.sync()
    answers = [allocation.allocate(SF_PROSPECTS[i], f"d1-{i}") for i in range(2)]
    assert [(a.usage.calls_today, a.usage.daily_cap) for a in answers] == [(1, 2), (2, 2)]
    refusal = details(allocation.refuse(SF_PROSPECTS[2], "d1-x"), pb.AllocationRefusal)
    assert exclusions(refusal) == {REASON.EXCLUSION_REASON_WARMUP_CAP: 1}
    clock.advance(timedelta(days=1))
    answers = [allocation.allocate(SF_PROSPECTS[10 + i], f"d2-{i}") for i in range(3)]
    assert answers[-1].usage.daily_cap == 3
    assert exclusions(details(allocation.refuse(SF_PROSPECTS[20], "d2-x"), pb.AllocationRefusal)) == {
        REASON.EXCLUSION_REASON_WARMUP_CAP: 1}


def test_fail_closed_says_how_many_numbers_were_excluded_for_each_reason(allocation, details):
    upstream = allocation.upstream
    upstream.campaign("c1", daily_cap_per_number=1)
    upstream.number(SF1)
    upstream.number(SF2, state=t.LIFECYCLE_STATE_QUARANTINED)
    upstream.number(SF3, state=t.LIFECYCLE_STATE_RESTING)
    upstream.number(LA1)
    upstream.number(NY1)
    upstream.number(CHI1)
    upstream.number(TORONTO, state=t.LIFECYCLE_STATE_RETIRED)
    upstream.health(LA1, t.HEALTH_STATUS_FLAGGED)
    upstream.health(NY1, t.HEALTH_STATUS_BLOCKED)
    upstream.health(CHI1, t.HEALTH_STATUS_AT_RISK)
    allocation.sync()
    allocation.allocate(SF_PROSPECTS[0], "call-1")
    error = allocation.refuse(SF_PROSPECTS[1], "call-2")
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    refusal = details(error, pb.AllocationRefusal)
    assert refusal.campaign_id == "c1" and refusal.candidates_considered == 7
    assert exclusions(refusal) == {
        REASON.EXCLUSION_REASON_DAILY_CAP: 1, REASON.EXCLUSION_REASON_QUARANTINED: 1,
        REASON.EXCLUSION_REASON_RESTING: 1, REASON.EXCLUSION_REASON_RETIRED: 1, REASON.EXCLUSION_REASON_FLAGGED: 1,
        REASON.EXCLUSION_REASON_BLOCKED: 1, REASON.EXCLUSION_REASON_AT_RISK: 1}
    # the next cap reset: midnight in the campaign's time zone (America/New_York by default)
    assert refusal.retry_time.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 7, 5, 0, tzinfo=UTC)
    assert "1 daily cap" in error.details()
    # At Risk numbers serve a campaign that allows them
    upstream.campaign("c1", daily_cap_per_number=1, allow_at_risk=True)
    allocation.sync()
    assert allocation.allocate(SF_PROSPECTS[2], "call-3").caller_id == CHI1


def test_a_campaign_without_numbers_or_unknown_fails_with_the_reason(allocation, details):
    seed(allocation, [])
    refusal = details(allocation.refuse(SF_PROSPECTS[0], "call-1"), pb.AllocationRefusal)
    assert refusal.candidates_considered == 0 and not refusal.exclusions
    assert allocation.refuse(SF_PROSPECTS[0], "call-2", campaign="nope").code() is grpc.StatusCode.NOT_FOUND


def test_a_campaign_may_opt_in_to_a_fallback_caller_id(allocation):
    seed(allocation, [SF1], daily_cap_per_number=1,
         fallback_behavior=registry_pb2.FALLBACK_BEHAVIOR_FALLBACK_NUMBER, fallback_phone_number=NY1)
    allocation.allocate(SF_PROSPECTS[0], "call-1")
    answer = allocation.allocate(SF_PROSPECTS[1], "call-2")
    assert (answer.caller_id, answer.tier) == (NY1, t.LOCAL_PRESENCE_TIER_FALLBACK)
    assert answer.decision.explanation.startswith("fallback:")
    assert exclusions(answer.decision) == {REASON.EXCLUSION_REASON_DAILY_CAP: 1}


def test_the_same_call_id_returns_the_same_answer_and_counts_once(allocation, clock, details):
    seed(allocation, [SF1, SF2])
    first = allocation.allocate(SF_PROSPECTS[0], "call-1")
    clock.advance(timedelta(minutes=5))
    assert allocation.allocate(SF_PROSPECTS[0], "call-1") == first
    assert allocation.usage(first.caller_id).calls_today == 1
    error = allocation.refuse(SF_PROSPECTS[1], "call-1")  # same id, other parameters
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION and "call_id" in error.details()
    clock.set(datetime(2026, 1, 7, 6, 0, tzinfo=UTC))  # 22:00 in California: a retry still gets its answer
    assert allocation.allocate(SF_PROSPECTS[0], "call-1") == first


def test_one_call_id_sent_concurrently_is_allocated_once(allocation):
    seed(allocation, [SF1, SF2, SF3])
    answers, errors = [], []

    def send():
        try:
            answers.append(allocation.allocate(SF_PROSPECTS[0], "call-dup"))
        except grpc.RpcError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(answers) == 4 and all(a == answers[0] for a in answers)
    assert sum(allocation.usage(n).calls_today for n in (SF1, SF2, SF3)) == 1


def test_release_refunds_the_caps_once(allocation, details):
    seed(allocation, [SF1], daily_cap_per_number=1, max_calls_per_prospect_per_day=1)
    answer = allocation.allocate(SF_PROSPECTS[0], "call-1")
    allocation.refuse(SF_PROSPECTS[1], "call-2")
    stub, meta = allocation.stub, auth(TENANT_A_KEY)
    released = stub.ReleaseAllocation(pb.ReleaseAllocationRequest(call_id="call-1"), metadata=meta)
    assert released.released and released.usage.calls_today == 0 and released.usage.phone_number == answer.caller_id
    again = stub.ReleaseAllocation(pb.ReleaseAllocationRequest(call_id="call-1"), metadata=meta)
    assert not again.released and again.usage.calls_today == 0
    # the cap and the prospect's limit are free again
    assert allocation.allocate(SF_PROSPECTS[0], "call-3").usage.calls_today == 1
    assert allocation.usage(SF1).calls_today == 1
    with pytest.raises(grpc.RpcError) as missing:
        stub.ReleaseAllocation(pb.ReleaseAllocationRequest(call_id="never"), metadata=meta)
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


def test_a_retried_release_gets_the_first_answer(allocation):
    """A release whose reply was lost is resent with the same request id: it still says released, refunds once."""
    seed(allocation, [SF1], daily_cap_per_number=5)
    allocation.allocate(SF_PROSPECTS[0], "call-1")
    allocation.allocate(SF_PROSPECTS[1], "call-2")
    stub, meta = allocation.stub, auth(TENANT_A_KEY)
    request = pb.ReleaseAllocationRequest(call_id="call-1", request_id="release-1")
    first, retry = (stub.ReleaseAllocation(request, metadata=meta) for _ in range(2))
    assert first.released and retry.released
    assert allocation.usage(SF1).calls_today == 1
    other = stub.ReleaseAllocation(pb.ReleaseAllocationRequest(call_id="call-1", request_id="release-2"),
                                   metadata=meta)
    assert not other.released
    with pytest.raises(grpc.RpcError) as reused:  # one request id, one release
        stub.ReleaseAllocation(pb.ReleaseAllocationRequest(call_id="call-2", request_id="release-1"), metadata=meta)
    assert reused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert allocation.usage(SF1).calls_today == 1


def test_tenants_never_see_each_others_campaigns_numbers_or_calls(allocation):
    seed(allocation, [SF1])
    allocation.allocate(SF_PROSPECTS[0], "call-1")
    assert allocation.refuse(SF_PROSPECTS[1], "call-2", key=TENANT_B_KEY).code() is grpc.StatusCode.NOT_FOUND
    stub, meta = allocation.stub, auth(TENANT_B_KEY)
    for call in (
        lambda: stub.ReleaseAllocation(pb.ReleaseAllocationRequest(call_id="call-1"), metadata=meta),
        lambda: stub.GetNumberUsage(pb.GetNumberUsageRequest(phone_number=SF1), metadata=meta),
        lambda: stub.GetCampaignUsage(pb.GetCampaignUsageRequest(campaign_id="c1"), metadata=meta),
        lambda: stub.GetCapacityPlan(pb.GetCapacityPlanRequest(campaign_id="c1"), metadata=meta),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    # globex may reuse acme's call id: ids are per tenant
    allocation.upstream.campaign("c9", tenant="globex")
    allocation.upstream.number(SF2, campaigns=("c9",), tenant="globex")
    allocation.sync()
    assert allocation.allocate(SF_PROSPECTS[0], "call-1", campaign="c9", key=TENANT_B_KEY).caller_id == SF2


def test_bad_requests_name_the_field(allocation, details):
    from google.rpc import error_details_pb2

    seed(allocation, [SF1])
    cases = [({"destination": "4155550123"}, "destination"), ({"destination": "+14155550123"}, "destination"),
             ({"call_id": ""}, "call_id"), ({"campaign": ""}, "campaign_id"), ({"carrier": 42}, "destination_carrier")]
    for overrides, field in cases:
        arguments = {"destination": SF_PROSPECTS[0], "call_id": "call-1", **overrides}
        error = allocation.refuse(arguments.pop("destination"), arguments.pop("call_id"), **arguments)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field in [v.field for v in details(error, error_details_pb2.BadRequest).field_violations]
    assert allocation.usage(SF1).calls_today == 0
