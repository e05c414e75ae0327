"""BatchGetNumberUsage: many numbers' usage today in one read, against the caps that apply to each."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from allocation.support import Allocation, FakeUpstream

from nhm.allocation.v1 import allocation_pb2 as pb
from nhm.type.v1 import types_pb2 as t
from nhm_allocation.app import SPEC
from nhm_testing.errors import violations
from nhm_testing.keys import TENANT_A_KEY, TENANT_B, TENANT_B_KEY, auth
from nhm_testing.statements import statements_of_rpcs

SF1, SF2, SF3, NY1 = "+14158675301", "+14158675302", "+14158675303", "+12127363101"
PROSPECTS = [f"+1415902{n:04d}" for n in range(20)]
NOON_PT = datetime(2026, 1, 6, 20, 0, tzinfo=UTC)
A, B = auth(TENANT_A_KEY), auth(TENANT_B_KEY)


@pytest.fixture(autouse=True)
def midday(clock):
    clock.set(NOON_PT)


def batch(allocation, phones, campaign="", metadata=A):
    return allocation.stub.BatchGetNumberUsage(pb.BatchGetNumberUsageRequest(
        phone_numbers=phones, campaign_id=campaign), metadata=metadata)


def test_usage_comes_in_the_order_asked_against_each_numbers_caps(allocation):
    up = allocation.upstream
    up.campaign("c1", daily_cap_per_number=80, hourly_cap_per_number=20, sticky_caller_id=False)
    up.campaign("c2", daily_cap_per_number=120)
    up.number(SF1, campaigns=("c1", "c2"))
    up.number(SF2, campaigns=("c2",))
    up.number(SF3, state=t.LIFECYCLE_STATE_WARMING, warmup_caps=(20, 40), warmup_start=NOON_PT, campaigns=())
    allocation.sync()
    for i in range(3):
        allocation.allocate(PROSPECTS[i], f"call-{i}", campaign="c1")
    reply = batch(allocation, [SF3, NY1, SF2, SF1])
    assert [u.phone_number for u in reply.usage] == [SF3, SF2, SF1]
    assert list(reply.not_found_phone_numbers) == [NY1]
    # Each number against its first campaign's caps, as GetNumberUsage reports it (SF3: in no campaign).
    assert list(reply.usage) == [allocation.usage(SF3), allocation.usage(SF2), allocation.usage(SF1)]
    assert [(u.calls_today, u.daily_cap) for u in reply.usage] == [(0, 20), (0, 120), (3, 80)]
    against_c2 = batch(allocation, [SF1, SF2], campaign="c2")
    assert [(u.calls_today, u.daily_cap) for u in against_c2.usage] == [(3, 120), (0, 120)]


def test_another_tenants_numbers_are_not_found_and_its_campaigns_do_not_exist(allocation):
    up = allocation.upstream
    up.campaign("c1")
    up.campaign("theirs", tenant=TENANT_B)
    up.number(SF1)
    up.number(SF2, tenant=TENANT_B, campaigns=("theirs",))
    allocation.sync()
    reply = batch(allocation, [SF2, SF1])
    assert [u.phone_number for u in reply.usage] == [SF1] and list(reply.not_found_phone_numbers) == [SF2]
    assert [u.phone_number for u in batch(allocation, [SF2, SF1], metadata=B).usage] == [SF2]
    with pytest.raises(grpc.RpcError) as caught:
        batch(allocation, [SF1], campaign="theirs")
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("phones, fields", [
    ([], {"phone_numbers"}),
    ([SF1, "+1415", "tel:+14158675302"], {"phone_numbers[1]", "phone_numbers[2]"}),
    ([SF1, SF2, SF1], {"phone_numbers[2]"}),
    ([SF1, SF2, SF3, NY1], {"phone_numbers"}),  # above max_batch_get (3 here)
])
def test_bad_lists_are_refused_naming_the_fields(start_service, phones, fields):
    upstream = FakeUpstream().start()
    try:
        handle = start_service(SPEC, registry_target=upstream.address, scoring_target=upstream.address,
                               max_batch_get=3)
        service = Allocation(handle, upstream)
        with pytest.raises(grpc.RpcError) as caught:
            batch(service, phones)
        service.channel.close()
    finally:
        upstream.stop()
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(caught.value)) == fields


def test_a_batch_costs_the_same_statements_as_one_number(allocation):
    up = allocation.upstream
    up.campaign("c1")
    up.campaign("c2")
    phones = [f"+1415867{i:04d}" for i in range(200)]
    for i, phone in enumerate(phones):
        up.number(phone, campaigns=("c1", "c2") if i % 2 else ("c2",))
    allocation.sync()
    batch(allocation, phones[:1])
    with statements_of_rpcs("allocation") as one:
        batch(allocation, phones[:1])
    with statements_of_rpcs("allocation") as many:
        assert len(batch(allocation, phones).usage) == 200
    assert len(many) == len(one) <= 4, many
