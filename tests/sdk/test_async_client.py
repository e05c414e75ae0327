"""The asyncio twin against a real registry: same methods, awaited; async page iterators and streams."""

from __future__ import annotations

import asyncio

import pytest

from nhm.type.v1 import types_pb2 as types
from nhm_sdk import AlreadyExistsError, AsyncClient, ClientConfig, InvalidArgumentError, NotFoundError
from nhm_testing.keys import TENANT_A_KEY
from nhm_testing.services import ServiceHandle

NUMBERS = [f"+1312786{i:04d}" for i in range(3000, 3008)]


def test_async_client_writes_reads_and_pages(registry: ServiceHandle) -> None:
    async def scenario() -> None:
        async with AsyncClient(ClientConfig(registry_target=registry.address, api_key=TENANT_A_KEY)) as nhm:
            created = await nhm.create_number(NUMBERS[0], display_name="Chicago", request_id="async-1")
            assert created.region == "IL"
            again = await nhm.create_number(NUMBERS[0], display_name="Chicago", request_id="async-1")
            assert again.create_time == created.create_time
            with pytest.raises(AlreadyExistsError):
                await nhm.create_number(NUMBERS[0])
            await nhm.import_numbers(NUMBERS[1:])

            pages = [page async for page in nhm.list_numbers(page_size=3).pages()]
            assert [len(p.items) for p in pages] == [3, 3, 2]
            listed = [n.phone_number async for n in nhm.list_numbers(page_size=3)]
            assert sorted(listed) == NUMBERS
            assert len(await nhm.list_numbers(limit=2).to_list()) == 2

            campaign = await nhm.create_campaign("Async", policy={"daily_cap_per_number": 90})
            assert (await nhm.assign_numbers(campaign.id, NUMBERS[:2])).number_count == 2
            moved = await nhm.transition_number(NUMBERS[2], "QUARANTINED", reason="async test")
            assert moved.number.state == types.LIFECYCLE_STATE_QUARANTINED
            history = await nhm.list_number_transitions(NUMBERS[2]).to_list()
            assert history[0].to_state == types.LIFECYCLE_STATE_QUARANTINED

            with pytest.raises(NotFoundError):
                await nhm.get_number("+13127869999")
            with pytest.raises(InvalidArgumentError) as caught:
                await nhm.import_numbers(["+1312786300", NUMBERS[0]])
            assert caught.value.field_violations[0].field == "numbers[0].phone_number"

    asyncio.run(scenario())


def test_async_watch_stream_and_cancel(registry: ServiceHandle) -> None:
    async def scenario() -> None:
        async with AsyncClient(ClientConfig(registry_target=registry.address, api_key=TENANT_A_KEY)) as nhm:
            stream = nhm.watch_changes(snapshot=True)

            async def first_live_number() -> str:
                async for change in stream:
                    if change.revision > 0 and change.WhichOneof("resource") == "number":
                        return change.number.phone_number
                return ""

            reader = asyncio.create_task(first_live_number())
            await asyncio.sleep(0.2)
            await nhm.create_number(NUMBERS[7])
            assert await asyncio.wait_for(reader, 10) == NUMBERS[7]
            stream.cancel()
            assert [c async for c in stream] == []  # a cancelled stream just ends

    asyncio.run(scenario())
