"""``nhm.audit.v1.AuditService`` on a service's server: proto <-> :mod:`nhm_platform.audit` only.

The kit adds it to every service whose :class:`~nhm_platform.service.BuiltService` has an audit log. Tenant
keys read their own tenant's events; admin and service keys name the tenant in ``x-nhm-tenant-id``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import grpc

from nhm.audit.v1 import audit_pb2 as pb
from nhm.audit.v1 import audit_pb2_grpc
from nhm_platform.audit import AuditEvent, AuditLog, AuditQuery
from nhm_platform.auth import current_principal
from nhm_platform.db import Database
from nhm_platform.protoconv import optional_timestamp, to_timestamp
from nhm_platform.server import ServiceRegistration

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AuditService"].full_name


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, log: AuditLog, db: Database) -> None:
        self._log, self._db = log, db

    def ListAuditEvents(self, request: pb.ListAuditEventsRequest,
                        context: grpc.ServicerContext) -> pb.ListAuditEventsResponse:
        query = AuditQuery(
            tenant_id=current_principal().tenant_for(), resource_types=tuple(request.resource_types),
            resource_name=request.resource_name, actor=request.actor, actions=tuple(request.actions),
            start_time=optional_timestamp(request, "start_time"), end_time=optional_timestamp(request, "end_time"),
            oldest_first=request.oldest_first, page_size=request.page_size, page_token=request.page_token)
        with self._db.read() as session:
            events, token = self._log.list(session, query)
        return pb.ListAuditEventsResponse(events=[event_message(self._log.service, e) for e in events],
                                          next_page_token=token)


def event_message(service: str, event: AuditEvent) -> pb.AuditEvent:
    entry, actor = event.entry, event.actor
    return pb.AuditEvent(
        id=str(event.id), service=service, tenant_id=entry.tenant_id, event_time=to_timestamp(event.event_time),
        actor=pb.Actor(name=actor.name, role=pb.ActorRole.Value(f"ACTOR_ROLE_{actor.role.value}"),
                       api_key_id=actor.key_id),
        request_id=actor.request_id, resource_type=entry.resource_type, resource_name=entry.resource_name,
        action=entry.action, reason=entry.reason,
        changes=[pb.FieldChange(field=c.field, old_value=_json(c.old), new_value=_json(c.new)) for c in entry.changes])


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def with_audit(registration: ServiceRegistration, log: AuditLog, db: Database) -> ServiceRegistration:
    """The registration with the audit service added to the server."""
    servicer = AuditServicer(log, db)
    add_own = registration.add_to_server

    def add_to_server(server: grpc.Server) -> None:
        add_own(server)
        audit_pb2_grpc.add_AuditServiceServicer_to_server(servicer, server)

    return dataclasses.replace(registration, service_names=[*registration.service_names, SERVICE_NAME],
                               add_to_server=add_to_server)
