"""Fixtures for remediation tests: fake registry and scoring over gRPC, and the service wired to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from remediation.support import FakeRegistry, FakeScoring, Remediation, grpc_fake, sync_registry

from nhm.registry.v1 import registry_pb2_grpc
from nhm.scoring.v1 import scoring_pb2_grpc
from nhm_remediation.app import SPEC
from nhm_testing.keys import TENANT_A, TENANT_A_KEY, TENANT_B, TENANT_B_KEY
from nhm_testing.services import ServiceHandle

# Fast passes so tests move as soon as the fake clock does.
FAST = {"scheduler_interval": 0.05, "watch_poll_interval": 0.05, "watch_heartbeat_interval": 0.5,
        "allow_http_webhooks": True, "delivery_timeout": 3.0, "upstream_timeout": 5.0}


@dataclass
class Upstreams:
    registry: FakeRegistry
    scoring: FakeScoring
    registry_target: str
    scoring_target: str


@pytest.fixture
def upstreams(clock: Any) -> Iterator[Upstreams]:
    registry, scoring = FakeRegistry(clock), FakeScoring(clock)
    registry.add_tenant(TENANT_A, legal_name="Acme Outbound LLC", address="1 Market St, San Francisco, CA",
                        website="https://acme.example", call_purpose="B2B software sales follow-up",
                        expected_monthly_volume=30000, contact_email="ops@acme.example",
                        contact_phone="+14158675309")
    registry.add_tenant(TENANT_B, legal_name="Globex Corp")
    with grpc_fake(lambda s: registry_pb2_grpc.add_RegistryServiceServicer_to_server(registry, s)) as rt, \
            grpc_fake(lambda s: scoring_pb2_grpc.add_ScoringServiceServicer_to_server(scoring, s)) as st:
        yield Upstreams(registry, scoring, rt, st)


@pytest.fixture
def remediation(start_service: Callable[..., ServiceHandle],
                upstreams: Upstreams) -> Callable[..., ServiceHandle]:
    """remediation(**settings) -> a running remediation service following the fakes."""

    def start(*, sync: bool = True, url: str | None = None, **overrides: Any) -> ServiceHandle:
        values = {**FAST, "registry_target": upstreams.registry_target, "scoring_target": upstreams.scoring_target,
                  **overrides}
        handle = start_service(SPEC, url=url, **values)
        if sync:
            sync_registry(handle, upstreams.registry)
        return handle

    return start


@pytest.fixture
def acme(remediation: Callable[..., ServiceHandle]) -> Iterator[Remediation]:
    """A running service and a stub with acme's key."""
    handle = remediation()
    with handle.channel() as channel:
        yield Remediation(channel, TENANT_A_KEY)


@pytest.fixture
def globex_key() -> str:
    return TENANT_B_KEY
