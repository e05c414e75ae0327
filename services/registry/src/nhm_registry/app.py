"""Composition root of the registry service."""

from __future__ import annotations

from pathlib import Path

from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm_platform.server import ServiceRegistration
from nhm_platform.service import BuiltService, ServiceContext, ServiceSpec
from nhm_registry.servicer import RegistryServiceServicer
from nhm_registry.settings import RegistrySettings


def build(context: ServiceContext[RegistrySettings]) -> BuiltService:
    servicer = RegistryServiceServicer()
    registration = ServiceRegistration(
        service_names=[registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name],
        add_to_server=lambda server: registry_pb2_grpc.add_RegistryServiceServicer_to_server(servicer, server),
    )
    return BuiltService(registration)


SPEC = ServiceSpec(
    name="registry",
    settings_class=RegistrySettings,
    migrations_dir=Path(__file__).parent / "migrations",
    build=build,
)
