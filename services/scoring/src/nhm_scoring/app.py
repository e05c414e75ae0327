"""Composition root of the scoring service."""

from __future__ import annotations

from pathlib import Path

from nhm.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from nhm_platform.server import ServiceRegistration
from nhm_platform.service import BuiltService, ServiceContext, ServiceSpec
from nhm_scoring.servicer import ScoringServiceServicer
from nhm_scoring.settings import ScoringSettings


def build(context: ServiceContext[ScoringSettings]) -> BuiltService:
    servicer = ScoringServiceServicer()
    registration = ServiceRegistration(
        service_names=[scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name],
        add_to_server=lambda server: scoring_pb2_grpc.add_ScoringServiceServicer_to_server(servicer, server),
    )
    return BuiltService(registration)


SPEC = ServiceSpec(
    name="scoring",
    settings_class=ScoringSettings,
    migrations_dir=Path(__file__).parent / "migrations",
    build=build,
)
