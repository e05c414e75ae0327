"""Composition root of the remediation service."""

from __future__ import annotations

from pathlib import Path

from nhm.remediation.v1 import remediation_pb2, remediation_pb2_grpc
from nhm_platform.server import ServiceRegistration
from nhm_platform.service import BuiltService, ServiceContext, ServiceSpec
from nhm_remediation.servicer import RemediationServiceServicer
from nhm_remediation.settings import RemediationSettings


def build(context: ServiceContext[RemediationSettings]) -> BuiltService:
    servicer = RemediationServiceServicer()
    registration = ServiceRegistration(
        service_names=[remediation_pb2.DESCRIPTOR.services_by_name["RemediationService"].full_name],
        add_to_server=lambda server: remediation_pb2_grpc.add_RemediationServiceServicer_to_server(servicer, server),
    )
    return BuiltService(registration)


SPEC = ServiceSpec(
    name="remediation",
    settings_class=RemediationSettings,
    migrations_dir=Path(__file__).parent / "migrations",
    build=build,
)
