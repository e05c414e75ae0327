"""Composition root of the allocation service."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import MetaData

from nhm.allocation.v1 import allocation_pb2, allocation_pb2_grpc
from nhm_allocation.allocator import Allocator
from nhm_allocation.eligibility_replica import EligibilityReplica
from nhm_allocation.housekeeping import Housekeeper
from nhm_allocation.replication import Replication
from nhm_allocation.reports import Reports
from nhm_allocation.servicer import AllocationServiceServicer
from nhm_allocation.settings import AllocationSettings
from nhm_platform.replica import ApiKeyReplica
from nhm_platform.server import ServiceRegistration
from nhm_platform.service import BuiltService, ServiceContext, ServiceSpec


def build(context: ServiceContext[AllocationSettings]) -> BuiltService:
    settings = context.settings
    # Its own instance (same table) per service built, so that several services in one process (tests) each
    # resolve against their own database.
    keys = ApiKeyReplica(MetaData()).bind(context.db, max_age=settings.api_key_cache_seconds)
    replica = EligibilityReplica(context.clock, keys)
    replication = Replication(service=context.name, db=context.db, clock=context.clock, replica=replica,
                              registry_target=settings.registry_target, scoring_target=settings.scoring_target,
                              settings=settings)
    allocator = Allocator(context.db, context.clock, window=settings.candidate_window,
                          staleness=replication.staleness, coalesce_max_calls=settings.coalesce_max_calls,
                          coalesce_transactions=settings.coalesce_transactions,
                          coalesce_lock_wait=settings.coalesce_lock_wait,
                          conflict_retries=settings.conflict_retries,
                          near_cap_room=settings.near_cap_room)
    reports = Reports(context.db, context.clock, max_batch_get=settings.max_batch_get)
    servicer = AllocationServiceServicer(allocator, reports, replication)
    registration = ServiceRegistration(
        service_names=[allocation_pb2.DESCRIPTOR.services_by_name["AllocationService"].full_name],
        add_to_server=lambda server: allocation_pb2_grpc.add_AllocationServiceServicer_to_server(servicer, server),
    )
    housekeeper = Housekeeper(context.db, context.clock, interval=settings.housekeeping_interval,
                              call_id_retention=timedelta(seconds=settings.call_id_retention),
                              ledger_retention=timedelta(seconds=settings.ledger_retention),
                              prospect_retention=timedelta(seconds=settings.prospect_retention))
    registration.on_stop.extend([replication.stop, housekeeper.stop])
    registration.on_serving.append(lambda health_servicer: replication.publish_health(
        health_servicer, stale_after=timedelta(seconds=settings.replication_stale_after),
        interval=settings.replication_health_interval))
    return BuiltService(registration, key_resolvers=[keys], on_start=[replication.start, housekeeper.start])


SPEC = ServiceSpec(
    name="allocation",
    settings_class=AllocationSettings,
    migrations_dir=Path(__file__).parent / "migrations",
    build=build,
)
