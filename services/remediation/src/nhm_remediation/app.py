"""Composition root of the remediation service."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import MetaData

from nhm.remediation.v1 import remediation_pb2, remediation_pb2_grpc
from nhm_platform.replica import ApiKeyReplica, upstream_channel
from nhm_platform.server import ServiceRegistration
from nhm_platform.service import BuiltService, ServiceContext, ServiceSpec
from nhm_remediation.case_store import CaseStore
from nhm_remediation.feeds import registry_follower, scoring_follower
from nhm_remediation.models import audit
from nhm_remediation.operations import Operations
from nhm_remediation.scheduler import Scheduler
from nhm_remediation.senders import EmailSender, Notifier, WebhookSender
from nhm_remediation.servicer import RemediationServiceServicer
from nhm_remediation.settings import RemediationSettings
from nhm_remediation.triggers import Triggers
from nhm_remediation.upstream import GrpcRegistry, GrpcScoring


def build(context: ServiceContext[RemediationSettings]) -> BuiltService:
    settings, db, clock = context.settings, context.db, context.clock
    registry_channel = upstream_channel(settings.registry_target, settings)
    scoring_channel = upstream_channel(settings.scoring_target, settings)
    scoring = GrpcScoring(scoring_channel, settings.service_key, settings.upstream_timeout)
    registry = GrpcRegistry(registry_channel, settings.service_key, settings.upstream_timeout)
    notifier = Notifier(WebhookSender(settings.delivery_timeout),
                        EmailSender(settings.smtp_host, settings.smtp_port, settings.smtp_from,
                                    settings.delivery_timeout))
    store = CaseStore()
    scheduler = Scheduler(db, store, clock, settings, registry, notifier, scoring)
    store.wake_with(scheduler.wake)  # a commit that queues work wakes the scheduler at once
    triggers = Triggers(store, clock, timedelta(seconds=settings.recheck_interval))
    ops = Operations(db, clock, store, settings, scoring)
    servicer = RemediationServiceServicer(ops, store, db, clock, poll_interval=settings.watch_poll_interval,
                                          heartbeat_interval=settings.watch_heartbeat_interval)
    # Per service instance (the table is the one models.py declares), so replicas in one process stay apart.
    keys = ApiKeyReplica(MetaData()).bind(db, max_age=settings.api_key_cache_seconds)
    followers = []
    if settings.follow_upstreams:
        followers = [registry_follower(db, clock, registry_channel, settings.service_key, store, triggers, keys),
                     scoring_follower(db, clock, scoring_channel, settings.service_key, triggers)]

    def start() -> None:
        for follower in followers:
            follower.start()
        scheduler.start()

    def stop() -> None:
        for follower in followers:
            follower.stop()
        scheduler.stop()
        registry_channel.close()
        scoring_channel.close()

    registration = ServiceRegistration(
        service_names=[remediation_pb2.DESCRIPTOR.services_by_name["RemediationService"].full_name],
        add_to_server=lambda server: remediation_pb2_grpc.add_RemediationServiceServicer_to_server(servicer, server),
        on_stop=[stop],
    )
    return BuiltService(registration, key_resolvers=[keys], on_start=[start], audit=audit)


SPEC = ServiceSpec(
    name="remediation",
    settings_class=RemediationSettings,
    migrations_dir=Path(__file__).parent / "migrations",
    build=build,
)
