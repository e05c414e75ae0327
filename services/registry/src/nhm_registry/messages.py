"""Protobuf messages <-> the registry's commands and domain values (nothing else happens here)."""

from __future__ import annotations

import itertools
from enum import StrEnum
from typing import Any

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message

from nhm.registry.v1 import registry_pb2 as pb
from nhm.type.v1 import types_pb2 as types
from nhm_platform.audit import AuditSubject, fields_of
from nhm_platform.feed import ChangeRecord, Heartbeat, SnapshotItem
from nhm_platform.protoconv import from_duration, optional_timestamp, to_duration, to_timestamp
from nhm_registry.commands import (
    BusinessProfileInput,
    CampaignInput,
    NumberFilter,
    NumberInput,
    NumberQuery,
    PolicyInput,
    RegistrationInput,
    TenantInput,
    TimeOfDayInput,
    TransitionInput,
    WarmupPlanInput,
)
from nhm_registry.domain import (
    ApiKey,
    Assignment,
    CallingPolicy,
    Campaign,
    ChangeKind,
    Number,
    NumberOrder,
    RegistrationProgram,
    Resource,
    Tenant,
    Transition,
    WarmupPlan,
    resource_type,
)

_PREFIXES: dict[int, str] = {}


def _prefix(enum: EnumTypeWrapper) -> str:
    key = id(enum)
    if key not in _PREFIXES:
        _PREFIXES[key] = enum.Name(0).removesuffix("UNSPECIFIED")
    return _PREFIXES[key]


def _name(enum: EnumTypeWrapper, value: int) -> str:
    """A proto enum value as a domain name: "ACTIVE", "UNSPECIFIED", or the number for an unknown value."""
    try:
        return enum.Name(value).removeprefix(_prefix(enum))
    except ValueError:
        return str(value)


def _value(enum: EnumTypeWrapper, member: StrEnum | None) -> int:
    return 0 if member is None else enum.Value(_prefix(enum) + member.value)


# --- requests -> commands ---------------------------------------------------------------------------------

def _warmup_input(message: Any, field: str = "warmup_plan") -> WarmupPlanInput | None:
    if not message.HasField(field):
        return None
    plan = getattr(message, field)
    return WarmupPlanInput(tuple(plan.daily_caps),
                           from_duration(plan.step_duration) if plan.HasField("step_duration") else None)


def _registrations_input(items: Any) -> tuple[RegistrationInput, ...]:
    # A number has at most one registration per program, and the service refuses a longer list by its length:
    # one entry past that is enough to say so, and converting hundreds of thousands would take seconds.
    return tuple(RegistrationInput(_name(types.RegistrationProgram, r.program),
                                   _name(types.RegistrationStatus, r.status),
                                   optional_timestamp(r, "status_time"), r.reference)
                 for r in itertools.islice(items, len(RegistrationProgram) + 1))


def number_input(spec: pb.NumberSpec) -> NumberInput:
    return NumberInput(
        phone_number=spec.phone_number, display_name=spec.display_name, provider=spec.provider,
        attestation=_name(types.Attestation, spec.attestation),
        registrations=_registrations_input(spec.registrations), inbound_enabled=spec.inbound_enabled,
        labels=dict(spec.labels), warmup_plan=_warmup_input(spec), start_warming=spec.start_warming,
        campaign_ids=tuple(spec.campaign_ids))


def number_update_input(number: pb.Number) -> NumberInput:
    return NumberInput(
        phone_number=number.phone_number, display_name=number.display_name, provider=number.provider,
        attestation=_name(types.Attestation, number.attestation),
        registrations=_registrations_input(number.registrations), inbound_enabled=number.inbound_enabled,
        inbound_required_until=optional_timestamp(number, "inbound_required_until"), labels=dict(number.labels),
        warmup_plan=_warmup_input(number))


def number_query(request: pb.ListNumbersRequest) -> NumberQuery:
    order = _name(pb.NumberOrderBy, request.order_by)
    return NumberQuery(
        filter=NumberFilter(
            states=tuple(_name(types.LifecycleState, s) for s in request.states),
            campaign_id=request.campaign_id, area_code=request.area_code, region=request.region,
            attestations=tuple(_name(types.Attestation, a) for a in request.attestations),
            labels=dict(request.labels), phone_number_prefix=request.phone_number_prefix),
        order_by=NumberOrder(order) if order in NumberOrder.__members__ else NumberOrder.PHONE_NUMBER,
        descending=request.descending, page_size=request.page_size, page_token=request.page_token)


def transition_input(request: pb.TransitionNumberRequest) -> TransitionInput:
    return TransitionInput(
        phone_number=request.phone_number, target_state=_name(types.LifecycleState, request.target_state),
        reason=request.reason, rest_until=optional_timestamp(request, "rest_until"),
        warmup_plan=_warmup_input(request), etag=request.etag)


