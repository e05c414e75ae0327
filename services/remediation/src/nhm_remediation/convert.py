"""Protobuf <-> domain conversions: remediation's own messages, and the upstream messages it replicates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

from nhm.registry.v1 import registry_pb2
from nhm.remediation.v1 import remediation_pb2 as pb
from nhm.scoring.v1 import scoring_pb2
from nhm.type.v1 import types_pb2
from nhm_platform.audit import AuditEvent
from nhm_platform.protoconv import from_duration, to_duration, to_timestamp
from nhm_remediation.alert_repository import Delivery
from nhm_remediation.alerting import Subscription
from nhm_remediation.domain import (
    LABELLED,
    BusinessProfile,
    Case,
    HealthStatus,
    HealthView,
    LifecycleState,
    NumberView,
    PoolAlert,
    SourceLabel,
    Task,
)
from nhm_remediation.evidence import EvidencePacket
from nhm_remediation.policy import RemediationPolicy
from nhm_remediation.ports import CallActivity, DayActivity


def enum_value(enum: Any, prefix: str, name: str) -> int:
    """``enum_value(pb.CaseState, "CASE_STATE", "OPEN")`` -> the proto number (0 when unknown)."""
    try:
        return int(enum.Value(f"{prefix}_{name}"))
    except ValueError:
        return 0


def enum_name(enum: Any, prefix: str, number: int) -> str:
    """The domain name of a proto enum number ("" for UNSPECIFIED or unknown numbers)."""
    try:
        name = str(enum.Name(number))
    except ValueError:
        return ""
    name = name.removeprefix(prefix + "_")
    return "" if name == "UNSPECIFIED" else name


def _set_time(message: Message, field: str, value: datetime | None) -> None:
    if value is not None:
        getattr(message, field).CopyFrom(to_timestamp(value))


# --- Cases ---------------------------------------------------------------------------------------------------

def task_to_proto(task: Task, now: datetime) -> pb.Task:
    message = pb.Task(
        id=task.id, case_id=task.case_id, kind=enum_value(pb.TaskKind, "TASK_KIND", task.kind.value),
        status=enum_value(pb.TaskStatus, "TASK_STATUS", task.status.value),
        program=enum_value(types_pb2.RegistrationProgram, "REGISTRATION_PROGRAM", task.program),
        source=enum_value(types_pb2.ReputationSource, "REPUTATION_SOURCE", task.source),
        owner=task.owner, overdue=task.overdue(now), reference=task.reference, notes=task.notes,
        outcome=enum_value(pb.TaskOutcome, "TASK_OUTCOME", task.outcome.value) if task.outcome else 0,
        prefill=task.prefill, etag=task.etag)
    _set_time(message, "due_time", task.due_time)
    _set_time(message, "create_time", task.create_time)
    _set_time(message, "update_time", task.update_time)
    return message


def pool_alert_to_proto(alert: PoolAlert) -> pb.PoolAlert:
    return pb.PoolAlert(campaign_id=alert.campaign_id, resting_share=alert.resting_share,
                        threshold=alert.threshold, message=alert.message)


def case_to_proto(case: Case, now: datetime) -> pb.Case:
    message = pb.Case(
        id=case.id, tenant_id=case.tenant_id, phone_number=case.phone_number,
        kind=enum_value(pb.CaseKind, "CASE_KIND", case.kind.value),
        state=enum_value(pb.CaseState, "CASE_STATE", case.state.value),
        stage=enum_value(pb.CaseStage, "CASE_STAGE", case.stage.value), cycle=case.cycle,
        triggers=case.triggers, tasks=[task_to_proto(t, now) for t in case.tasks],
        recommendation=case.recommendation, pool_alerts=[pool_alert_to_proto(a) for a in case.pool_alerts],
        etag=case.etag)
    _set_time(message, "stage_until", case.stage_until)
    _set_time(message, "open_time", case.open_time)
    _set_time(message, "close_time", case.close_time)
    _set_time(message, "update_time", case.update_time)
    return message


def event_to_proto(event: AuditEvent) -> pb.CaseEvent:
    """A case's audit event as ListCaseEvents shows it (resource "cases/<case>" or "cases/<case>/tasks/<task>")."""
    parts = event.entry.resource_name.split("/")
    message = pb.CaseEvent(case_id=parts[1], event_type=event.entry.action, actor=event.actor.name,
                           detail=event.entry.reason, task_id=parts[3] if len(parts) > 3 else "")
    _set_time(message, "event_time", event.event_time)
    return message


# --- Policy --------------------------------------------------------------------------------------------------

def policy_to_proto(policy: RemediationPolicy) -> pb.RemediationPolicy:
    return pb.RemediationPolicy(
        watch_at_risk=policy.watch_at_risk, quarantine_at_risk=policy.quarantine_at_risk,
        rest_duration=to_duration(policy.rest_duration),
        escalation_rest_multiplier=policy.escalation_rest_multiplier,
        warmup_daily_caps=list(policy.warmup_daily_caps),
        warmup_step_duration=to_duration(policy.warmup_step_duration),
        dispute_review_business_days=policy.dispute_review_business_days,
        registration_business_days=policy.registration_business_days, max_cycles=policy.max_cycles,
        max_labelled_duration=to_duration(policy.max_labelled_duration), auto_retire=policy.auto_retire,
        max_resting_share=policy.max_resting_share, use_free_caller_registry=policy.use_free_caller_registry)


_DURATIONS = ("rest_duration", "warmup_step_duration", "max_labelled_duration")


