"""Composition root of the allocation service."""

from __future__ import annotations

from pathlib import Path

from nhm.allocation.v1 import allocation_pb2, allocation_pb2_grpc
from nhm_allocation.servicer import AllocationServiceServicer
from nhm_allocation.settings import AllocationSettings
from nhm_platform.server import ServiceRegistration
from nhm_platform.service import BuiltService, ServiceContext, ServiceSpec


def build(context: ServiceContext[AllocationSettings]) -> BuiltService:
    servicer = AllocationServiceServicer()
    registration = ServiceRegistration(
        service_names=[allocation_pb2.DESCRIPTOR.services_by_name["AllocationService"].full_name],
        add_to_server=lambda server: allocation_pb2_grpc.add_AllocationServiceServicer_to_server(servicer, server),
    )
    return BuiltService(registration)


SPEC = ServiceSpec(
    name="allocation",
    settings_class=AllocationSettings,
    migrations_dir=Path(__file__).parent / "migrations",
    build=build,
)
