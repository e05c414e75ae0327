"""A real registry server per test (SQLite and PostgreSQL), its stub, and small call helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from nhm.registry.v1 import registry_pb2 as pb
from nhm.registry.v1 import registry_pb2_grpc
from nhm_registry.app import SPEC
from nhm_testing.errors import typed_detail, violations
from nhm_testing.keys import ADMIN_KEY, SERVICE_KEY, TENANT_A_KEY, TENANT_B_KEY, auth

# Valid, dialable, geographic US numbers (not 555-01xx).
SF = "+14152220123"


def phone(i: int, area_code: str = "415") -> str:
    """Distinct valid numbers: +1 <area> 2xx xxxx."""
    return f"+1{area_code}{200 + i // 10_000:03d}{i % 10_000:04d}"


@dataclass
class Registry:
    """The registry under test: the stub plus call metadata for each kind of caller."""

    stub: registry_pb2_grpc.RegistryServiceStub
    channel: grpc.Channel
    handle: Any
    a: tuple[tuple[str, str], ...] = auth(TENANT_A_KEY)
    b: tuple[tuple[str, str], ...] = auth(TENANT_B_KEY)
    admin: tuple[tuple[str, str], ...] = auth(ADMIN_KEY)
    service: tuple[tuple[str, str], ...] = auth(SERVICE_KEY)

    phone = staticmethod(lambda i, area_code="415": phone(i, area_code))
    error = staticmethod(lambda call: error_of(call))
    violations = staticmethod(lambda error: violations(error))
    reason = staticmethod(lambda error: reason(error))

    def create(self, number: str = SF, metadata: Any = None, **fields: Any) -> pb.Number:
        spec = pb.NumberSpec(phone_number=number, **fields)
        return self.stub.CreateNumber(pb.CreateNumberRequest(number=spec), metadata=metadata or self.a).number

    def campaign(self, name: str = "Outbound", metadata: Any = None, **policy: Any) -> pb.Campaign:
        request = pb.CreateCampaignRequest(campaign=pb.Campaign(name=name, policy=pb.CallingPolicy(**policy)))
        return self.stub.CreateCampaign(request, metadata=metadata or self.a).campaign


@pytest.fixture
def registry(start_service: Any) -> Iterator[Registry]:
    handle = start_service(SPEC, watch_heartbeat_interval=0.2, watch_poll_interval=0.05)
    channel = handle.channel()
    yield Registry(registry_pb2_grpc.RegistryServiceStub(channel), channel, handle)
    channel.close()


def error_of(call: Any) -> grpc.RpcError:
    """The RpcError a call raises."""
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def reason(error: grpc.RpcError) -> str:
    info = typed_detail(error, error_details_pb2.ErrorInfo)
    return info.reason if info is not None else ""
