"""Which operator tasks a case needs: carrier registrations and one dispute per labelling source."""

from __future__ import annotations

from datetime import datetime

from nhm_platform.ids import new_id
from nhm_remediation.business_days import add_business_days
from nhm_remediation.domain import (
    BusinessProfile,
    Case,
    HealthView,
    NumberView,
    SourceLabel,
    Task,
    TaskKind,
    TaskStatus,
)
from nhm_remediation.policy import RemediationPolicy

CARRIER_PROGRAMS = ("TMOBILE", "ATT", "VERIZON")
FREE_CALLER_REGISTRY = "FREE_CALLER_REGISTRY"
OPERATOR_OWNER = "operator"


def new_task(case: Case, kind: TaskKind, now: datetime, *, status: TaskStatus = TaskStatus.PENDING,
             owner: str = "system", **values: object) -> Task:
    task = Task(id=new_id("tsk"), case_id=case.id, tenant_id=case.tenant_id, kind=kind, status=status,
                cycle=case.cycle, create_time=now, update_time=now, owner=owner)
    for name, value in values.items():
        setattr(task, name, value)
    case.tasks.append(task)
    return task


def registration_programs(number: NumberView, policy: RemediationPolicy) -> list[tuple[str, str, str]]:
    """(program, registry status, reference) for each programme that still needs the operator.

    With the Free Caller Registry one form covers the three carriers; a number registered with all three
    carriers (or with the registry itself) needs nothing.
    """
    def status(program: str) -> tuple[str, str]:
        return number.registrations.get(program, ("NOT_REGISTERED", ""))

    if policy.use_free_caller_registry:
        if status(FREE_CALLER_REGISTRY)[0] == "REGISTERED" or all(
                status(p)[0] == "REGISTERED" for p in CARRIER_PROGRAMS):
            return []
        return [(FREE_CALLER_REGISTRY, *status(FREE_CALLER_REGISTRY))]
    if status(FREE_CALLER_REGISTRY)[0] == "REGISTERED":
        return []
    return [(p, *status(p)) for p in CARRIER_PROGRAMS if status(p)[0] != "REGISTERED"]


def registration_prefill(number: NumberView, profile: BusinessProfile | None) -> dict[str, str]:
    """The programme's form, from the tenant's business profile and the number."""
    profile = profile or BusinessProfile()
    form = {
        "phone_number": number.phone_number,
        "business_name": profile.legal_name,
        "business_address": profile.address,
        "website": profile.website,
        "use_case": profile.call_purpose,
        "monthly_call_volume": str(profile.expected_monthly_volume) if profile.expected_monthly_volume else "",
        "contact_email": profile.contact_email,
        "contact_phone": profile.contact_phone,
        "voice_provider": number.provider,
        "caller_name": number.display_name,
        "attestation": number.attestation,
    }
    return form


def add_registration_tasks(case: Case, number: NumberView, profile: BusinessProfile | None,
                           policy: RemediationPolicy, now: datetime) -> list[Task]:
    """One task per programme still needed, unless the case already has an open one for it."""
    have = {t.program for t in case.tasks if t.kind is TaskKind.REGISTRATION}
    due = add_business_days(now, policy.registration_business_days)
    prefill = registration_prefill(number, profile)
    added = []
    for program, status, reference in registration_programs(number, policy):
        if program in have:
            continue
        # A form already submitted (registry status SUBMITTED) is in progress with its reference.
        submitted = status == "SUBMITTED"
        added.append(new_task(case, TaskKind.REGISTRATION, now, owner=OPERATOR_OWNER, program=program,
                              status=TaskStatus.IN_PROGRESS if submitted else TaskStatus.PENDING,
                              reference=reference if submitted else "", due_time=due, prefill=dict(prefill)))
    return added


def add_dispute_tasks(case: Case, health: HealthView | None, policy: RemediationPolicy,
                      now: datetime) -> list[Task]:
    """One dispute per source labelling the number now, unless the case has an open dispute with it."""
    if health is None:
        return []
    open_sources = {t.source for t in case.tasks if t.kind is TaskKind.DISPUTE and t.is_open}
    due = add_business_days(now, policy.dispute_review_business_days)
    added = []
    for label in sorted(health.labels, key=lambda s: s.source):
        if label.source in open_sources:
            continue
        added.append(new_task(case, TaskKind.DISPUTE, now, owner=OPERATOR_OWNER, source=label.source,
                              due_time=due, notes=_dispute_note(label)))
        open_sources.add(label.source)
    return added


def _dispute_note(label: SourceLabel) -> str:
    return f"labelled {label.raw_label or label.label.title()}; submit a false-positive report with the evidence"
