"""One number: its health over time, why it is at risk, its labels per source, usage, and its remediation case."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from markupsafe import Markup

from nhm.allocation.v1 import allocation_pb2 as alloc
from nhm.registry.v1 import registry_pb2 as reg
from nhm.remediation.v1 import remediation_pb2 as rem
from nhm.scoring.v1 import scoring_pb2 as sco
from nhm.type.v1 import types_pb2 as types
from nhm_dashboard import charts
from nhm_dashboard import vocabulary as words
from nhm_dashboard.gateway import TenantApi
from nhm_sdk import FailedPreconditionError, NotFoundError, from_timestamp

T = TypeVar("T")

_PERCENT_KINDS = {sco.RISK_FACTOR_KIND_ANSWER_RATE, sco.RISK_FACTOR_KIND_SHORT_CALLS,
                  sco.RISK_FACTOR_KIND_INBOUND_USAGE, sco.RISK_FACTOR_KIND_BLOCKED_CALLS}
_ATTESTATION_LEVELS = {1: "A", 2: "B", 3: "C"}
# Tasks an operator closes by hand, with the programme's or engine's reference.
_NEEDS_REFERENCE = {rem.TASK_KIND_DISPUTE, rem.TASK_KIND_REGISTRATION}


def measure(kind: int, value: float, threshold: float) -> str:
    """A factor's value in the unit people read it in."""
    if kind == sco.RISK_FACTOR_KIND_ATTESTATION:
        return _ATTESTATION_LEVELS.get(round(value), "unknown")
    if kind in _PERCENT_KINDS and threshold < 1 and value <= 1:
        return f"{value * 100:.1f}%".replace(".0%", "%")
    if kind == sco.RISK_FACTOR_KIND_AVERAGE_TALK_TIME:
        return f"{value:.0f} s"
    return f"{value:g}"


@dataclass(frozen=True)
class FactorView:
    name: str
    value: str
    threshold: str
    triggered: bool
    advice: str
    detail: str


@dataclass(frozen=True)
class LabelEvent:
    time: datetime | None
    change: str
    cause: str


@dataclass(frozen=True)
class SourceView:
    name: str
    label: str
    status: words.Status
    observed: datetime | None
    weight: float | None
    events: list[LabelEvent]


@dataclass(frozen=True)
class TaskView:
    id: str
    kind: str
    status: str
    subject: str
    owner: str
    due: datetime | None
    overdue: bool
    reference: str
    outcome: str
    notes: str
    # An operator can mark it done here.
    open: bool
    needs_reference: bool
    is_dispute: bool


@dataclass(frozen=True)
class CaseView:
    id: str
    kind: str
    state: str
    is_open: bool
    stage: str
    cycle: int
    triggers: list[str]
    recommendation: str
    stage_until: datetime | None
    opened: datetime | None
    closed: datetime | None
    tasks: list[TaskView]
    pool_alerts: list[str]
    has_disputes: bool


@dataclass(frozen=True)
class Transition:
    time: datetime | None
    change: str
    actor: str
    reason: str


@dataclass(frozen=True)
class NumberView:
    phone: str
    number: reg.Number
    state: str
    status: words.Status
    score: int | None
    summary: str
    status_since: datetime | None
    factors: list[FactorView]
    sources: list[SourceView]
    carriers: list[tuple[str, words.Status]]
    campaigns: list[tuple[str, str]]
    health_chart: Markup
    activity_chart: Markup
    usage: alloc.NumberUsage | None
    activity_days: int
    calls_30_days: int
    answered_30_days: int
    lifecycle: list[Transition]
    case: CaseView | None
    past_cases: list[CaseView]
    can_quarantine: bool
    attestation: str


def factor_views(health: sco.NumberHealth | None) -> list[FactorView]:
    if health is None:
        return []
    ordered = sorted(health.factors, key=lambda f: (not f.triggered, -f.weight))
    return [FactorView(f.name, measure(f.kind, f.value, f.threshold), measure(f.kind, f.threshold, f.threshold),
                       f.triggered, f.advice, f.detail) for f in ordered]


def source_views(health: sco.NumberHealth | None, history: Sequence[sco.HealthTransition]) -> list[SourceView]:
    """Each source's label now, with the status changes it caused (newest first)."""
    current = {s.source: s for s in health.sources} if health is not None else {}
    events: dict[int, list[LabelEvent]] = {}
    for transition in history:
        for source in transition.sources:
            change = f"{words.status(transition.from_status).label} → {words.status(transition.to_status).label}"
            events.setdefault(source, []).append(
                LabelEvent(from_timestamp(transition.transition_time), change, transition.cause))
    views = []
    for source in sorted(set(current) | set(events), key=lambda s: words.SOURCE_NAMES.get(s, "")):
        now = current.get(source)
        views.append(SourceView(
            name=words.name_of(words.SOURCE_NAMES, source),
            label=(now.raw_label or words.name_of(words.LABEL_NAMES, now.label)) if now is not None else "No label now",
            status=words.status(now.status) if now is not None else words.STATUS_BY_NUMBER[types.HEALTH_STATUS_HEALTHY],
            observed=from_timestamp(now.observe_time) if now is not None else None,
            weight=now.weight if now is not None else None,
            events=events.get(source, [])))
    return views