def _time_of_day_input(message: Any, field: str) -> TimeOfDayInput | None:
    if not message.HasField(field):
        return None
    value = getattr(message, field)
    return TimeOfDayInput(value.hours, value.minutes)


def _policy_input(message: pb.Campaign) -> PolicyInput:
    if not message.HasField("policy"):
        return PolicyInput()
    p = message.policy

    def optional(name: str) -> Any:
        return getattr(p, name) if p.HasField(name) else None

    tiers = tuple(_name(types.LocalPresenceTier, t) for t in p.local_presence.tiers)
    return PolicyInput(
        daily_cap_per_number=optional("daily_cap_per_number"),
        hourly_cap_per_number=optional("hourly_cap_per_number"),
        local_presence=tiers or None,
        allow_at_risk=optional("allow_at_risk"),
        sticky_caller_id=optional("sticky_caller_id"),
        sticky_ttl=from_duration(p.sticky_ttl) if p.HasField("sticky_ttl") else None,
        calling_window_start=_time_of_day_input(p, "calling_window_start"),
        calling_window_end=_time_of_day_input(p, "calling_window_end"),
        max_calls_per_prospect_per_day=optional("max_calls_per_prospect_per_day"),
        max_calls_per_prospect_per_week=optional("max_calls_per_prospect_per_week"),
        cap_reset_time_zone=optional("cap_reset_time_zone"),
        fallback_behavior=_name(pb.FallbackBehavior, p.fallback_behavior) if p.fallback_behavior else None,
        fallback_phone_number=p.fallback_phone_number or None,
    )


def campaign_input(message: pb.Campaign) -> CampaignInput:
    return CampaignInput(id=message.id, name=message.name, description=message.description,
                         policy=_policy_input(message))


def tenant_input(message: pb.Tenant) -> TenantInput:
    p = message.business_profile
    return TenantInput(id=message.id, display_name=message.display_name, business_profile=BusinessProfileInput(
        legal_name=p.legal_name, address=p.address, website=p.website, call_purpose=p.call_purpose,
        expected_monthly_volume=p.expected_monthly_volume, contact_email=p.contact_email,
        contact_phone=p.contact_phone))


def api_key_role(value: int) -> str:
    return _name(pb.ApiKeyRole, value)


# --- domain -> messages -----------------------------------------------------------------------------------

def _warmup(plan: WarmupPlan) -> pb.WarmupPlan:
    return pb.WarmupPlan(daily_caps=list(plan.daily_caps), step_duration=to_duration(plan.step))


def number(n: Number) -> pb.Number:
    message = pb.Number(
        phone_number=n.phone_number, tenant_id=n.tenant_id, country=n.country, area_code=n.area_code,
        exchange=n.exchange, region=n.region, time_zone=n.time_zone, display_name=n.display_name,
        provider=n.provider, attestation=_value(types.Attestation, n.attestation),
        registrations=[pb.CarrierRegistration(program=_value(types.RegistrationProgram, r.program),
                                              status=_value(types.RegistrationStatus, r.status),
                                              status_time=to_timestamp(r.status_time), reference=r.reference)
                       for r in n.registrations],
        inbound_enabled=n.inbound_enabled, inbound_required_until=to_timestamp(n.inbound_required_until),
        labels=n.labels, state=_value(types.LifecycleState, n.state), state_time=to_timestamp(n.state_time),
        rest_until=to_timestamp(n.rest_until), warmup_start_time=to_timestamp(n.warmup_start_time),
        campaign_ids=n.campaign_ids, create_time=to_timestamp(n.create_time),
        update_time=to_timestamp(n.update_time), etag=n.etag)
    if n.warmup_plan is not None:
        message.warmup_plan.CopyFrom(_warmup(n.warmup_plan))
    return message


def transition(t: Transition) -> pb.NumberTransition:
    return pb.NumberTransition(
        phone_number=t.phone_number, from_state=_value(types.LifecycleState, t.from_state),
        to_state=_value(types.LifecycleState, t.to_state), actor=t.actor, reason=t.reason,
        transition_time=to_timestamp(t.time))


def calling_policy(p: CallingPolicy) -> pb.CallingPolicy:
    return pb.CallingPolicy(
        daily_cap_per_number=p.daily_cap_per_number, hourly_cap_per_number=p.hourly_cap_per_number,
        local_presence=pb.LocalPresencePolicy(tiers=[_value(types.LocalPresenceTier, t) for t in p.local_presence]),
        allow_at_risk=p.allow_at_risk, sticky_caller_id=p.sticky_caller_id, sticky_ttl=to_duration(p.sticky_ttl),
        calling_window_start=types.TimeOfDay(hours=p.calling_window_start.hours,
                                             minutes=p.calling_window_start.minutes),
        calling_window_end=types.TimeOfDay(hours=p.calling_window_end.hours, minutes=p.calling_window_end.minutes),
        max_calls_per_prospect_per_day=p.max_calls_per_prospect_per_day,
        max_calls_per_prospect_per_week=p.max_calls_per_prospect_per_week,
        cap_reset_time_zone=p.cap_reset_time_zone, fallback_behavior=_value(pb.FallbackBehavior, p.fallback_behavior),
        fallback_phone_number=p.fallback_phone_number)


