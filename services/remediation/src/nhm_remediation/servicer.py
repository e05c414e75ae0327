"""gRPC edge of the remediation service: proto <-> domain only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from nhm.remediation.v1 import remediation_pb2 as pb
from nhm.remediation.v1 import remediation_pb2_grpc
from nhm.type.v1 import types_pb2
from nhm_platform.audit import Actor
from nhm_platform.auth import current_principal
from nhm_platform.errors import FieldViolation, InvalidArgument
from nhm_platform.feed import Heartbeat, SnapshotItem
from nhm_platform.fieldmask import checked_paths
from nhm_platform.protoconv import from_timestamp, to_timestamp
from nhm_remediation import policy as policies
from nhm_remediation.case_repository import CaseFilter, TaskFilter
from nhm_remediation.case_store import CaseStore
from nhm_remediation.convert import (
    case_to_proto,
    delivery_to_proto,
    enum_name,
    event_to_proto,
    packet_to_proto,
    policy_to_proto,
    policy_values,
    subscription_to_proto,
    task_to_proto,
)
from nhm_remediation.domain import (
    AlertChannel,
    AlertKind,
    CaseKind,
    CaseStage,
    CaseState,
    DeliveryState,
    TaskKind,
    TaskOutcome,
    TaskStatus,
)
from nhm_remediation.models import case_feed
from nhm_remediation.operations import Operations, Page
from nhm_remediation.workflow import TASK_MUTABLE


def _enum_list(values: Any, enum: Any, prefix: str, domain: Any, field: str) -> list[Any]:
    """Filter values as domain enums; UNSPECIFIED or unknown numbers are refused with the field named."""
    result, violations = [], []
    for i, value in enumerate(values):
        name = enum_name(enum, prefix, value)
        if not name:
            violations.append(FieldViolation(f"{field}[{i}]", "not a valid value"))
        else:
            result.append(domain(name))
    if violations:
        raise InvalidArgument.for_fields(violations)
    return result


class RemediationServiceServicer(remediation_pb2_grpc.RemediationServiceServicer):
    def __init__(self, ops: Operations, store: CaseStore, db: Any, clock: Any, *, poll_interval: float,
                 heartbeat_interval: float) -> None:
        self._ops, self._store, self._db, self._clock = ops, store, db, clock
        self._poll_interval, self._heartbeat_interval = poll_interval, heartbeat_interval

    @staticmethod
    def _writer(request_id: str = "") -> tuple[Actor, str]:
        """Who writes (for the audit trail) and for which tenant; read-only keys are refused."""
        principal = current_principal()
        tenant_id = principal.tenant_for()
        principal.require_write()
        return Actor.of(principal, request_id), tenant_id

    # --- Cases ---

    def OpenCase(self, request: pb.OpenCaseRequest, context: grpc.ServicerContext) -> pb.OpenCaseResponse:
        actor, tenant_id = self._writer(request.request_id)
        kind_name = enum_name(pb.CaseKind, "CASE_KIND", request.kind)
        if request.kind and not kind_name:
            raise InvalidArgument.for_field("kind", "REMEDIATION or WATCH")
        kind = CaseKind(kind_name) if kind_name else None

        def work(session: Any, now: Any) -> pb.OpenCaseResponse:
            case, created = self._ops.open_case(session, now, actor, tenant_id, request.phone_number, kind,
                                                request.reason)
            return pb.OpenCaseResponse(case=case_to_proto(case, now), created=created)

        return self._ops.write(tenant_id, request.request_id, "OpenCase", request, pb.OpenCaseResponse, work)

    def GetCase(self, request: pb.GetCaseRequest, context: grpc.ServicerContext) -> pb.GetCaseResponse:
        tenant_id = current_principal().tenant_for()
        case = self._ops.get_case(tenant_id, request.case_id)
        return pb.GetCaseResponse(case=case_to_proto(case, self._clock.now()))

    def ListCases(self, request: pb.ListCasesRequest, context: grpc.ServicerContext) -> pb.ListCasesResponse:
        tenant_id = current_principal().tenant_for()
        where = CaseFilter(
            states=_enum_list(request.states, pb.CaseState, "CASE_STATE", CaseState, "states"),
            stages=_enum_list(request.stages, pb.CaseStage, "CASE_STAGE", CaseStage, "stages"),
            overdue=request.overdue, phone_number=request.phone_number, campaign_id=request.campaign_id)
        cases, token = self._ops.list_cases(tenant_id, where, Page(request.page_size, request.page_token))
        now = self._clock.now()
        return pb.ListCasesResponse(cases=[case_to_proto(c, now) for c in cases], next_page_token=token)

    def ListTasks(self, request: pb.ListTasksRequest, context: grpc.ServicerContext) -> pb.ListTasksResponse:
        tenant_id = current_principal().tenant_for()
        where = TaskFilter(kinds=_enum_list(request.kinds, pb.TaskKind, "TASK_KIND", TaskKind, "kinds"),
                           statuses=_enum_list(request.statuses, pb.TaskStatus, "TASK_STATUS", TaskStatus, "statuses"),
                           overdue=request.overdue)
        tasks, token = self._ops.list_tasks(tenant_id, where, Page(request.page_size, request.page_token))
        now = self._clock.now()
        return pb.ListTasksResponse(tasks=[task_to_proto(t, now) for t in tasks], next_page_token=token)

    def UpdateTask(self, request: pb.UpdateTaskRequest, context: grpc.ServicerContext) -> pb.UpdateTaskResponse:
        actor, tenant_id = self._writer(request.request_id)
        paths = checked_paths(request.update_mask, TASK_MUTABLE)
        given = request.task
        changes: dict[str, Any] = {}
        for path in paths:
            if path == "status":
                name = enum_name(pb.TaskStatus, "TASK_STATUS", given.status)
                if not name:
                    raise InvalidArgument.for_field("task.status", "PENDING, IN_PROGRESS, DONE, SKIPPED or FAILED")
                changes["status"] = TaskStatus(name)
            elif path == "outcome":
                name = enum_name(pb.TaskOutcome, "TASK_OUTCOME", given.outcome)
                if given.outcome and not name:
                    raise InvalidArgument.for_field("task.outcome", "CLEARED, REFUSED or NEEDS_REVIEW")
                changes["outcome"] = TaskOutcome(name) if name else None
            elif path == "due_time":
                changes["due_time"] = from_timestamp(given.due_time) if given.HasField("due_time") else None
            else:
                changes[path] = getattr(given, path)

        def work(session: Any, now: Any) -> pb.UpdateTaskResponse:
            task, case = self._ops.update_task(session, now, actor, tenant_id, given.case_id, given.id, changes,
                                               request.etag)
            return pb.UpdateTaskResponse(task=task_to_proto(task, now), case=case_to_proto(case, now))

        return self._ops.write(tenant_id, request.request_id, "UpdateTask", request, pb.UpdateTaskResponse, work)

    def AddCaseNote(self, request: pb.AddCaseNoteRequest, context: grpc.ServicerContext) -> pb.AddCaseNoteResponse:
        actor, tenant_id = self._writer(request.request_id)

        def work(session: Any, now: Any) -> pb.AddCaseNoteResponse:
            case = self._ops.add_note(session, now, actor, tenant_id, request.case_id, request.note)
            return pb.AddCaseNoteResponse(case=case_to_proto(case, now))

        return self._ops.write(tenant_id, request.request_id, "AddCaseNote", request, pb.AddCaseNoteResponse, work)

    def CancelCase(self, request: pb.CancelCaseRequest, context: grpc.ServicerContext) -> pb.CancelCaseResponse:
        actor, tenant_id = self._writer(request.request_id)

        def work(session: Any, now: Any) -> pb.CancelCaseResponse:
            case = self._ops.cancel(session, now, actor, tenant_id, request.case_id, request.reason,
                                    request.restore_number)
            return pb.CancelCaseResponse(case=case_to_proto(case, now))

        return self._ops.write(tenant_id, request.request_id, "CancelCase", request, pb.CancelCaseResponse, work)

    def ListCaseEvents(self, request: pb.ListCaseEventsRequest,
                       context: grpc.ServicerContext) -> pb.ListCaseEventsResponse:
        tenant_id = current_principal().tenant_for()
        rows, token = self._ops.list_events(tenant_id, request.case_id, Page(request.page_size, request.page_token))
        return pb.ListCaseEventsResponse(events=[event_to_proto(r) for r in rows], next_page_token=token)

    def GetEvidencePacket(self, request: pb.GetEvidencePacketRequest,
                          context: grpc.ServicerContext) -> pb.GetEvidencePacketResponse:
        tenant_id = current_principal().tenant_for()
        if request.format not in (pb.EVIDENCE_FORMAT_UNSPECIFIED, pb.EVIDENCE_FORMAT_JSON, pb.EVIDENCE_FORMAT_CSV):
            raise InvalidArgument.for_field("format", "JSON or CSV")
        export = self._ops.evidence(tenant_id, request.case_id, request.task_id,
                                    request.format == pb.EVIDENCE_FORMAT_CSV)
        return pb.GetEvidencePacketResponse(packets=[packet_to_proto(p) for p in export.packets],
                                            content=export.content, content_type=export.content_type,
                                            filename=export.filename)

    # --- Alerts ---

    def CreateAlertSubscription(self, request: pb.CreateAlertSubscriptionRequest,
                                context: grpc.ServicerContext) -> pb.CreateAlertSubscriptionResponse:
        actor, tenant_id = self._writer(request.request_id)
        sub = request.subscription
        channel_name = enum_name(pb.AlertChannel, "ALERT_CHANNEL", sub.channel)
        kinds = [AlertKind(n) if (n := enum_name(pb.AlertKind, "ALERT_KIND", k)) else None for k in sub.kinds]

        def work(session: Any, now: Any) -> pb.CreateAlertSubscriptionResponse:
            created, secret = self._ops.create_subscription(
                session, now, actor, tenant_id, AlertChannel(channel_name) if channel_name else None, sub.target, kinds,
                list(sub.campaign_ids), request.signing_secret)
            return pb.CreateAlertSubscriptionResponse(subscription=subscription_to_proto(created),
                                                      signing_secret=secret)

        return self._ops.write(tenant_id, request.request_id, "CreateAlertSubscription", request,
                               pb.CreateAlertSubscriptionResponse, work)

    def ListAlertSubscriptions(self, request: pb.ListAlertSubscriptionsRequest,
                               context: grpc.ServicerContext) -> pb.ListAlertSubscriptionsResponse:
        tenant_id = current_principal().tenant_for()
        subs, token = self._ops.list_subscriptions(tenant_id, Page(request.page_size, request.page_token))
        return pb.ListAlertSubscriptionsResponse(subscriptions=[subscription_to_proto(s) for s in subs],
                                                 next_page_token=token)

    def DeleteAlertSubscription(self, request: pb.DeleteAlertSubscriptionRequest,
                                context: grpc.ServicerContext) -> pb.DeleteAlertSubscriptionResponse:
        actor, tenant_id = self._writer()
        self._ops.delete_subscription(actor, tenant_id, request.subscription_id)
        return pb.DeleteAlertSubscriptionResponse()

    def ListAlertDeliveries(self, request: pb.ListAlertDeliveriesRequest,
                            context: grpc.ServicerContext) -> pb.ListAlertDeliveriesResponse:
        tenant_id = current_principal().tenant_for()
        states = _enum_list(request.states, pb.DeliveryState, "DELIVERY_STATE", DeliveryState, "states")
        found, token = self._ops.list_deliveries(tenant_id, request.subscription_id, states,
                                                 Page(request.page_size, request.page_token))
        return pb.ListAlertDeliveriesResponse(deliveries=[delivery_to_proto(d) for d in found], next_page_token=token)

    # --- Policy ---

    def GetRemediationPolicy(self, request: pb.GetRemediationPolicyRequest,
                             context: grpc.ServicerContext) -> pb.GetRemediationPolicyResponse:
        tenant_id = current_principal().tenant_for()
        return pb.GetRemediationPolicyResponse(policy=policy_to_proto(self._ops.get_policy(tenant_id)))

    def UpdateRemediationPolicy(self, request: pb.UpdateRemediationPolicyRequest,
                                context: grpc.ServicerContext) -> pb.UpdateRemediationPolicyResponse:
        actor, tenant_id = self._writer(request.request_id)
        paths = checked_paths(request.update_mask, policies.FIELDS)
        given = policy_values(request.policy)

        def work(session: Any, now: Any) -> pb.UpdateRemediationPolicyResponse:
            effective = self._ops.update_policy(session, now, actor, tenant_id, given, paths)
            return pb.UpdateRemediationPolicyResponse(policy=policy_to_proto(effective))

        return self._ops.write(tenant_id, request.request_id, "UpdateRemediationPolicy", request,
                               pb.UpdateRemediationPolicyResponse, work)

    # --- Feed ---

    def WatchCases(self, request: pb.WatchCasesRequest,
                   context: grpc.ServicerContext) -> Iterator[pb.WatchCasesResponse]:
        principal = current_principal()
        if principal.is_platform:
            tenant_id = request.tenant_id or principal.tenant_id or None
        else:
            tenant_id = principal.tenant_for(request.tenant_id)
        if request.after_revision < 0:
            raise InvalidArgument.for_field("after_revision", "must not be negative")
        cases = self._store.cases

        def snapshot(session: Any) -> Iterator[SnapshotItem]:
            now = self._clock.now()
            for case in cases.snapshot(session, tenant_id):
                yield SnapshotItem(case.tenant_id, "case", case_to_proto(case, now))

        items = case_feed.watch(self._db.read, request.after_revision, tenant_id, context.is_active,
                                poll_interval=self._poll_interval, heartbeat_interval=self._heartbeat_interval,
                                snapshot=snapshot if request.snapshot else None, snapshot_session=self._db.snapshot)
        for item in items:
            if isinstance(item, Heartbeat):
                yield pb.WatchCasesResponse(revision=item.revision, heartbeat=True)
            elif isinstance(item, SnapshotItem):
                yield pb.WatchCasesResponse(revision=0, kind=types_pb2.CHANGE_KIND_CREATED, case=item.payload,
                                            change_time=to_timestamp(self._clock.now()))
            else:
                yield pb.WatchCasesResponse(revision=item.revision, kind=item.kind,
                                            change_time=to_timestamp(item.change_time),
                                            case=pb.Case.FromString(item.payload))
