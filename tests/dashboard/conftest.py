"""Fixtures: the four services started for real (start_service: SQLite and PostgreSQL), seeded through the
SDK, and the dashboard pointed at them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dashboard.support import FAST_FEEDS, Seed, Stack, dashboard_settings, seed

from nhm_dashboard.app import create_app
from nhm_dashboard.gateway import Gateway
from nhm_platform.clock import FakeClock
from nhm_testing.services import ServiceHandle


@pytest.fixture
def stack(start_service: Callable[..., ServiceHandle], clock: FakeClock) -> Iterator[Stack]:
    from nhm_allocation.app import SPEC as ALLOCATION
    from nhm_registry.app import SPEC as REGISTRY
    from nhm_remediation.app import SPEC as REMEDIATION
    from nhm_scoring.app import SPEC as SCORING

    registry = start_service(REGISTRY, **FAST_FEEDS)
    scoring = start_service(SCORING, registry_target=registry.address, **FAST_FEEDS)
    allocation = start_service(ALLOCATION, registry_target=registry.address, scoring_target=scoring.address)
    remediation = start_service(REMEDIATION, registry_target=registry.address, scoring_target=scoring.address,
                                allocation_target=allocation.address, scheduler_interval=0.1, **FAST_FEEDS)
    running = Stack(registry, scoring, allocation, remediation, clock)
    yield running
    for client in running.clients:
        client.close()


@pytest.fixture
def seeded(stack: Stack) -> Seed:
    return seed(stack)


@pytest.fixture
def make_app(stack: Stack) -> Iterator[Callable[..., Any]]:
    gateways: list[Gateway] = []

    def make(**overrides: Any) -> Any:
        settings = dashboard_settings(stack, **overrides)
        gateway = Gateway(settings)
        gateways.append(gateway)
        app = create_app(settings, clock=stack.clock, gateway=gateway)
        app.testing = True
        return app

    yield make
    for gateway in gateways:
        gateway.close()
