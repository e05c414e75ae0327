"""The SDK's batch gets against the real services: registry numbers, scoring health and allocation usage for a
page of numbers in one call each, sync and async, with the SDK's usual metadata and typed errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nhm.type.v1 import types_pb2 as types
from nhm_sdk import AsyncClient, ClientConfig, InvalidArgumentError, NotFoundError
from nhm_testing.keys import ADMIN_KEY

SF = [f"+1415867{i:04d}" for i in range(8000, 8004)]
UNKNOWN = "+12127368999"


def test_each_service_answers_a_batch_in_the_order_asked_and_names_the_missing_numbers(platform: Any) -> None:
    client = platform.client
    campaign = platform.campaign_with_numbers(SF[:3])
    platform.wait_until(lambda: not client.batch_get_health(SF[:3]).not_found_phone_numbers,
                        "scoring to learn the numbers")
    allocated = client.allocate_number(campaign, "+12127368000")
    asked = [SF[2], UNKNOWN, SF[0], SF[1]]

    numbers = client.batch_get_numbers(asked)
    assert [n.phone_number for n in numbers.numbers] == [SF[2], SF[0], SF[1]]
    assert list(numbers.not_found_phone_numbers) == [UNKNOWN]
    assert all(list(n.campaign_ids) == [campaign] for n in numbers.numbers)

    health = client.batch_get_health(asked)
    assert [h.phone_number for h in health.health] == [SF[2], SF[0], SF[1]]
    assert {h.status for h in health.health} == {types.HEALTH_STATUS_HEALTHY}
    assert list(health.not_found_phone_numbers) == [UNKNOWN]

    usage = client.batch_get_number_usage(asked, campaign_id=campaign)
    assert [u.phone_number for u in usage.usage] == [SF[2], SF[0], SF[1]]
    assert {u.phone_number: u.calls_today for u in usage.usage}[allocated.caller_id] == 1
    assert sum(u.calls_today for u in usage.usage) == 1
    assert list(usage.not_found_phone_numbers) == [UNKNOWN]


def test_bad_batches_raise_typed_errors_that_name_the_field(platform: Any) -> None:
    client = platform.client
    for call in (client.batch_get_numbers, client.batch_get_health, client.batch_get_number_usage):
        with pytest.raises(InvalidArgumentError) as repeated:
            call([SF[0], SF[0]])
        assert repeated.value.violation("phone_numbers[1]") is not None
        with pytest.raises(InvalidArgumentError) as empty:
            call([])
        assert empty.value.violation("phone_numbers") is not None
        with pytest.raises(InvalidArgumentError) as too_many:
            call([f"+1415867{i:04d}" for i in range(1001)])
        assert too_many.value.reason == "BATCH_TOO_LARGE"
    with pytest.raises(NotFoundError):
        client.batch_get_number_usage(SF, campaign_id="no-such-campaign")


def test_per_call_metadata_reaches_the_services(platform: Any, make_client: Any) -> None:
    """An admin key names the tenant per call, as with every other method."""
    platform.client.import_numbers(SF[3:])
    operator = make_client(api_key=ADMIN_KEY, **platform.targets())
    tenant = [("x-nhm-tenant-id", platform.tenant)]
    assert [n.tenant_id for n in operator.batch_get_numbers(SF[3:], metadata=tenant).numbers] == [platform.tenant]


def test_the_async_client_batches_the_same_way(platform: Any) -> None:
    platform.campaign_with_numbers(SF[:2])
    platform.wait_until(lambda: not platform.client.batch_get_health(SF[:2]).not_found_phone_numbers,
                        "scoring to learn the numbers")

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        async with AsyncClient(ClientConfig(api_key=platform.client.config.api_key, **platform.targets())) as nhm:
            numbers, health, usage = await asyncio.gather(
                nhm.batch_get_numbers([SF[1], UNKNOWN, SF[0]]), nhm.batch_get_health([SF[1], SF[0]]),
                nhm.batch_get_number_usage([SF[0], UNKNOWN]))
            with pytest.raises(InvalidArgumentError):
                await nhm.batch_get_health([SF[0], "415"])
        return ([n.phone_number for n in numbers.numbers], [h.phone_number for h in health.health],
                [*[u.phone_number for u in usage.usage], *usage.not_found_phone_numbers])

    assert asyncio.run(scenario()) == ([SF[1], SF[0]], [SF[1], SF[0]], [SF[0], UNKNOWN])
