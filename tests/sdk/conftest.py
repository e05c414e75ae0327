"""Fixtures for the SDK tests: real services on port 0 and SDK clients pointed at them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nhm_sdk import Client, ClientConfig, RetryPolicy
from nhm_testing.keys import ADMIN_KEY, TENANT_A_KEY
from nhm_testing.services import ServiceHandle


@pytest.fixture
def registry(start_service: Callable[..., ServiceHandle]) -> ServiceHandle:
    from nhm_registry.app import SPEC

    return start_service(SPEC)


@pytest.fixture
def make_client() -> Iterator[Callable[..., Client]]:
    """make_client(**ClientConfig fields) → a Client closed after the test."""
    clients: list[Client] = []

    def make(**fields: Any) -> Client:
        fields.setdefault("api_key", TENANT_A_KEY)
        client = Client(ClientConfig(**fields))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(registry: ServiceHandle, make_client: Callable[..., Client]) -> Client:
    """A tenant (acme) client of the registry."""
    return make_client(registry_target=registry.address)


@pytest.fixture
def admin(registry: ServiceHandle, make_client: Callable[..., Client]) -> Client:
    return make_client(registry_target=registry.address, api_key=ADMIN_KEY)


NO_RETRY = RetryPolicy.disabled()
