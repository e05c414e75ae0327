"""BatchGetHealth: many numbers' health in one read, in the order asked, the missing ones named."""

from __future__ import annotations

import grpc
import pytest
from scoring.stack import A, B, error_of, phone, status

from nhm.scoring.v1 import scoring_pb2 as spb
from nhm.scoring.v1 import scoring_pb2_grpc
from nhm.type.v1 import types_pb2 as types
from nhm_scoring.app import SPEC as SCORING
from nhm_testing.errors import violations
from nhm_testing.statements import statements_of_rpcs


def batch(stack, phones, metadata=A):
    return stack.scoring.BatchGetHealth(spb.BatchGetHealthRequest(phone_numbers=phones), metadata=metadata)


def test_health_comes_in_the_order_asked_as_get_health_answers_it(stack):
    mine = [phone(i) for i in range(3)]
    stack.create_numbers(*mine)
    stack.observe(mine[1], types.REPUTATION_SOURCE_HIYA, types.REPUTATION_LABEL_SPAM, raw_label="Spam Risk")
    stack.wait_for(lambda: status(stack.health(mine[1])) == "FLAGGED", "the label to flag the number")
    unknown = phone(50)
    reply = batch(stack, [mine[2], unknown, mine[1], mine[0]])
    assert [h.phone_number for h in reply.health] == [mine[2], mine[1], mine[0]]
    assert list(reply.not_found_phone_numbers) == [unknown]
    assert [status(h) for h in reply.health] == ["HEALTHY", "FLAGGED", "HEALTHY"]
    assert reply.health[1] == stack.health(mine[1])  # same clock: the same status duration too


def test_another_tenants_numbers_are_not_found(stack):
    theirs, mine = phone(1), phone(2)
    stack.create_numbers(theirs, metadata=B)
    stack.create_numbers(mine)
    reply = batch(stack, [theirs, mine])
    assert [h.phone_number for h in reply.health] == [mine] and list(reply.not_found_phone_numbers) == [theirs]
    assert [h.phone_number for h in batch(stack, [theirs, mine], B).health] == [theirs]


@pytest.mark.parametrize("phones, fields", [
    ([], {"phone_numbers"}),
    (["+14158670001", "bad", "+1 415 867 0002"], {"phone_numbers[1]", "phone_numbers[2]"}),
    (["+14158670001", "+14158670001"], {"phone_numbers[1]"}),
    ([phone(i) for i in range(4)], {"phone_numbers"}),  # above max_batch_get (3 here)
])
def test_bad_lists_are_refused_naming_the_fields(start_service, phones, fields):
    handle = start_service(SCORING, follow_registry=False, registry_target="", max_batch_get=3)
    with handle.channel() as channel:
        error = error_of(lambda: scoring_pb2_grpc.ScoringServiceStub(channel).BatchGetHealth(
            spb.BatchGetHealthRequest(phone_numbers=phones), metadata=A))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(error)) == fields


def test_a_batch_costs_the_same_statements_as_one_number(stack):
    phones = [phone(i) for i in range(200)]
    stack.create_numbers(*phones, wait=False)
    stack.wait_for(lambda: len(batch(stack, phones).health) == 200, "scoring to learn the numbers")
    with statements_of_rpcs("scoring") as one:
        batch(stack, phones[:1])
    with statements_of_rpcs("scoring") as many:
        batch(stack, phones)
    assert len(many) == len(one) <= 3, many
