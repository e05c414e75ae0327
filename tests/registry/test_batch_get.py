"""BatchGetNumbers: many numbers in one read, in the order asked, the missing ones named, bad input refused."""

from __future__ import annotations

import grpc
import pytest
from registry.conftest import error_of

from nhm.registry.v1 import registry_pb2 as pb
from nhm.registry.v1 import registry_pb2_grpc
from nhm_registry.app import SPEC
from nhm_testing.errors import violations
from nhm_testing.keys import TENANT_A, TENANT_A_KEY, auth
from nhm_testing.statements import statements_of_rpcs


def batch(registry, phones, metadata=None):
    return registry.stub.BatchGetNumbers(pb.BatchGetNumbersRequest(phone_numbers=phones),
                                         metadata=metadata or registry.a)


def test_numbers_come_in_the_order_asked_with_the_missing_ones_listed(registry):
    mine = [registry.phone(i) for i in range(4)]
    campaign = registry.campaign("west")
    registry.stub.BatchCreateNumbers(pb.BatchCreateNumbersRequest(numbers=[
        pb.NumberSpec(phone_number=p, labels={"team": f"t{i}"}, campaign_ids=[campaign.id] if i % 2 else [])
        for i, p in enumerate(mine)]), metadata=registry.a)
    unknown = registry.phone(99)
    asked = [mine[3], unknown, mine[0], mine[2]]
    reply = batch(registry, asked)
    assert [n.phone_number for n in reply.numbers] == [mine[3], mine[0], mine[2]]
    assert list(reply.not_found_phone_numbers) == [unknown]
    # Each number as GetNumber answers it, labels and campaigns included.
    for number in reply.numbers:
        assert number == registry.stub.GetNumber(pb.GetNumberRequest(phone_number=number.phone_number),
                                                 metadata=registry.a).number
    assert reply.numbers[0].labels == {"team": "t3"} and list(reply.numbers[0].campaign_ids) == [campaign.id]


def test_another_tenants_numbers_are_not_found_as_unknown_ones_are(registry):
    theirs = registry.phone(1)
    registry.create(theirs, metadata=registry.b)
    mine = registry.create(registry.phone(2)).phone_number
    reply = batch(registry, [theirs, mine])
    assert [n.phone_number for n in reply.numbers] == [mine]
    assert list(reply.not_found_phone_numbers) == [theirs]
    admin = (*registry.admin, ("x-nhm-tenant-id", TENANT_A))  # a platform key reads the tenant it names
    assert [n.phone_number for n in batch(registry, [theirs, mine], admin).numbers] == [mine]


@pytest.mark.parametrize("phones, fields", [
    ([], {"phone_numbers"}),
    (["+14152220123", "4152220124", "+1 415 222 0125"], {"phone_numbers[1]", "phone_numbers[2]"}),
    (["+14152220123", "+14152220124", "+14152220123"], {"phone_numbers[2]"}),
    ([f"+1415222{i:04d}" for i in range(4)], {"phone_numbers"}),  # above max_batch_get (3 here)
])
def test_bad_lists_are_refused_naming_the_fields(start_service, phones, fields):
    handle = start_service(SPEC, max_batch_get=3)
    with handle.channel() as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        error = error_of(lambda: stub.BatchGetNumbers(pb.BatchGetNumbersRequest(phone_numbers=phones),
                                                      metadata=auth(TENANT_A_KEY)))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(error)) == fields
    if len(phones) == 3 and phones[0] == phones[2]:
        assert "repeats phone_numbers[0]" in violations(error)["phone_numbers[2]"]


def test_a_batch_costs_the_same_statements_as_one_number(registry):
    phones = [registry.phone(i) for i in range(300)]
    registry.stub.BatchCreateNumbers(pb.BatchCreateNumbersRequest(numbers=[
        pb.NumberSpec(phone_number=p) for p in phones]), metadata=registry.a)
    batch(registry, phones[:1])  # warm: key and tenant lookups
    with statements_of_rpcs("registry") as one:
        batch(registry, phones[:1])
    with statements_of_rpcs("registry") as many:
        assert len(batch(registry, phones).numbers) == 300
    assert len(many) == len(one) <= 5, many
