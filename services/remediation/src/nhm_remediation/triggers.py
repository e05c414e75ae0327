"""What upstream changes do to cases: scoring's health opens, joins, escalates and resolves cases; the registry
retiring a number closes its case. Runs inside the feed follower's transaction (with the cursor)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from nhm_platform.clock import Clock
from nhm_remediation import workflow
from nhm_remediation.case_store import CaseStore
from nhm_remediation.domain import (
    REMEDIATE,
    SEVERITY,
    STATUS_ALERTS,
    CaseKind,
    HealthStatus,
    HealthView,
    NumberView,
)

SCORING_ACTOR = "service:scoring"


class Triggers:
    def __init__(self, store: CaseStore, clock: Clock, recheck_interval: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._recheck_interval = recheck_interval

    def on_health(self, session: Session, tenant_id: str, phone_number: str, view: HealthView, revision: int,
                  cause: str = "") -> None:
        """Apply one health change from scoring's feed (revision 0: an item of a snapshot)."""
        store = self._store
        previous, applied = store.replicas.lock_health(session, tenant_id, phone_number)
        if revision and revision <= applied:
            return  # applied already (by another replica, or a replay after a reconnect)
        store.replicas.upsert_health(session, tenant_id, phone_number, view, revision)
        snapshot = revision == 0
        changed = previous is None or previous.status is not view.status
        worsened = previous is None or SEVERITY[view.status] > SEVERITY[previous.status]
        now = self._clock.now()
        trigger = view.describe() if not cause else f"{view.status.value.replace('_', ' ').title()}: {cause}"
        if changed and view.status in STATUS_ALERTS and not (snapshot and previous is None):
            store.raise_alert(session, tenant_id, STATUS_ALERTS[view.status], f"{phone_number} is {trigger}", now,
                              phone_number=phone_number, status=view.status.value,
                              sources=[label.source for label in view.labels])
        policy = store.policy(session, tenant_id)
        case = store.cases.open_case_for(session, tenant_id, phone_number, for_update=True)
        if case is None:
            kind = (CaseKind.REMEDIATION if view.status in REMEDIATE else
                    CaseKind.WATCH if view.status is HealthStatus.AT_RISK and policy.watch_at_risk else None)
            if kind is None or not worsened:
                return
            if snapshot and view.status_time is not None and store.cases.closed_since(
                    session, tenant_id, phone_number, view.status_time):
                return  # a case for this status was closed already (e.g. cancelled by an operator)
            situation = store.situation(session, tenant_id, phone_number)
            case, effects = workflow.open_case(tenant_id, phone_number, kind, trigger, SCORING_ACTOR, policy,
                                               situation, now)
            store.commit(session, case, effects, now, created=True)
            return
        situation = store.situation(session, tenant_id, phone_number)
        effects = workflow.health_changed(case, previous.status if previous else None, trigger, SCORING_ACTOR,
                                          policy, situation, now, self._recheck_interval)
        if effects.events:
            store.commit(session, case, effects, now)

    def on_number(self, session: Session, number: NumberView) -> None:
        """Apply one number change from the registry's feed."""
        store = self._store
        store.replicas.upsert_number(session, number)
        case = store.cases.open_case_for(session, number.tenant_id, number.phone_number, for_update=True)
        if case is None:
            return
        now = self._clock.now()
        policy = store.policy(session, number.tenant_id)
        situation = store.situation(session, number.tenant_id, number.phone_number)
        effects = workflow.on_number_changed(case, policy, situation, now)
        if effects.events:
            store.commit(session, case, effects, now)