def campaign(c: Campaign) -> pb.Campaign:
    return pb.Campaign(id=c.id, tenant_id=c.tenant_id, name=c.name, description=c.description,
                       policy=calling_policy(c.policy), number_count=c.number_count,
                       create_time=to_timestamp(c.create_time), update_time=to_timestamp(c.update_time), etag=c.etag)


def tenant(t: Tenant) -> pb.Tenant:
    p = t.business_profile
    return pb.Tenant(
        id=t.id, display_name=t.display_name, business_profile=pb.BusinessProfile(
            legal_name=p.legal_name, address=p.address, website=p.website, call_purpose=p.call_purpose,
            expected_monthly_volume=p.expected_monthly_volume, contact_email=p.contact_email,
            contact_phone=p.contact_phone),
        create_time=to_timestamp(t.create_time), update_time=to_timestamp(t.update_time), etag=t.etag)


def api_key(k: ApiKey) -> pb.ApiKey:
    return pb.ApiKey(id=k.id, tenant_id=k.tenant_id, name=k.name, role=_value(pb.ApiKeyRole, k.role),
                     prefix=k.prefix, create_time=to_timestamp(k.create_time),
                     revoke_time=to_timestamp(k.revoke_time))


def assignment(a: Assignment) -> pb.Assignment:
    return pb.Assignment(tenant_id=a.tenant_id, campaign_id=a.campaign_id, phone_number=a.phone_number)


def resource(r: Resource) -> Message:
    """The message the change feed carries for a resource (API keys with their secret's digest)."""
    if isinstance(r, Number):
        return number(r)
    if isinstance(r, Campaign):
        return campaign(r)
    if isinstance(r, Assignment):
        return assignment(r)
    if isinstance(r, Tenant):
        return tenant(r)
    return pb.ApiKeyCredential(api_key=api_key(r), secret_sha256=r.secret_sha256)


def _resource_key(r: Resource) -> str:
    if isinstance(r, Number):
        return r.phone_number
    if isinstance(r, Assignment):
        return f"{r.campaign_id}/{r.phone_number}"
    return r.id


def feed_entry(kind: ChangeKind, r: Resource) -> dict[str, Any]:
    return {"tenant_id": r.id if isinstance(r, Tenant) else r.tenant_id,
            "kind": _value(types.ChangeKind, kind), "resource_type": resource_type(r),
            "resource_key": _resource_key(r), "payload": resource(r).SerializeToString()}


# Fields an audit event leaves out: the resource's identity (in its name), and what changes on every write.
_AUDIT_OMITS = ("tenant_id", "phone_number", "id", "etag", "create_time", "update_time", "number_count")


def audit_subject(r: Resource) -> AuditSubject:
    """How the audit trail names a resource, and the fields it compares. Of a key only its name, role and
    revocation: never its secret, nor the prefix of it."""
    if isinstance(r, Number):
        return AuditSubject(r.tenant_id, "number", f"numbers/{r.phone_number}", fields_of(number(r), _AUDIT_OMITS))
    if isinstance(r, Campaign):
        return AuditSubject(r.tenant_id, "campaign", f"campaigns/{r.id}", fields_of(campaign(r), _AUDIT_OMITS))
    if isinstance(r, Tenant):
        return AuditSubject(r.id, "tenant", f"tenants/{r.id}", fields_of(tenant(r), _AUDIT_OMITS))
    if isinstance(r, ApiKey):
        return AuditSubject(r.tenant_id, "api_key", f"api_keys/{r.id}",
                            fields_of(api_key(r), (*_AUDIT_OMITS, "prefix")))
    raise TypeError(f"assignments are audited as changes of their campaign, not {r!r}")


def watch_response(item: ChangeRecord | Heartbeat | SnapshotItem) -> pb.WatchChangesResponse:
    if isinstance(item, Heartbeat):
        return pb.WatchChangesResponse(revision=item.revision, heartbeat=True)
    if isinstance(item, SnapshotItem):
        response = pb.WatchChangesResponse(revision=0, kind=types.CHANGE_KIND_CREATED, tenant_id=item.tenant_id)
        getattr(response, item.resource_type).CopyFrom(resource(item.payload))
        return response
    response = pb.WatchChangesResponse(revision=item.revision, kind=item.kind,
                                       change_time=to_timestamp(item.change_time), tenant_id=item.tenant_id)
    getattr(response, item.resource_type).MergeFromString(item.payload)
    return response
