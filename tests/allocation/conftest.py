"""Allocation tests: a real allocation server fed by fake registry and scoring feeds (support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from allocation.support import Allocation, FakeUpstream, detail

from nhm_allocation.app import SPEC


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def allocation(start_service, upstream) -> Iterator[Allocation]:
    handle = start_service(SPEC, registry_target=upstream.address, scoring_target=upstream.address)
    service = Allocation(handle, upstream)
    yield service
    service.channel.close()


@pytest.fixture
def details():
    return detail