def health_points(history: Iterable[sco.HealthTransition]) -> list[charts.HealthPoint]:
    points = []
    for t in history:
        when = from_timestamp(t.transition_time)
        if when is not None:
            points.append(charts.HealthPoint(when, t.score, words.status(t.to_status), t.cause))
    return sorted(points, key=lambda p: p.time)


def case_view(case: rem.Case) -> CaseView:
    tasks = []
    for t in case.tasks:
        subject = words.SOURCE_NAMES.get(t.source, "") or words.PROGRAM_NAMES.get(t.program, "")
        is_open = t.status in words.OPEN_TASK_STATUSES and case.state == rem.CASE_STATE_OPEN
        tasks.append(TaskView(
            id=t.id, kind=words.name_of(words.TASK_KIND_NAMES, t.kind),
            status=words.name_of(words.TASK_STATUS_NAMES, t.status), subject=subject, owner=t.owner,
            due=from_timestamp(t.due_time), overdue=t.overdue, reference=t.reference,
            outcome=words.TASK_OUTCOME_NAMES.get(t.outcome, ""), notes=t.notes,
            open=is_open and t.owner != "system", needs_reference=t.kind in _NEEDS_REFERENCE,
            is_dispute=t.kind == rem.TASK_KIND_DISPUTE))
    return CaseView(
        id=case.id, kind=words.name_of(words.CASE_KIND_NAMES, case.kind),
        state=words.name_of(words.CASE_STATE_NAMES, case.state), is_open=case.state == rem.CASE_STATE_OPEN,
        stage=words.name_of(words.STAGE_NAMES, case.stage), cycle=case.cycle, triggers=list(case.triggers),
        recommendation=case.recommendation, stage_until=from_timestamp(case.stage_until),
        opened=from_timestamp(case.open_time), closed=from_timestamp(case.close_time), tasks=tasks,
        pool_alerts=[a.message for a in case.pool_alerts],
        has_disputes=any(t.kind == rem.TASK_KIND_DISPUTE for t in case.tasks))


def load(api: TenantApi, phone: str, now: datetime, *, history_limit: int, activity_days: int) -> NumberView:
    number = api.number(phone)  # NotFoundError: no such number for this tenant
    health, history, activity, usage, transitions, cases, campaign_names = api.at_once(
        lambda: _or_none(lambda: api.health(phone)),
        lambda: _or_empty(lambda: api.health_history(phone, history_limit)),
        lambda: _or_none(lambda: api.call_activity(phone, activity_days)),
        lambda: _or_none(lambda: api.usage(phone)),
        lambda: api.number_transitions(phone, 20),
        lambda: api.cases(phone=phone, limit=20),
        api.campaign_names,
    )
    start = now - timedelta(days=activity_days)
    days = [charts.DayBar(d.date, d.outbound_calls, d.answered_calls) for d in activity.days] if activity else []
    ordered_cases = sorted(cases, key=lambda c: (c.state != rem.CASE_STATE_OPEN,
                                                 -(from_timestamp(c.open_time) or now).timestamp()))
    current = ordered_cases[0] if ordered_cases and ordered_cases[0].state == rem.CASE_STATE_OPEN else None
    past = [c for c in ordered_cases if c is not current]
    carriers = ([(words.carrier_name(k), words.status(v)) for k, v in
                 sorted(health.carrier_status.items())] if health is not None else [])
    return NumberView(
        phone=number.phone_number, number=number, state=words.name_of(words.STATE_NAMES, number.state),
        status=words.status(health.status) if health is not None else words.UNKNOWN_STATUS,
        score=health.score if health is not None else None,
        summary=health.summary if health is not None else "",
        status_since=from_timestamp(health.status_time) if health is not None else None,
        factors=factor_views(health), sources=source_views(health, history), carriers=carriers,
        campaigns=[(c, campaign_names.get(c, c)) for c in number.campaign_ids],
        health_chart=charts.health_chart(health_points(history), start, now),
        activity_chart=charts.activity_chart(days), usage=usage,
        activity_days=activity_days, calls_30_days=sum(d.outbound for d in days),
        answered_30_days=sum(d.answered for d in days),
        lifecycle=[Transition(from_timestamp(t.transition_time),
                              f"{words.name_of(words.STATE_NAMES, t.from_state)} → "
                              f"{words.name_of(words.STATE_NAMES, t.to_state)}", t.actor, t.reason)
                   for t in transitions],
        case=case_view(current) if current is not None else None,
        past_cases=[case_view(c) for c in past],
        can_quarantine=number.state in (types.LIFECYCLE_STATE_ACTIVE, types.LIFECYCLE_STATE_WARMING),
        attestation=words.name_of(words.ATTESTATION_NAMES, number.attestation),
    )


def _or_none(call: Callable[[], T]) -> T | None:
    try:
        return call()
    except (NotFoundError, FailedPreconditionError):
        return None


def _or_empty(call: Callable[[], list[T]]) -> list[T]:
    try:
        return call()
    except NotFoundError:
        return []
