"""Usage per number and per campaign today, and the capacity plan per area code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from nhm.allocation.v1 import allocation_pb2 as pb
from nhm.type.v1 import types_pb2 as t
from nhm_testing.keys import TENANT_A_KEY, auth

SF1, SF2, SF3, SF4 = "+14158675301", "+14158675302", "+14158675303", "+14158675304"
LA1, NY1 = "+12132345678", "+12127363101"
SF_PROSPECTS = [f"+1415902{n:04d}" for n in range(200)]
NY_PROSPECTS = [f"+1212583{n:04d}" for n in range(200)]
NOON_PT = datetime(2026, 1, 6, 20, 0, tzinfo=UTC)
A = auth(TENANT_A_KEY)


@pytest.fixture(autouse=True)
def midday(clock):
    clock.set(NOON_PT)


def test_number_usage_reports_today_against_the_caps_that_apply(allocation, clock):
    up = allocation.upstream
    up.campaign("c1", daily_cap_per_number=80, hourly_cap_per_number=20)
    up.campaign("c2", daily_cap_per_number=120)
    up.number(SF1, campaigns=("c1", "c2"))
    up.number(SF2, state=t.LIFECYCLE_STATE_WARMING, warmup_caps=(20, 40), warmup_start=NOON_PT, campaigns=("c1",))
    allocation.sync()
    for i in range(3):
        allocation.allocate(SF_PROSPECTS[i], f"call-{i}", campaign="c2")
    usage = allocation.usage(SF1)  # the number's first campaign: c1
    assert (usage.calls_today, usage.daily_cap, usage.calls_this_hour, usage.hourly_cap) == (3, 80, 3, 20)
    assert usage.last_allocate_time.ToDatetime(tzinfo=UTC) == NOON_PT
    assert allocation.usage(SF1, campaign="c2").daily_cap == 120
    assert allocation.usage(SF2).daily_cap == 20  # the warm-up step's cap
    clock.advance(timedelta(hours=1))
    assert allocation.usage(SF1).calls_this_hour == 0 and allocation.usage(SF1).calls_today == 3
    clock.advance(timedelta(days=1))
    assert allocation.usage(SF1).calls_today == 0
    for phone, code in (("+14150000000", grpc.StatusCode.INVALID_ARGUMENT), (NY1, grpc.StatusCode.NOT_FOUND)):
        with pytest.raises(grpc.RpcError) as caught:
            allocation.usage(phone)
        assert caught.value.code() is code


def test_campaign_usage_pages_through_its_numbers(allocation):
    up = allocation.upstream
    up.campaign("c1", daily_cap_per_number=10, sticky_caller_id=False)
    for phone in (SF1, SF2, SF3):
        up.number(phone)
    up.number(SF4, state=t.LIFECYCLE_STATE_QUARANTINED)
    allocation.sync()
    for i in range(5):
        allocation.allocate(SF_PROSPECTS[i], f"call-{i}")
    allocation.stub.ReleaseAllocation(pb.ReleaseAllocationRequest(call_id="call-0"), metadata=A)
    pages, token = [], ""
    while True:
        reply = allocation.stub.GetCampaignUsage(pb.GetCampaignUsageRequest(campaign_id="c1", page_size=3,
                                                                            page_token=token), metadata=A)
        pages.append([n.phone_number for n in reply.numbers])
        assert reply.calls_today == 4 and reply.capacity_today == 30  # the quarantined number has no capacity
        token = reply.next_page_token
        if not token:
            break
    assert pages == [[SF1, SF2, SF3], [SF4]]

    # One listing reports one set of totals (counted once, on its first page), even if calls land meanwhile;
    # the next listing counts afresh.
    first = allocation.stub.GetCampaignUsage(pb.GetCampaignUsageRequest(campaign_id="c1", page_size=3), metadata=A)
    allocation.allocate(SF_PROSPECTS[5], "call-5")
    second = allocation.stub.GetCampaignUsage(pb.GetCampaignUsageRequest(
        campaign_id="c1", page_size=3, page_token=first.next_page_token), metadata=A)
    assert (second.calls_today, second.numbers[0].phone_number) == (4, SF4)
    assert allocation.stub.GetCampaignUsage(pb.GetCampaignUsageRequest(campaign_id="c1"),
                                            metadata=A).calls_today == 5
    token = allocation.stub.GetCampaignUsage(pb.GetCampaignUsageRequest(campaign_id="c1", page_size=1),
                                             metadata=A).next_page_token
    with pytest.raises(grpc.RpcError) as caught:  # a token only pages the campaign it was made for
        allocation.stub.GetCampaignUsage(pb.GetCampaignUsageRequest(campaign_id="c2", page_token=token), metadata=A)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_capacity_plan_per_area_code(allocation, clock):
    up = allocation.upstream
    up.campaign("c1", daily_cap_per_number=100, max_calls_per_prospect_per_day=0, max_calls_per_prospect_per_week=0)
    up.number(SF1)
    up.number(SF2)
    up.number(SF3, state=t.LIFECYCLE_STATE_RESTING)
    up.number(SF4)
    up.number(LA1, state=t.LIFECYCLE_STATE_WARMING, warmup_caps=(20, 40), warmup_start=NOON_PT)
    up.health(SF4, t.HEALTH_STATUS_FLAGGED)
    allocation.sync()
    for i in range(21):  # 21 calls to San Francisco prospects and 7 to New York ones over the week
        allocation.allocate(SF_PROSPECTS[i], f"sf-{i}")
    for i in range(7):
        allocation.allocate(NY_PROSPECTS[i], f"ny-{i}")
    plan = allocation.stub.GetCapacityPlan(pb.GetCapacityPlanRequest(campaign_id="c1", expected_daily_calls=1000),
                                           metadata=A).plan
    areas = {a.area_code: a for a in plan.area_codes}
    assert set(areas) == {"415", "213", "212"}
    sf, la, ny = areas["415"], areas["213"], areas["212"]
    assert (sf.numbers_total, sf.numbers_eligible, sf.numbers_resting, sf.numbers_unhealthy) == (4, 2, 1, 1)
    assert (sf.region, sf.daily_capacity, sf.expected_daily_calls) == ("CA", 200, 750)
    assert sf.numbers_needed == 8  # ceil(750 / 100 x 1.25) - 2
    assert (la.numbers_warming, la.numbers_eligible, la.daily_capacity, la.expected_daily_calls) == (1, 1, 20, 0)
    assert (ny.numbers_total, ny.expected_daily_calls, ny.numbers_needed) == (0, 250, 4)
    assert plan.resting_buffer == 0.25 and plan.short_of_numbers
    assert (plan.total.numbers_total, plan.total.expected_daily_calls, plan.total.numbers_needed) == (5, 1000, 10)
    # without a volume: the average of the last 7 days, per area code
    default = allocation.stub.GetCapacityPlan(pb.GetCapacityPlanRequest(campaign_id="c1", resting_buffer=0.2),
                                              metadata=A).plan
    assert {a.area_code: a.expected_daily_calls for a in default.area_codes} == {"415": 3, "213": 0, "212": 1}
    assert default.resting_buffer == pytest.approx(0.2) and not default.short_of_numbers
    with pytest.raises(grpc.RpcError) as caught:
        allocation.stub.GetCapacityPlan(pb.GetCapacityPlanRequest(campaign_id="c1", expected_daily_calls=-1),
                                        metadata=A)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_upkeep_forgets_call_ids_ledger_rows_and_prospects_after_their_retention(allocation, clock):
    from sqlalchemy import func, select

    from nhm_allocation.housekeeping import Housekeeper
    from nhm_allocation.models import allocations, idempotency, prospects
    from nhm_platform.db import Database
    from nhm_platform.row_scope import platform_rows

    allocation.upstream.campaign("c1")
    allocation.upstream.number(SF1)
    allocation.sync()
    allocation.allocate(SF_PROSPECTS[0], "call-1")
    db = Database(allocation.handle.settings.database_url)
    keeper = Housekeeper(db, clock, call_id_retention=timedelta(days=7), ledger_retention=timedelta(days=35),
                         prospect_retention=timedelta(days=90), interval=0)

    def counts() -> tuple[int, int, int]:
        with platform_rows(), db.read() as session:
            return tuple(session.execute(select(func.count()).select_from(t)).scalar() for t in (
                idempotency.table, allocations, prospects))

    try:
        assert keeper.run_once().call_ids == 0 and counts() == (1, 1, 1)
        clock.advance(timedelta(days=8))
        assert keeper.run_once().call_ids == 1 and counts() == (0, 1, 1)
        clock.advance(timedelta(days=28))
        assert keeper.run_once().ledger_rows == 1 and counts() == (0, 0, 1)
        clock.advance(timedelta(days=55))
        assert keeper.run_once().prospects == 1 and counts() == (0, 0, 0)
    finally:
        db.dispose()


def test_capacity_counts_each_warming_number_at_its_own_step(allocation):
    """The plan and the usage totals count members grouped by the database; numbers alike in state and health
    share a group, while warming numbers keep their own plan and start."""
    up = allocation.upstream
    up.campaign("c1", daily_cap_per_number=100)
    la = [f"+1213234567{n}" for n in range(6)]
    up.number(la[0], state=t.LIFECYCLE_STATE_WARMING, warmup_caps=(20, 40), warmup_start=NOON_PT)
    up.number(la[1], state=t.LIFECYCLE_STATE_WARMING, warmup_caps=(20, 40),
              warmup_start=NOON_PT - timedelta(days=4))  # the second 3-day step: 40 a day
    up.number(la[2], state=t.LIFECYCLE_STATE_WARMING, warmup_caps=(30, 60), warmup_start=NOON_PT)
    for phone in la[3:]:
        up.number(phone)
    up.health(la[5], t.HEALTH_STATUS_AT_RISK)  # the campaign does not allow At Risk numbers
    allocation.sync()
    plan = allocation.stub.GetCapacityPlan(pb.GetCapacityPlanRequest(campaign_id="c1"), metadata=A).plan
    [area] = plan.area_codes
    assert (area.numbers_total, area.numbers_warming, area.numbers_unhealthy, area.numbers_eligible) == (6, 3, 1, 5)
    assert area.daily_capacity == 20 + 40 + 30 + 2 * 100
    usage = allocation.stub.GetCampaignUsage(pb.GetCampaignUsageRequest(campaign_id="c1"), metadata=A)
    assert usage.capacity_today == area.daily_capacity
