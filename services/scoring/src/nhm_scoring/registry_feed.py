"""Following the registry's change feed: which numbers each tenant has (with their attestation, inbound setting,
lifecycle state and area code), their campaigns, and API keys.

Changes are applied idempotently (upserts keyed by tenant and number), and the numbers a batch touched are
rescored once at the end of the batch, in the same transaction as the changes and the cursor.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy.orm import Session

from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm.scoring.v1 import scoring_pb2
from nhm.type.v1 import types_pb2
from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.feed import FeedFollower
from nhm_platform.replica import ApiKeyReplica, CursorStore, follow_feed, service_metadata, upstream_channel
from nhm_scoring import health_store, messages, number_replica
from nhm_scoring.health_store import CHANGE_DELETED
from nhm_scoring.number_replica import NumberFacts
from nhm_scoring.rescoring import rescore
from nhm_scoring.settings import ScoringSettings

UPSTREAM = "registry"
_TOUCHED = "nhm_scoring_touched"
_ATTESTATION = {types_pb2.ATTESTATION_A: "A", types_pb2.ATTESTATION_B: "B", types_pb2.ATTESTATION_C: "C"}


def number_facts(number: registry_pb2.Number) -> NumberFacts:
    state = types_pb2.LifecycleState.Name(number.state).removeprefix("LIFECYCLE_STATE_")
    return NumberFacts(number.phone_number, number.area_code, _ATTESTATION.get(number.attestation, ""),
                       number.inbound_enabled, state)


class RegistryReplica:
    def __init__(self, clock: Clock, api_keys: ApiKeyReplica) -> None:
        self._clock = clock
        self._api_keys = api_keys

    def apply_change(self, session: Session, change: registry_pb2.WatchChangesResponse) -> None:
        touched: dict[str, set[str]] = session.info.setdefault(_TOUCHED, defaultdict(set))
        which = change.WhichOneof("resource")
        deleted = change.kind == types_pb2.CHANGE_KIND_DELETED
        if which == "number":
            number = change.number
            tenant = number.tenant_id or change.tenant_id
            if deleted:
                self._forget_number(session, tenant, number.phone_number)
                touched[tenant].discard(number.phone_number)
                return
            number_replica.save(session, tenant, number_facts(number), self._clock.now())
            number_replica.add_campaigns(session, tenant, number.phone_number, number.campaign_ids)
            touched[tenant].add(number.phone_number)
        elif which == "assignment":
            a = change.assignment
            tenant = a.tenant_id or change.tenant_id
            if deleted:
                number_replica.unassign(session, tenant, a.campaign_id, a.phone_number)
            else:
                number_replica.assign(session, tenant, a.campaign_id, a.phone_number)
            touched[tenant].add(a.phone_number)
        elif which == "campaign" and deleted:
            tenant = change.campaign.tenant_id or change.tenant_id
            touched[tenant].update(number_replica.drop_campaign(session, tenant, change.campaign.id))
        elif which == "api_key":
            self._api_keys.apply(session, change.api_key)

    def after_batch(self, session: Session) -> None:
        touched: dict[str, set[str]] = session.info.pop(_TOUCHED, {})
        now = self._clock.now()
        for tenant, phones in touched.items():
            rescore(session, tenant, phones, now)

    def reset(self, session: Session) -> None:
        """Before a snapshot: forget numbers, assignments and keys (health and history stay)."""
        number_replica.clear(session)
        self._api_keys.clear(session)

    def _forget_number(self, session: Session, tenant: str, phone: str) -> None:
        number_replica.remove(session, tenant, phone)
        previous = health_store.get(session, tenant, phone)
        if previous is None:
            return
        health_store.remove(session, tenant, phone)
        now = self._clock.now()
        change = scoring_pb2.WatchHealthResponse(health=messages.as_read(previous.payload, previous.update_time, now))
        health_store.publish(session, tenant, phone, CHANGE_DELETED, change, now)


def registry_follower(settings: ScoringSettings, db: Database, clock: Clock, cursors: CursorStore,
                      replica: RegistryReplica) -> tuple[FeedFollower, Any]:
    """The follower of the registry's feed, and the channel it uses (close it on stop)."""
    channel = upstream_channel(settings.registry_target, settings)
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    metadata = service_metadata(settings.service_key)

    def open_stream(after: int, snapshot: bool) -> Any:
        return stub.WatchChanges(registry_pb2.WatchChangesRequest(after_revision=after, snapshot=snapshot),
                                 metadata=metadata)

    follower = follow_feed(service="scoring", upstream=UPSTREAM, db=db, cursors=cursors, clock=clock,
                           open_stream=open_stream, apply_change=replica.apply_change, reset=replica.reset,
                           after_batch=replica.after_batch)
    return follower, channel