def policy_values(message: pb.RemediationPolicy) -> dict[str, Any]:
    """The fields a request sets (optional scalars that are present, durations that are set, non-empty caps)."""
    values: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        name = field.name
        if name in _DURATIONS:
            if message.HasField(name):
                values[name] = from_duration(getattr(message, name))
        elif name == "warmup_daily_caps":
            if message.warmup_daily_caps:
                values[name] = tuple(message.warmup_daily_caps)
        elif message.HasField(name):
            values[name] = getattr(message, name)
    return values


# --- Alerts --------------------------------------------------------------------------------------------------

def subscription_to_proto(sub: Subscription) -> pb.AlertSubscription:
    message = pb.AlertSubscription(
        id=sub.id, tenant_id=sub.tenant_id, channel=enum_value(pb.AlertChannel, "ALERT_CHANNEL", sub.channel.value),
        target=sub.target, kinds=[enum_value(pb.AlertKind, "ALERT_KIND", k.value) for k in sub.kinds],
        campaign_ids=list(sub.campaign_ids))
    _set_time(message, "create_time", sub.create_time)
    return message


def delivery_to_proto(delivery: Delivery) -> pb.AlertDelivery:
    message = pb.AlertDelivery(
        id=delivery.id, subscription_id=delivery.subscription_id, alert_id=delivery.alert_id,
        kind=enum_value(pb.AlertKind, "ALERT_KIND", delivery.kind.value),
        state=enum_value(pb.DeliveryState, "DELIVERY_STATE", delivery.state.value), attempts=delivery.attempts,
        last_error=delivery.last_error, summary=delivery.summary)
    if delivery.state.value == "PENDING":
        _set_time(message, "next_attempt_time", delivery.next_attempt_time)
    _set_time(message, "create_time", delivery.create_time)
    _set_time(message, "deliver_time", delivery.deliver_time)
    return message


# --- Evidence ------------------------------------------------------------------------------------------------

def packet_to_proto(packet: EvidencePacket) -> pb.EvidencePacket:
    message = pb.EvidencePacket(
        phone_number=packet.phone_number,
        source=enum_value(types_pb2.ReputationSource, "REPUTATION_SOURCE", packet.source),
        business_name=packet.business_name, call_purpose=packet.call_purpose, website=packet.website,
        attestation=enum_value(types_pb2.Attestation, "ATTESTATION", packet.attestation),
        calls_per_day=[pb.DailyCalls(date=d, outbound_calls=o, answered_calls=a) for d, o, a in packet.calls_per_day],
        average_calls_per_day=packet.average_calls_per_day, answer_rate=packet.answer_rate,
        average_talk_time=to_duration(packet.average_talk_time), complaint_count=packet.complaint_count,
        sample_call_times=[to_timestamp(t) for t in packet.sample_call_times])
    _set_time(message, "generate_time", packet.generate_time)
    return message


def activity_from_proto(response: scoring_pb2.GetCallActivityResponse) -> CallActivity:
    days = tuple(DayActivity(date=d.date, outbound_calls=d.outbound_calls, answered_calls=d.answered_calls,
                             talk_time=from_duration(d.talk_time), complaints=d.complaints) for d in response.days)
    samples = tuple(t.ToDatetime(tzinfo=UTC) for t in response.sample_call_times)
    return CallActivity(days=days, sample_call_times=samples)


# --- Upstream resources --------------------------------------------------------------------------------------

def number_from_proto(tenant_id: str, number: registry_pb2.Number) -> NumberView:
    registrations = {}
    for reg in number.registrations:
        program = enum_name(types_pb2.RegistrationProgram, "REGISTRATION_PROGRAM", reg.program)
        if program:
            status = enum_name(types_pb2.RegistrationStatus, "REGISTRATION_STATUS", reg.status) or "NOT_REGISTERED"
            registrations[program] = (status, reg.reference)
    state = enum_name(types_pb2.LifecycleState, "LIFECYCLE_STATE", number.state) or "ACTIVE"
    return NumberView(
        tenant_id=number.tenant_id or tenant_id, phone_number=number.phone_number, state=LifecycleState(state),
        attestation=enum_name(types_pb2.Attestation, "ATTESTATION", number.attestation) or "UNSPECIFIED",
        provider=number.provider, display_name=number.display_name, registrations=registrations,
        campaign_ids=tuple(number.campaign_ids))


def profile_from_proto(profile: registry_pb2.BusinessProfile) -> BusinessProfile:
    return BusinessProfile(legal_name=profile.legal_name, address=profile.address, website=profile.website,
                           call_purpose=profile.call_purpose, expected_monthly_volume=profile.expected_monthly_volume,
                           contact_email=profile.contact_email, contact_phone=profile.contact_phone)


def health_from_proto(health: scoring_pb2.NumberHealth) -> HealthView | None:
    """The health view, or None when the message carries no status."""
    status = enum_name(types_pb2.HealthStatus, "HEALTH_STATUS", health.status)
    if not status:
        return None
    labels = []
    for source in health.sources:
        label = enum_name(types_pb2.ReputationLabel, "REPUTATION_LABEL", source.label)
        source_status = enum_name(types_pb2.HealthStatus, "HEALTH_STATUS", source.status)
        # A label counts while the source still rates the number below Healthy (expired labels do not).
        if label in LABELLED and source_status != "HEALTHY":
            labels.append(SourceLabel(
                source=enum_name(types_pb2.ReputationSource, "REPUTATION_SOURCE", source.source) or "OTHER",
                label=label, raw_label=source.raw_label))
    status_time = health.status_time.ToDatetime(tzinfo=UTC) if health.HasField("status_time") else None
    return HealthView(status=HealthStatus(status), labels=tuple(labels), status_time=status_time,
                      summary=health.summary)
