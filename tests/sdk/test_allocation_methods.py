"""The hot path through the SDK against the real services: allocate, dial, report or release; errors; retries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from nhm.type.v1 import types_pb2 as types
from nhm_sdk import CallingRestrictedError, Client, NothingEligibleError

SF = [f"+1415867{i:04d}" for i in range(6000, 6010)]
NY_PROSPECTS = [f"+1212736{i:04d}" for i in range(7000, 7100)]


def test_allocate_report_and_release_through_the_call_helper(platform: Any) -> None:
    client, clock = platform.client, platform.clock
    campaign = platform.campaign_with_numbers(SF[:2])

    with client.call(campaign, NY_PROSPECTS[0]) as call:
        assert call.caller_id in SF[:2] and not call.fallback
        assert call.response is not None and call.response.usage.calls_today == 1
        call.report(answered=True, talk_duration=dt.timedelta(seconds=95), sip_code=200, start_time=clock.now())
    placed = call.caller_id
    assert client.outcomes.flush(10)
    assert client.outcomes.stats.accepted == 1
    assert client.get_number_usage(placed, campaign_id=campaign).calls_today == 1
    today = client.call_activity(placed, days=1).days[-1]
    assert (today.outbound_calls, today.answered_calls, today.talk_time.seconds) == (1, 1, 95)

    with client.call(campaign, NY_PROSPECTS[1]) as unplaced:
        pass  # never dialled: leaving the block gives the caller ID back
    assert unplaced.released
    assert client.get_number_usage(unplaced.caller_id, campaign_id=campaign).calls_today == (
        1 if unplaced.caller_id == placed else 0)

    with pytest.raises(RuntimeError), client.call(campaign, NY_PROSPECTS[2]) as failed:
        raise RuntimeError("the dialer crashed before dialling")
    assert failed.released


def test_the_same_call_id_is_one_allocation(platform: Any) -> None:
    client = platform.client
    campaign = platform.campaign_with_numbers(SF[2:4])
    first = client.allocate_number(campaign, NY_PROSPECTS[3], call_id="call-1")
    again = client.allocate_number(campaign, NY_PROSPECTS[3], call_id="call-1")
    assert again.caller_id == first.caller_id
    assert client.get_number_usage(first.caller_id, campaign_id=campaign).calls_today == 1
    assert client.release_allocation("call-1", request_id="give-back-1").released
    assert client.release_allocation("call-1", request_id="give-back-1").released  # a retry: the first answer
    assert not client.release_allocation("call-1").released  # a new request (its own uuid4): already released
    assert client.get_number_usage(first.caller_id, campaign_id=campaign).calls_today == 0


def test_an_allocation_whose_answer_was_lost_is_retried_and_counted_once(
        platform: Any, make_client: Callable[..., Client], fault_proxy: Callable[..., Any]) -> None:
    campaign = platform.campaign_with_numbers(SF[4:5])
    proxy = fault_proxy(platform.allocation)
    dialer = make_client(**{**platform.targets(), "allocation_target": proxy.address,
                            "api_key": platform.client.config.api_key})
    dialer.get_replication_status()  # connect
    proxy.drop_next_responses(1)

    response = dialer.allocate_number(campaign, NY_PROSPECTS[4])

    assert proxy.kills == 1
    assert response.caller_id == SF[4]
    usage = platform.client.get_number_usage(SF[4], campaign_id=campaign)
    assert usage.calls_today == 1  # the retry returned the first answer, not a second allocation


def test_nothing_eligible_is_raised_with_its_reasons_and_never_falls_back(platform: Any) -> None:
    client = platform.client
    campaign = platform.campaign_with_numbers(SF[5:6], daily_cap_per_number=1)
    client.allocate_number(campaign, NY_PROSPECTS[5])
    with pytest.raises(NothingEligibleError) as caught:
        client.call(campaign, NY_PROSPECTS[6], fallback_caller_id="+14158670000")
    error = caught.value
    assert error.exclusions == {"DAILY_CAP": 1}
    assert error.refusal.campaign_id == campaign and error.refusal.candidates_considered >= 1


def test_calling_restricted_outside_the_prospects_calling_window(platform: Any) -> None:
    campaign = platform.campaign_with_numbers(SF[6:7], calling_window_start="06:00", calling_window_end="09:00")
    with pytest.raises(CallingRestrictedError) as caught:  # 15:00 in New York
        platform.client.allocate_number(campaign, NY_PROSPECTS[7])
    restriction = caught.value.restriction
    assert restriction.time_zone == "America/New_York" and restriction.HasField("allowed_time")


def test_usage_capacity_and_replication_status(platform: Any) -> None:
    client = platform.client
    campaign = platform.campaign_with_numbers(SF[7:10])
    for prospect in NY_PROSPECTS[10:14]:
        client.allocate_number(campaign, prospect)
    usage = client.get_campaign_usage(campaign, page_size=1)  # every page, merged
    assert usage.calls_today == 4 and len(usage.numbers) == 3 and not usage.next_page_token
    assert sum(u.calls_today for u in usage.numbers) == 4
    totals = client.get_campaign_usage(campaign, page_size=1, limit=1)  # one call: the first page and totals
    assert (totals.calls_today, totals.capacity_today, len(totals.numbers)) == (4, usage.capacity_today, 1)

    plan = client.get_capacity_plan(campaign, expected_daily_calls=1000)
    assert plan.total.numbers_eligible == 3 and plan.short_of_numbers
    assert plan.total.numbers_needed > 0

    feeds = {f.upstream: f for f in client.get_replication_status()}
    assert set(feeds) == {"registry", "scoring"} and all(f.connected for f in feeds.values())


def test_a_flagged_number_stops_being_allocated(platform: Any) -> None:
    client = platform.client
    campaign = platform.campaign_with_numbers(SF[0:2])
    client.report_reputation_observations([{"phone_number": SF[0], "source": "HIYA", "label": "SPAM",
                                            "raw_label": "Spam Likely", "observe_time": platform.clock.now()}])
    platform.wait_until(lambda: client.get_health(SF[0]).status == types.HEALTH_STATUS_FLAGGED, "the flag")

    def only_healthy_one() -> bool:
        picked = {client.allocate_number(campaign, p).caller_id for p in NY_PROSPECTS[20:24]}
        return picked == {SF[1]}

    platform.wait_until(only_healthy_one, "allocation to exclude the flagged number")
