"""ListNumbers for operators: every filter, every order both ways, keyset pages that never skip or repeat."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from nhm.registry.v1 import registry_pb2 as pb
from nhm.type.v1 import types_pb2 as types

AREAS = {"415": "CA", "212": "NY", "305": "FL", "512": "TX"}
ATTESTATIONS = [types.ATTESTATION_A, types.ATTESTATION_B, types.ATTESTATION_C]


@pytest.fixture
def fleet(registry, clock):
    """24 numbers over 4 area codes, 3 attestations, 2 labels, several states and one campaign."""
    campaign = registry.campaign("pool")
    numbers = []
    for i in range(24):
        area = list(AREAS)[i % 4]
        if i % 3 == 0:
            clock.advance(timedelta(minutes=1))  # some share a create time: ties break by number
        numbers.append(registry.create(registry.phone(i, area), attestation=ATTESTATIONS[i % 3],
                                       labels={"team": "red" if i % 2 else "blue", "n": str(i)}))
    for i in (1, 5, 9):
        registry.stub.TransitionNumber(pb.TransitionNumberRequest(
            phone_number=numbers[i].phone_number, target_state=types.LIFECYCLE_STATE_QUARANTINED), metadata=registry.a)
    registry.stub.AssignNumbers(pb.AssignNumbersRequest(campaign_id=campaign.id, phone_numbers=[
        n.phone_number for n in numbers[:10]]), metadata=registry.a)
    current = {n.phone_number: registry.stub.GetNumber(pb.GetNumberRequest(phone_number=n.phone_number),
                                                       metadata=registry.a).number for n in numbers}
    return campaign, current


def list_all(registry, page_size=5, **request):
    found, token, pages = [], "", 0
    while True:
        reply = registry.stub.ListNumbers(pb.ListNumbersRequest(page_size=page_size, page_token=token, **request),
                                          metadata=registry.a)
        found.extend(reply.numbers)
        pages += 1
        token = reply.next_page_token
        if not token:
            return found
        assert pages < 100


def test_filters(registry, fleet):
    campaign, numbers = fleet
    phones = sorted(numbers)

    def expect(keep):
        return [p for p in phones if keep(numbers[p])]

    cases = [
        ({}, expect(lambda n: True)),
        ({"states": [types.LIFECYCLE_STATE_QUARANTINED]},
         expect(lambda n: n.state == types.LIFECYCLE_STATE_QUARANTINED)),
        ({"campaign_id": campaign.id}, expect(lambda n: campaign.id in n.campaign_ids)),
        ({"area_code": "305"}, expect(lambda n: n.area_code == "305")),
        ({"region": "NY"}, expect(lambda n: n.region == "NY")),
        ({"attestations": [types.ATTESTATION_A, types.ATTESTATION_C]},
         expect(lambda n: n.attestation in (types.ATTESTATION_A, types.ATTESTATION_C))),
        ({"labels": {"team": "red"}}, expect(lambda n: n.labels["team"] == "red")),
        ({"labels": {"team": "red", "n": "5"}}, expect(lambda n: n.labels["n"] == "5")),
        ({"phone_number_prefix": "+1512"}, expect(lambda n: n.phone_number.startswith("+1512"))),
        ({"phone_number_prefix": "+1"}, phones),
        ({"region": "NY", "states": [types.LIFECYCLE_STATE_QUARANTINED], "campaign_id": campaign.id},
         expect(lambda n: n.region == "NY" and n.state == types.LIFECYCLE_STATE_QUARANTINED)),
    ]
    for request, expected in cases:
        assert expected or request == {}, request
        assert [n.phone_number for n in list_all(registry, **request)] == expected, request
    assert numbers[phones[0]].region in AREAS.values()


@pytest.mark.parametrize("order, key", [
    (pb.NUMBER_ORDER_BY_PHONE_NUMBER, lambda n: (n.phone_number,)),
    (pb.NUMBER_ORDER_BY_CREATE_TIME, lambda n: (n.create_time.ToNanoseconds(), n.phone_number)),
    (pb.NUMBER_ORDER_BY_UPDATE_TIME, lambda n: (n.update_time.ToNanoseconds(), n.phone_number)),
    (pb.NUMBER_ORDER_BY_STATE, lambda n: (types.LifecycleState.Name(n.state), n.phone_number)),
    (pb.NUMBER_ORDER_BY_AREA_CODE, lambda n: (n.area_code, n.phone_number)),
])
def test_orders_both_ways_in_pages(registry, fleet, order, key):
    _, numbers = fleet
    for descending in (False, True):
        expected = sorted(numbers.values(), key=key, reverse=descending)
        got = list_all(registry, page_size=5, order_by=order, descending=descending)
        assert [n.phone_number for n in got] == [n.phone_number for n in expected], descending


def test_page_tokens_and_bad_filters_are_refused(registry, fleet):
    first = registry.stub.ListNumbers(pb.ListNumbersRequest(page_size=2, area_code="415"), metadata=registry.a)
    error = registry.error(lambda: registry.stub.ListNumbers(pb.ListNumbersRequest(
        page_size=2, area_code="212", page_token=first.next_page_token), metadata=registry.a))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "page_token" in registry.violations(error)
    for request, field in [({"page_token": "garbage"}, "page_token"), ({"page_size": -1}, "page_size"),
                           ({"phone_number_prefix": "1415"}, "phone_number_prefix"),
                           ({"area_code": "4x5"}, "area_code"),
                           ({"states": [types.LIFECYCLE_STATE_UNSPECIFIED]}, "states[0]"),
                           ({"attestations": [42]}, "attestations[0]")]:
        error = registry.error(lambda request=request: registry.stub.ListNumbers(pb.ListNumbersRequest(**request),
                                                                                 metadata=registry.a))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and field in registry.violations(error), request
    error = registry.error(lambda: registry.stub.ListNumbers(pb.ListNumbersRequest(campaign_id="cmp_none"),
                                                             metadata=registry.a))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    big = registry.stub.ListNumbers(pb.ListNumbersRequest(page_size=5000), metadata=registry.a)
    assert len(big.numbers) == 24 and not big.next_page_token  # capped at 1000, and 24 fit
