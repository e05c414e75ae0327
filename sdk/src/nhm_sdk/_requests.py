"""Request building shared by Client and AsyncClient: plain values in, request messages out.

Writes get a uuid4 request id (call id, event id) when the caller gives none, so a retried write is applied once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

from google.protobuf.message import Message

from nhm.allocation.v1 import allocation_pb2 as alloc
from nhm.audit.v1 import audit_pb2 as audit
from nhm.registry.v1 import registry_pb2 as reg
from nhm.remediation.v1 import remediation_pb2 as rem
from nhm.scoring.v1 import scoring_pb2 as sco
from nhm.type.v1 import types_pb2 as types
from nhm_sdk._config import AUDITED_SERVICES
from nhm_sdk._convert import (
    DurationLike,
    TimestampLike,
    enum_number,
    field_mask,
    fill,
    to_message,
    to_timestamp,
)

EnumLike: TypeAlias = int | str
MessageLike: TypeAlias = Message | Mapping[str, Any]
NumberSpecLike: TypeAlias = str | reg.NumberSpec | Mapping[str, Any]
CallingPolicyLike: TypeAlias = reg.CallingPolicy | Mapping[str, Any]
BusinessProfileLike: TypeAlias = reg.BusinessProfile | Mapping[str, Any]
WarmupPlanLike: TypeAlias = reg.WarmupPlan | Mapping[str, Any]
CallOutcomeLike: TypeAlias = sco.CallOutcome | Mapping[str, Any]
ComplaintLike: TypeAlias = sco.Complaint | Mapping[str, Any]
ObservationLike: TypeAlias = sco.ReputationObservation | Mapping[str, Any]
ScoringPolicyLike: TypeAlias = sco.ScoringPolicy | Mapping[str, Any]
RemediationPolicyLike: TypeAlias = rem.RemediationPolicy | Mapping[str, Any]

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

__all__ = ["DurationLike", "TimestampLike"]

V = TypeVar("V", bound=int)


def new_id() -> str:
    return str(uuid.uuid4())


def _enums(enum: _EnumTypeWrapper[V], values: Iterable[EnumLike] | EnumLike | None, field: str) -> list[V]:
    if values is None:
        return []
    if isinstance(values, int | str):
        values = [values]
    return [cast(V, enum_number(enum.DESCRIPTOR, v, field)) for v in values]


def _enum(enum: _EnumTypeWrapper[V], value: EnumLike | None, field: str) -> V:
    return cast(V, 0 if value is None else enum_number(enum.DESCRIPTOR, value, field))


def _without_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --- registry -------------------------------------------------------------------------------------------------

def number_spec(value: NumberSpecLike, **fields: Any) -> reg.NumberSpec:
    if isinstance(value, str):
        spec = reg.NumberSpec(phone_number=value)
    else:
        spec = reg.NumberSpec()
        spec.CopyFrom(to_message(reg.NumberSpec, value))
    fill(spec, _without_none(**fields))
    return spec


def create_number(phone_number: NumberSpecLike, request_id: str | None, **fields: Any) -> reg.CreateNumberRequest:
    return reg.CreateNumberRequest(number=number_spec(phone_number, **fields), request_id=request_id or new_id())


def batch_create_numbers(numbers: Iterable[NumberSpecLike], request_id: str | None,
                         campaign_ids: Iterable[str] | None) -> reg.BatchCreateNumbersRequest:
    specs = []
    for item in numbers:
        spec = number_spec(item)
        if campaign_ids:
            spec.campaign_ids.extend(c for c in campaign_ids if c not in spec.campaign_ids)
        specs.append(spec)
    return reg.BatchCreateNumbersRequest(numbers=specs, request_id=request_id or new_id())


def list_numbers(*, page_size: int, states: Iterable[EnumLike] | EnumLike | None, campaign_id: str,
                 area_code: str, region: str, attestations: Iterable[EnumLike] | EnumLike | None,
                 labels: Mapping[str, str] | None, order_by: EnumLike | None, descending: bool,
                 phone_number_prefix: str) -> reg.ListNumbersRequest:
    return reg.ListNumbersRequest(
        page_size=page_size, states=_enums(types.LifecycleState, states, "states"), campaign_id=campaign_id,
        area_code=area_code, region=region, attestations=_enums(types.Attestation, attestations, "attestations"),
        labels=dict(labels or {}), order_by=_enum(reg.NumberOrderBy, order_by, "order_by"), descending=descending,
        phone_number_prefix=phone_number_prefix)


NUMBER_MUTABLE = ("display_name", "provider", "attestation", "registrations", "inbound_enabled",
                  "inbound_required_until", "labels", "warmup_plan")


def update_number(phone_number: str, changes: Mapping[str, Any], etag: str | None,
                  request_id: str | None) -> reg.UpdateNumberRequest:
    given = _without_none(**changes)
    if not given:
        raise ValueError("update_number: name at least one field to change")
    number = reg.Number(phone_number=phone_number)
    fill(number, given)
    return reg.UpdateNumberRequest(number=number, update_mask=field_mask(sorted(given)), etag=etag or "",
                                   request_id=request_id or new_id())


def transition_number(phone_number: str, target_state: EnumLike, *, reason: str,
                      rest_until: TimestampLike | None, warmup_plan: WarmupPlanLike | None, etag: str | None,
                      request_id: str | None) -> reg.TransitionNumberRequest:
    request = reg.TransitionNumberRequest(
        phone_number=phone_number, target_state=_enum(types.LifecycleState, target_state, "target_state"),
        reason=reason, etag=etag or "", request_id=request_id or new_id())
    if rest_until is not None:
        request.rest_until.CopyFrom(to_timestamp(rest_until))
    if warmup_plan is not None:
        request.warmup_plan.CopyFrom(to_message(reg.WarmupPlan, warmup_plan))
    return request


def create_campaign(name: str, description: str, policy: CallingPolicyLike | None,
                    request_id: str | None) -> reg.CreateCampaignRequest:
    campaign = reg.Campaign(name=name, description=description)
    if policy is not None:
        campaign.policy.CopyFrom(to_message(reg.CallingPolicy, policy))
    return reg.CreateCampaignRequest(campaign=campaign, request_id=request_id or new_id())


def _nested_mask(prefix: str, value: Message | Mapping[str, Any]) -> list[str]:
    """A whole message replaces the field; a mapping changes only the sub-fields it names."""
    if isinstance(value, Mapping):
        return [f"{prefix}.{key}" for key in sorted(value)]
    return [prefix]


def update_campaign(campaign_id: str, *, name: str | None, description: str | None,
                    policy: CallingPolicyLike | None, etag: str | None,
                    request_id: str | None) -> reg.UpdateCampaignRequest:
    campaign = reg.Campaign(id=campaign_id)
    paths: list[str] = []
    if name is not None:
        campaign.name = name
        paths.append("name")
    if description is not None:
        campaign.description = description
        paths.append("description")
    if policy is not None:
        campaign.policy.CopyFrom(to_message(reg.CallingPolicy, policy))
        paths.extend(_nested_mask("policy", policy))
    if not paths:
        raise ValueError("update_campaign: name at least one field to change")
    return reg.UpdateCampaignRequest(campaign=campaign, update_mask=field_mask(paths), etag=etag or "",
                                     request_id=request_id or new_id())


def create_tenant(tenant_id: str, display_name: str, business_profile: BusinessProfileLike | None,
                  request_id: str | None) -> reg.CreateTenantRequest:
    tenant = reg.Tenant(id=tenant_id, display_name=display_name)
    if business_profile is not None:
        tenant.business_profile.CopyFrom(to_message(reg.BusinessProfile, business_profile))
    return reg.CreateTenantRequest(tenant=tenant, request_id=request_id or new_id())


def update_tenant(tenant_id: str, *, display_name: str | None, business_profile: BusinessProfileLike | None,
                  etag: str | None, request_id: str | None) -> reg.UpdateTenantRequest:
    tenant = reg.Tenant(id=tenant_id)
    paths: list[str] = []
    if display_name is not None:
        tenant.display_name = display_name
        paths.append("display_name")
    if business_profile is not None:
        tenant.business_profile.CopyFrom(to_message(reg.BusinessProfile, business_profile))
        paths.extend(_nested_mask("business_profile", business_profile))
    if not paths:
        raise ValueError("update_tenant: name at least one field to change")
    return reg.UpdateTenantRequest(tenant=tenant, update_mask=field_mask(paths), etag=etag or "",
                                   request_id=request_id or new_id())


def create_api_key(name: str, role: EnumLike, tenant_id: str, request_id: str | None) -> reg.CreateApiKeyRequest:
    return reg.CreateApiKeyRequest(name=name, role=_enum(reg.ApiKeyRole, role, "role"), tenant_id=tenant_id,
                                   request_id=request_id or new_id())


# --- scoring --------------------------------------------------------------------------------------------------

def _with_event_id(cls: type[Any], value: MessageLike) -> Any:
    message = cls()
    message.CopyFrom(to_message(cls, value))
    if not message.event_id:
        message.event_id = new_id()
    return message


def call_outcomes(outcomes: Iterable[CallOutcomeLike]) -> list[sco.CallOutcome]:
    """Outcomes with an event id each (a fresh uuid4 when missing) and the direction OUTBOUND by default."""
    result = []
    for item in outcomes:
        outcome: sco.CallOutcome = _with_event_id(sco.CallOutcome, item)
        if outcome.direction == sco.CALL_DIRECTION_UNSPECIFIED:
            outcome.direction = sco.CALL_DIRECTION_OUTBOUND
        result.append(outcome)
    return result


def complaints(items: Iterable[ComplaintLike]) -> list[sco.Complaint]:
    result = []
    for item in items:
        complaint: sco.Complaint = _with_event_id(sco.Complaint, item)
        if complaint.kind == sco.COMPLAINT_KIND_UNSPECIFIED:
            complaint.kind = sco.COMPLAINT_KIND_COMPLAINT
        result.append(complaint)
    return result


def observations(items: Iterable[ObservationLike]) -> list[sco.ReputationObservation]:
    return [_with_event_id(sco.ReputationObservation, item) for item in items]


def list_health(*, page_size: int, statuses: Iterable[EnumLike] | EnumLike | None, source: EnumLike | None,
                campaign_id: str, area_code: str, phone_number_prefix: str) -> sco.ListHealthRequest:
    return sco.ListHealthRequest(
        page_size=page_size, statuses=_enums(types.HealthStatus, statuses, "statuses"),
        source=_enum(types.ReputationSource, source, "source"), campaign_id=campaign_id, area_code=area_code,
        phone_number_prefix=phone_number_prefix)


def weekly_report(period_end: TimestampLike | None) -> sco.GetWeeklyReportRequest:
    request = sco.GetWeeklyReportRequest()
    if period_end is not None:
        request.period_end.CopyFrom(to_timestamp(period_end))
    return request


def _policy_update(cls: type[Any], policy: Message | Mapping[str, Any],
                   update_mask: Iterable[str] | None) -> tuple[Any, Any]:
    message = to_message(cls, policy)
    if update_mask is not None:
        paths = list(update_mask)
    elif isinstance(policy, Mapping):
        paths = sorted(policy)
    else:
        paths = [fd.name for fd, _ in message.ListFields()]
    if not paths:
        raise ValueError("name at least one policy field to change")
    return message, field_mask(paths)


def update_scoring_policy(policy: ScoringPolicyLike, update_mask: Iterable[str] | None,
                          request_id: str | None) -> sco.UpdateScoringPolicyRequest:
    message, mask = _policy_update(sco.ScoringPolicy, policy, update_mask)
    return sco.UpdateScoringPolicyRequest(policy=message, update_mask=mask, request_id=request_id or new_id())


# --- allocation -----------------------------------------------------------------------------------------------

def allocate_number(campaign_id: str, destination: str, call_id: str | None,
                    destination_carrier: EnumLike | None) -> alloc.AllocateNumberRequest:
    return alloc.AllocateNumberRequest(
        campaign_id=campaign_id, destination=destination, call_id=call_id or new_id(),
        destination_carrier=_enum(types.Carrier, destination_carrier, "destination_carrier"))


def release_allocation(call_id: str, request_id: str | None) -> alloc.ReleaseAllocationRequest:
    return alloc.ReleaseAllocationRequest(call_id=call_id, request_id=request_id or new_id())


def capacity_plan(campaign_id: str, expected_daily_calls: int,
                  resting_buffer: float | None) -> alloc.GetCapacityPlanRequest:
    request = alloc.GetCapacityPlanRequest(campaign_id=campaign_id, expected_daily_calls=expected_daily_calls)
    if resting_buffer is not None:
        request.resting_buffer = resting_buffer
    return request


# --- remediation ----------------------------------------------------------------------------------------------

def open_case(phone_number: str, kind: EnumLike, reason: str, request_id: str | None) -> rem.OpenCaseRequest:
    return rem.OpenCaseRequest(phone_number=phone_number, kind=_enum(rem.CaseKind, kind, "kind"), reason=reason,
                               request_id=request_id or new_id())


def list_cases(*, page_size: int, states: Iterable[EnumLike] | EnumLike | None,
               stages: Iterable[EnumLike] | EnumLike | None, overdue: bool, phone_number: str,
               campaign_id: str) -> rem.ListCasesRequest:
    return rem.ListCasesRequest(page_size=page_size, states=_enums(rem.CaseState, states, "states"),
                                stages=_enums(rem.CaseStage, stages, "stages"), overdue=overdue,
                                phone_number=phone_number, campaign_id=campaign_id)


def list_tasks(*, page_size: int, kinds: Iterable[EnumLike] | EnumLike | None,
               statuses: Iterable[EnumLike] | EnumLike | None, overdue: bool) -> rem.ListTasksRequest:
    return rem.ListTasksRequest(page_size=page_size, kinds=_enums(rem.TaskKind, kinds, "kinds"),
                                statuses=_enums(rem.TaskStatus, statuses, "statuses"), overdue=overdue)


def update_task(case_id: str, task_id: str, changes: Mapping[str, Any], etag: str | None,
                request_id: str | None) -> rem.UpdateTaskRequest:
    given = _without_none(**changes)
    if not given:
        raise ValueError("update_task: name at least one field to change")
    task = rem.Task(id=task_id, case_id=case_id)
    fill(task, given)
    return rem.UpdateTaskRequest(task=task, update_mask=field_mask(sorted(given)), etag=etag or "",
                                 request_id=request_id or new_id())


def evidence_packet(case_id: str, task_id: str, format: EnumLike) -> rem.GetEvidencePacketRequest:
    return rem.GetEvidencePacketRequest(case_id=case_id, task_id=task_id,
                                        format=_enum(rem.EvidenceFormat, format, "format"))


def create_alert_subscription(channel: EnumLike, target: str, kinds: Iterable[EnumLike] | None,
                              campaign_ids: Iterable[str] | None, signing_secret: str,
                              request_id: str | None) -> rem.CreateAlertSubscriptionRequest:
    subscription = rem.AlertSubscription(
        channel=_enum(rem.AlertChannel, channel, "channel"), target=target,
        kinds=_enums(rem.AlertKind, kinds, "kinds"), campaign_ids=list(campaign_ids or ()))
    return rem.CreateAlertSubscriptionRequest(subscription=subscription, signing_secret=signing_secret,
                                              request_id=request_id or new_id())


def list_alert_deliveries(*, page_size: int, subscription_id: str,
                          states: Iterable[EnumLike] | EnumLike | None) -> rem.ListAlertDeliveriesRequest:
    return rem.ListAlertDeliveriesRequest(page_size=page_size, subscription_id=subscription_id,
                                          states=_enums(rem.DeliveryState, states, "states"))


def update_remediation_policy(policy: RemediationPolicyLike, update_mask: Iterable[str] | None,
                              request_id: str | None) -> rem.UpdateRemediationPolicyRequest:
    message, mask = _policy_update(rem.RemediationPolicy, policy, update_mask)
    return rem.UpdateRemediationPolicyRequest(policy=message, update_mask=mask, request_id=request_id or new_id())


# --- audit ----------------------------------------------------------------------------------------------------

def audited_service(service: str) -> str:
    if service not in AUDITED_SERVICES:
        raise ValueError(f"{service!r} keeps no audit trail; choose one of {', '.join(AUDITED_SERVICES)}")
    return service


def list_audit_events(*, page_size: int, resource_types: Iterable[str] | str | None, resource_name: str,
                      actor: str, actions: Iterable[str] | str | None, start_time: TimestampLike | None,
                      end_time: TimestampLike | None, oldest_first: bool) -> audit.ListAuditEventsRequest:
    request = audit.ListAuditEventsRequest(
        page_size=page_size, resource_types=_strings(resource_types), resource_name=resource_name, actor=actor,
        actions=_strings(actions), oldest_first=oldest_first)
    if start_time is not None:
        request.start_time.CopyFrom(to_timestamp(start_time))
    if end_time is not None:
        request.end_time.CopyFrom(to_timestamp(end_time))
    return request


def _strings(values: Iterable[str] | str | None) -> list[str]:
    if values is None:
        return []
    return [values] if isinstance(values, str) else list(values)
