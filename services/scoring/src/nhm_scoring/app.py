"""Composition root of the scoring service."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import MetaData

from nhm.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from nhm_platform.replica import ApiKeyReplica
from nhm_platform.server import ServiceRegistration, method_names
from nhm_platform.service import BuiltService, ServiceContext, ServiceSpec
from nhm_scoring.health_feed import HealthFeed
from nhm_scoring.housekeeping import Housekeeper
from nhm_scoring.ingestion import Ingestion, IngestLimits
from nhm_scoring.models import audit, cursors
from nhm_scoring.policies import Policies
from nhm_scoring.reading import Reading
from nhm_scoring.registry_feed import RegistryReplica, registry_follower
from nhm_scoring.rescore_queue import QueuedRescoring
from nhm_scoring.servicer import ScoringServiceServicer
from nhm_scoring.settings import ScoringSettings
from nhm_scoring.weekly_report import WeeklyReports


def build(context: ServiceContext[ScoringSettings]) -> BuiltService:
    settings, db, clock = context.settings, context.db, context.clock
    # Its own table object (same table as models.api_keys), so every service instance caches its own keys.
    api_keys = ApiKeyReplica(MetaData()).bind(db, max_age=settings.api_key_cache_seconds)
    housekeeper = Housekeeper(db, clock, settings)
    limits = IngestLimits(max_batch=settings.max_batch_events, max_stream_batch=settings.max_stream_batch_events,
                          max_clock_skew=timedelta(seconds=settings.max_clock_skew),
                          csv_chunk=settings.csv_chunk_rows)
    servicer = ScoringServiceServicer(
        ingestion=Ingestion(db, clock, limits, defer_rescoring=settings.rescore_delay > 0),
        reading=Reading(db, clock, max_batch_get=settings.max_batch_get),
        reports=WeeklyReports(db, clock),
        policies=Policies(db, clock, housekeeper),
        health_feed=HealthFeed(db, clock, poll_interval=settings.watch_poll_interval,
                               heartbeat_interval=settings.watch_heartbeat_interval),
        max_batch_events=settings.max_batch_events,
    )
    service_name = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name
    registration = ServiceRegistration(
        service_names=[service_name],
        add_to_server=lambda server: scoring_pb2_grpc.add_ScoringServiceServicer_to_server(servicer, server),
        rate_limited_methods=method_names(service_name, "ReportCallOutcomes", "StreamCallOutcomes",
                                          "ReportComplaints", "ReportReputationObservations",
                                          "ImportReputationCsv"),
    )
    on_start = [housekeeper.start]
    registration.on_stop.append(housekeeper.stop)
    # Also with no delay: marks left by a run that had one are rescored.
    queued = QueuedRescoring(db, clock, delay=settings.rescore_delay if settings.rescore_delay > 0
                             else settings.rescore_interval)
    on_start.append(queued.start)
    registration.on_stop.append(queued.stop)
    if settings.follow_registry:
        follower, channel = registry_follower(settings, db, clock, cursors, RegistryReplica(clock, api_keys))
        on_start.append(follower.start)
        registration.on_stop.append(follower.stop)
        registration.on_stop.append(channel.close)
    return BuiltService(registration, key_resolvers=[api_keys], on_start=on_start, audit=audit)


SPEC = ServiceSpec(
    name="scoring",
    settings_class=ScoringSettings,
    migrations_dir=Path(__file__).parent / "migrations",
    build=build,
)
