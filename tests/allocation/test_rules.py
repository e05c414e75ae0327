"""The allocation rules as pure functions: no database, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from nhm.registry.v1 import registry_pb2
from nhm.type.v1 import types_pb2
from nhm_allocation.capacity import AreaCapacity, numbers_needed, plan, split_volume
from nhm_allocation.eligibility import (
    Call,
    Candidate,
    Place,
    Usage,
    daily_cap,
    exclusion,
    gate,
    preference,
    tier_for,
)
from nhm_allocation.enums import Carrier, Gate, Health, Reason, Restriction, State, Tier
from nhm_allocation.feed_conversion import policy_from_proto
from nhm_allocation.health_view import HealthView, carrier_from_key, health_view
from nhm_allocation.periods import day_start, epoch, hour_start, next_day_start
from nhm_allocation.policy import CallingPolicy, TimeOfDay, WarmupPlan
from nhm_allocation.prospect_rules import restriction

NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")
NOON_NY = datetime(2026, 1, 6, 17, 0, tzinfo=UTC)  # 12:00 in New York, 09:00 in Los Angeles
SF = Place("US", "415", "867", "CA")
SF_OTHER_EXCHANGE = Place("US", "415", "555", "CA")
LA_CITY = Place("US", "213", "555", "CA")
NYC = Place("US", "212", "736", "NY")


def call(policy=None, destination=SF, carrier=Carrier.UNSPECIFIED, now=NOON_NY):
    policy = policy or CallingPolicy()
    return Call(now, policy, destination, carrier, epoch(day_start(now, policy.reset_zone)), epoch(hour_start(now)))


def candidate(place=SF_OTHER_EXCHANGE, state=State.ACTIVE, health=None, usage=None, **kwargs):
    return Candidate("+14155550100", place, state, health=health or HealthView(), usage=usage or Usage(), **kwargs)


# --- policy ------------------------------------------------------------------------------------------------


def test_an_empty_policy_takes_every_documented_default():
    policy = policy_from_proto(registry_pb2.CallingPolicy())
    assert policy == CallingPolicy()
    assert (policy.daily_cap, policy.hourly_cap, policy.max_per_prospect_day, policy.max_per_prospect_week) == (
        100, 50, 3, 7)
    assert policy.tiers == (Tier.AREA_CODE, Tier.REGION, Tier.COUNTRY, Tier.ANY)
    assert (str(policy.window_start), str(policy.window_end), policy.cap_reset_zone) == (
        "08:00", "21:00", "America/New_York")
    assert policy.sticky and policy.sticky_ttl == timedelta(days=30) and not policy.allow_at_risk
    assert policy.fallback_number == ""


def test_policy_fields_set_on_the_campaign_win_and_fallback_needs_both_fields():
    message = registry_pb2.CallingPolicy(
        daily_cap_per_number=0, allow_at_risk=True, cap_reset_time_zone="America/Chicago",
        fallback_behavior=registry_pb2.FALLBACK_BEHAVIOR_FALLBACK_NUMBER, fallback_phone_number="+12127363100",
        local_presence=registry_pb2.LocalPresencePolicy(tiers=[types_pb2.LOCAL_PRESENCE_TIER_REGION]))
    policy = policy_from_proto(message)
    assert policy.daily_cap == 0 and policy.allow_at_risk and policy.cap_reset_zone == "America/Chicago"
    assert policy.tiers == (Tier.REGION,) and policy.fallback_number == "+12127363100"
    message.fallback_behavior = registry_pb2.FALLBACK_BEHAVIOR_FAIL_CLOSED
    assert policy_from_proto(message).fallback_number == ""
    message.cap_reset_time_zone = "Not/AZone"
    assert policy_from_proto(message).cap_reset_zone == "America/New_York"


# --- periods -----------------------------------------------------------------------------------------------


def test_the_cap_day_follows_local_midnight_and_is_23_hours_on_the_spring_change():
    before = datetime(2026, 3, 8, 4, 59, tzinfo=UTC)  # 23:59 EST on March 7
    after = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST on March 8
    assert day_start(before, NY) == datetime(2026, 3, 7, 5, 0, tzinfo=UTC)
    assert day_start(after, NY) == after
    assert next_day_start(after, NY) - after == timedelta(hours=23)  # clocks jump 02:00 -> 03:00
    assert next_day_start(datetime(2026, 11, 1, 12, tzinfo=UTC), NY) - datetime(2026, 11, 1, 4, tzinfo=UTC) == \
        timedelta(hours=25)


# --- calling window and per-prospect limits ----------------------------------------------------------------


def test_the_window_is_the_prospects_local_time():
    policy = CallingPolicy()
    assert restriction(policy, NY, "America/New_York", NOON_NY, []) is None
    early = datetime(2026, 1, 6, 15, 30, tzinfo=UTC)  # 10:30 NY, 07:30 LA
    assert restriction(policy, NY, "America/New_York", early, []) is None
    blocked = restriction(policy, LA, "America/Los_Angeles", early, [])
    assert blocked.reason is Restriction.OUTSIDE_CALLING_WINDOW
    assert blocked.allowed_time == datetime(2026, 1, 6, 16, 0, tzinfo=UTC)  # 08:00 LA
    late = datetime(2026, 1, 7, 2, 30, tzinfo=UTC)  # 21:30 NY: next opening is tomorrow 08:00
    assert restriction(policy, NY, "America/New_York", late, []).allowed_time == datetime(2026, 1, 7, 13, 0,
                                                                                          tzinfo=UTC)


def test_the_window_opening_moves_with_daylight_saving_time():
    policy = CallingPolicy()
    saturday_early = datetime(2026, 3, 7, 12, 30, tzinfo=UTC)  # 07:30 EST
    assert restriction(policy, NY, "", saturday_early, []).allowed_time == datetime(2026, 3, 7, 13, 0, tzinfo=UTC)
    sunday_same_utc = datetime(2026, 3, 8, 12, 30, tzinfo=UTC)  # 08:30 EDT: allowed
    assert restriction(policy, NY, "", sunday_same_utc, []) is None
    sunday_early = datetime(2026, 3, 8, 11, 30, tzinfo=UTC)  # 07:30 EDT: opens at 12:00 UTC, not 13:00
    assert restriction(policy, NY, "", sunday_early, []).allowed_time == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def test_windows_across_midnight_and_all_day_windows():
    overnight = CallingPolicy(window_start=TimeOfDay(22, 0), window_end=TimeOfDay(2, 0))
    assert restriction(overnight, NY, "", datetime(2026, 1, 7, 4, 0, tzinfo=UTC), []) is None  # 23:00
    assert restriction(overnight, NY, "", NOON_NY, []).allowed_time == datetime(2026, 1, 7, 3, 0, tzinfo=UTC)
    all_day = CallingPolicy(window_start=TimeOfDay(0, 0), window_end=TimeOfDay(0, 0))
    assert restriction(all_day, NY, "", datetime(2026, 1, 7, 8, 0, tzinfo=UTC), []) is None  # 03:00


def test_per_prospect_limits_say_when_the_oldest_call_ages_out():
    policy = CallingPolicy()
    calls = [NOON_NY - timedelta(hours=h) for h in (3, 2, 1)]  # 09:00, 10:00, 11:00 in New York
    limited = restriction(policy, NY, "America/New_York", NOON_NY, calls)
    assert limited.reason is Restriction.PROSPECT_DAILY_LIMIT
    assert limited.allowed_time == NOON_NY - timedelta(hours=3) + timedelta(hours=24)
    assert restriction(policy, NY, "", NOON_NY, calls[1:]) is None
    week = [NOON_NY - timedelta(days=d) for d in (6, 5, 4, 3, 2, 1.5, 1.2)]
    weekly = restriction(policy, NY, "", NOON_NY, week)
    assert weekly.reason is Restriction.PROSPECT_WEEKLY_LIMIT
    assert weekly.allowed_time == NOON_NY - timedelta(days=6) + timedelta(days=7)
    assert restriction(CallingPolicy(max_per_prospect_day=0, max_per_prospect_week=0), NY, "", NOON_NY,
                       calls + week) is None


def test_a_limit_that_lifts_at_night_allows_the_call_when_the_window_opens():
    calls = [datetime(2026, 1, 6, 1, 0, tzinfo=UTC) + timedelta(minutes=m) for m in (0, 10, 20)]  # 20:00 NY
    now = datetime(2026, 1, 6, 1, 50, tzinfo=UTC)
    limited = restriction(CallingPolicy(), NY, "", now, calls)
    assert limited.reason is Restriction.PROSPECT_DAILY_LIMIT
    # the first call ages out at 20:00 NY the next day, inside the window
    assert limited.allowed_time == datetime(2026, 1, 7, 1, 0, tzinfo=UTC)
    late_calls = [datetime(2026, 1, 6, 3, 0, tzinfo=UTC)] * 3  # 22:00 NY (a permissive window earlier)
    limited = restriction(CallingPolicy(), NY, "", datetime(2026, 1, 6, 4, 0, tzinfo=UTC), late_calls)
    assert limited.allowed_time == datetime(2026, 1, 7, 13, 0, tzinfo=UTC)  # 22:00 is outside: 08:00 next


# --- health -------------------------------------------------------------------------------------------------


def test_carrier_keys_are_read_whatever_their_spelling():
    assert [carrier_from_key(k) for k in ("CARRIER_ATT", "att", "AT&T", "T-Mobile", "verizon", "US Cellular")] == [
        Carrier.ATT, Carrier.ATT, Carrier.ATT, Carrier.TMOBILE, Carrier.VERIZON, Carrier.OTHER]


def test_a_number_flagged_only_on_one_carrier_is_usable_on_the_others():
    view = health_view(Health.FLAGGED, {"CARRIER_ATT": Health.FLAGGED}, [(4, Health.FLAGGED)], False)  # Hiya
    assert view.for_carrier(Carrier.ATT) is Health.FLAGGED
    assert view.for_carrier(Carrier.VERIZON) is Health.HEALTHY
    assert view.for_carrier(Carrier.UNSPECIFIED) is Health.FLAGGED
    assert gate(State.ACTIVE, view, False) is Gate.CARRIER


def test_app_labels_and_unexplained_status_apply_on_every_carrier():
    nomorobo = health_view(Health.FLAGGED, {"CARRIER_ATT": Health.FLAGGED}, [(7, Health.FLAGGED)], False)
    assert nomorobo.for_carrier(Carrier.VERIZON) is Health.FLAGGED
    assert gate(State.ACTIVE, nomorobo, False) is Gate.CLOSED
    unexplained = health_view(Health.FLAGGED, {"CARRIER_ATT": Health.AT_RISK}, [], False)
    assert unexplained.for_carrier(Carrier.VERIZON) is Health.FLAGGED
    no_carrier_view = health_view(Health.FLAGGED, {}, [(4, Health.FLAGGED)], False)
    assert no_carrier_view.for_carrier(Carrier.VERIZON) is Health.FLAGGED
    behaviour = health_view(Health.FLAGGED, {"att": Health.FLAGGED}, [], True)
    assert behaviour.for_carrier(Carrier.VERIZON) is Health.AT_RISK


def test_blocked_is_never_usable_whatever_the_carrier():
    blocked = health_view(Health.BLOCKED, {"att": Health.BLOCKED}, [], False)
    assert blocked.for_carrier(Carrier.VERIZON) is Health.BLOCKED
    assert gate(State.ACTIVE, blocked, True) is Gate.CLOSED


# --- eligibility --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state, reason", [
    (State.QUARANTINED, Reason.QUARANTINED), (State.RESTING, Reason.RESTING), (State.RETIRED, Reason.RETIRED),
    (State.UNSPECIFIED, Reason.NOT_ACTIVE), (State.ACTIVE, None), (State.WARMING, None)])
def test_only_active_and_warming_numbers_place_calls(state, reason):
    assert exclusion(candidate(state=state), call()) is reason


def test_health_rules_follow_the_campaign_and_the_prospects_carrier():
    at_risk = HealthView(Health.AT_RISK, Health.AT_RISK)
    assert exclusion(candidate(health=at_risk), call()) is Reason.AT_RISK
    assert exclusion(candidate(health=at_risk), call(CallingPolicy(allow_at_risk=True))) is None
    flagged_on_att = health_view(Health.FLAGGED, {"att": Health.FLAGGED}, [], False)
    assert exclusion(candidate(health=flagged_on_att), call()) is Reason.FLAGGED
    assert exclusion(candidate(health=flagged_on_att), call(carrier=Carrier.ATT)) is Reason.FLAGGED
    assert exclusion(candidate(health=flagged_on_att), call(carrier=Carrier.TMOBILE)) is None
    assert exclusion(candidate(health=HealthView(Health.BLOCKED, Health.BLOCKED)), call()) is Reason.BLOCKED


def test_the_prospects_own_npa_nxx_is_never_presented():
    assert exclusion(candidate(place=SF), call(destination=SF)) is Reason.NEIGHBOR_SPOOFING
    assert exclusion(candidate(place=SF_OTHER_EXCHANGE), call(destination=SF)) is None


def test_tiers_match_in_the_campaigns_order():
    tiers = CallingPolicy().tiers
    assert tier_for(SF_OTHER_EXCHANGE, SF, tiers) is Tier.AREA_CODE
    assert tier_for(LA_CITY, SF, tiers) is Tier.REGION
    assert tier_for(NYC, SF, tiers) is Tier.COUNTRY
    assert tier_for(Place("CA", "416", "555", "ON"), SF, tiers) is Tier.ANY
    assert tier_for(NYC, SF, (Tier.AREA_CODE, Tier.REGION)) is None
    assert exclusion(candidate(place=NYC), call(CallingPolicy(tiers=(Tier.AREA_CODE,)))) is Reason.TIER_NOT_ALLOWED
    # a same-area-code number also satisfies a region-only policy
    assert tier_for(SF_OTHER_EXCHANGE, SF, (Tier.REGION,)) is Tier.REGION


def test_caps_count_today_and_this_hour_only():
    c = call(CallingPolicy(daily_cap=10, hourly_cap=4))
    today, this_hour = c.day_start, c.hour_start
    assert exclusion(candidate(usage=Usage(today, 10, this_hour, 1)), c) is Reason.DAILY_CAP
    assert exclusion(candidate(usage=Usage(today - 86_400, 10, this_hour - 3600, 9)), c) is None
    assert exclusion(candidate(usage=Usage(today, 5, this_hour, 4)), c) is Reason.HOURLY_CAP
    assert exclusion(candidate(usage=Usage(today, 5, this_hour - 3600, 4)), c) is None


def test_warming_numbers_follow_their_ramp():
    start = NOON_NY - timedelta(days=4)  # step 2 of 3-day steps
    warming = candidate(state=State.WARMING, warmup=WarmupPlan((20, 40, 60, 100), timedelta(days=3)),
                        warmup_start=start)
    assert daily_cap(warming, CallingPolicy(), NOON_NY) == (40, True)
    assert daily_cap(warming, CallingPolicy(daily_cap=30), NOON_NY) == (30, False)
    assert daily_cap(warming, CallingPolicy(), NOON_NY + timedelta(days=30)) == (100, False)
    c = call()
    capped = candidate(state=State.WARMING, warmup=WarmupPlan((20, 40), timedelta(days=3)), warmup_start=start,
                       usage=Usage(c.day_start, 40, c.hour_start, 1))
    assert exclusion(capped, c) is Reason.WARMUP_CAP


def test_preference_is_tier_then_least_used_today_then_least_recently_used():
    c = call()
    today = c.day_start
    local_busy = candidate(usage=Usage(today, 5, 0, 0, 100))
    local_idle = Candidate("+14158675311", SF_OTHER_EXCHANGE, State.ACTIVE, usage=Usage(today - 86_400, 90, 0, 0, 50))
    local_old = Candidate("+14158675312", SF_OTHER_EXCHANGE, State.ACTIVE, usage=Usage(today, 5, 0, 0, 10))
    regional = Candidate("+12135550100", LA_CITY, State.ACTIVE)
    ordered = sorted([regional, local_busy, local_idle, local_old], key=lambda x: preference(x, c))
    assert [x.phone_number for x in ordered] == ["+14158675311", "+14158675312", "+14155550100", "+12135550100"]


# --- capacity -----------------------------------------------------------------------------------------------


def test_numbers_needed_is_volume_over_cap_times_the_resting_buffer():
    assert numbers_needed(1000, 100, 0.25, 0) == 13  # ceil(12.5)
    assert numbers_needed(1000, 100, 0.25, 10) == 3
    assert numbers_needed(1000, 100, 0.25, 20) == 0
    assert numbers_needed(1000, 100, 0.0, 0) == 10
    assert split_volume(100, {"a": 1, "b": 1, "c": 1}) in ({"a": 34, "b": 33, "c": 33}, {"a": 33, "b": 33, "c": 34},
                                                           {"a": 33, "b": 34, "c": 33})
    assert sum(split_volume(999, {"a": 0.3, "b": 0.7}).values()) == 999
    result = plan([AreaCapacity("415", eligible=2, expected_daily_calls=500),
                   AreaCapacity("212", eligible=9, expected_daily_calls=100)], 100, 0.25)
    assert [a.needed for a in result.areas] == [0, 5]  # sorted by area code: 212 then 415
    assert result.total.needed == 0 and not result.short_of_numbers
