"""Fixtures for the scoring tests: a real registry and scoring server per test, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from scoring.stack import Stack, start_stack

from nhm_platform.clock import FakeClock


@pytest.fixture
def stack(start_service: Callable[..., Any], clock: FakeClock) -> Iterator[Stack]:
    made = start_stack(start_service, clock)
    yield made
    made.close()
