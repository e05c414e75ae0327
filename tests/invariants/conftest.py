"""Load invariants: allocation processes on PostgreSQL, fed by the fake registry and scoring of the allocation
tests, driven by client processes (load.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from allocation.support import FakeUpstream


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()
