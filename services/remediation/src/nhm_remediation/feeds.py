"""Following the upstream feeds: the registry's WatchChanges (numbers, campaigns, assignments, tenants, API keys)
and scoring's WatchHealth. Each batch is applied with its cursor in one transaction (``follow_feed``)."""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy.orm import Session

from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from nhm.type.v1 import types_pb2
from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.feed import FeedFollower
from nhm_platform.replica import ApiKeyReplica, follow_feed, service_metadata
from nhm_remediation.case_store import CaseStore
from nhm_remediation.convert import health_from_proto, number_from_proto, profile_from_proto
from nhm_remediation.models import cursors
from nhm_remediation.triggers import Triggers

SERVICE = "remediation"


def apply_registry_change(store: CaseStore, triggers: Triggers, keys: ApiKeyReplica, session: Session,
                          change: registry_pb2.WatchChangesResponse) -> None:
    which = change.WhichOneof("resource")
    deleted = change.kind == types_pb2.CHANGE_KIND_DELETED
    replicas = store.replicas
    if which == "number":
        view = number_from_proto(change.tenant_id, change.number)
        if deleted:
            replicas.delete_number(session, view.tenant_id, view.phone_number)
        else:
            triggers.on_number(session, view)
    elif which == "campaign":
        tenant_id = change.campaign.tenant_id or change.tenant_id
        if deleted:
            replicas.delete_campaign(session, tenant_id, change.campaign.id)
        else:
            replicas.upsert_campaign(session, tenant_id, change.campaign.id, change.campaign.name)
    elif which == "assignment":
        a = change.assignment
        tenant_id = a.tenant_id or change.tenant_id
        if deleted:
            replicas.unassign(session, tenant_id, a.campaign_id, a.phone_number)
        else:
            replicas.assign(session, tenant_id, a.campaign_id, a.phone_number)
    elif which == "tenant":
        if deleted:
            replicas.delete_tenant(session, change.tenant.id)
        else:
            replicas.upsert_tenant(session, change.tenant.id, change.tenant.display_name,
                                   profile_from_proto(change.tenant.business_profile))
    elif which == "api_key":
        keys.apply(session, change.api_key)


def apply_health_change(triggers: Triggers, session: Session, change: scoring_pb2.WatchHealthResponse) -> None:
    if not change.HasField("health"):
        return
    health = change.health
    view = health_from_proto(health)
    if view is None:
        return
    cause = change.transition.cause if change.HasField("transition") else ""
    triggers.on_health(session, health.tenant_id, health.phone_number, view, int(change.revision), cause)


def registry_follower(db: Database, clock: Clock, channel: grpc.Channel, service_key: str, store: CaseStore,
                      triggers: Triggers, keys: ApiKeyReplica) -> FeedFollower:
    stub = registry_pb2_grpc.RegistryServiceStub(channel)

    def open_stream(after: int, snapshot: bool) -> Any:
        return stub.WatchChanges(registry_pb2.WatchChangesRequest(after_revision=after, snapshot=snapshot),
                                 metadata=service_metadata(service_key))

    def reset(session: Session) -> None:
        store.replicas.reset_registry(session)
        keys.clear(session)

    def apply_change(session: Session, change: registry_pb2.WatchChangesResponse) -> None:
        apply_registry_change(store, triggers, keys, session, change)

    return follow_feed(service=SERVICE, upstream="registry", db=db, cursors=cursors, clock=clock,
                       open_stream=open_stream, reset=reset, apply_change=apply_change)


def scoring_follower(db: Database, clock: Clock, channel: grpc.Channel, service_key: str,
                     triggers: Triggers) -> FeedFollower:
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)

    def open_stream(after: int, snapshot: bool) -> Any:
        return stub.WatchHealth(scoring_pb2.WatchHealthRequest(after_revision=after, snapshot=snapshot),
                                metadata=service_metadata(service_key))

    def reset(_session: Session) -> None:
        # Health rows are kept: each snapshot item is compared with what was known, so a resync opens cases only
        # for numbers that really changed (and each row's revision is reset by the snapshot item).
        return None

    return follow_feed(service=SERVICE, upstream="scoring", db=db, cursors=cursors, clock=clock,
                       open_stream=open_stream, reset=reset,
                       apply_change=lambda session, change: apply_health_change(triggers, session, change))
