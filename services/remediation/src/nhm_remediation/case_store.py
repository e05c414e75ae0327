"""Committing a change to a case: the case and its tasks, its events (in the audit trail), the registry actions
and alerts it asks for, and its case-feed entry, all in the caller's transaction. Everything that must happen
later (registry calls, deliveries) is a row written here, so a crash after the commit loses nothing and one
before it leaves nothing half done."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import event
from sqlalchemy.orm import Session

from nhm.type.v1 import types_pb2
from nhm_platform.audit import Actor, AuditEntry
from nhm_remediation import alerting
from nhm_remediation.action_repository import ActionRepository
from nhm_remediation.alert_repository import AlertRepository
from nhm_remediation.case_repository import CaseRepository
from nhm_remediation.convert import case_to_proto
from nhm_remediation.domain import AlertKind, AlertRequest, Case, CaseEvent, Effects
from nhm_remediation.models import audit, case_feed
from nhm_remediation.policy import RemediationPolicy
from nhm_remediation.policy_repository import PolicyRepository
from nhm_remediation.replica_repository import ReplicaRepository
from nhm_remediation.workflow import Situation


class CaseStore:
    def __init__(self) -> None:
        self.cases = CaseRepository()
        self.replicas = ReplicaRepository()
        self.actions = ActionRepository()
        self.alerts = AlertRepository()
        self.policies = PolicyRepository()
        self._wake: Callable[[], None] = lambda: None

    def wake_with(self, wake: Callable[[], None]) -> None:
        """What to call once a transaction that queued registry actions or alert deliveries has committed."""
        self._wake = wake

    def policy(self, session: Session, tenant_id: str) -> RemediationPolicy:
        return self.policies.effective(session, tenant_id)

    def situation(self, session: Session, tenant_id: str, phone_number: str) -> Situation:
        health, _ = self.replicas.health(session, tenant_id, phone_number)
        return Situation(number=self.replicas.number(session, tenant_id, phone_number), health=health,
                         profile=self.replicas.profile(session, tenant_id),
                         pools=self.replicas.pools(session, tenant_id, phone_number))

    def commit(self, session: Session, case: Case, effects: Effects, now: datetime, *, created: bool = False,
               actor: Actor | None = None) -> None:
        """actor: the caller whose request made the change (None: the service on its own)."""
        if created:
            self.cases.insert(session, case)
        else:
            self.cases.update(session, case)
        self.record_events(session, case, effects.events, now, actor)
        if effects.drop_pending_actions:
            self.actions.drop_pending(session, case.id, now)
        if effects.actions:
            self.actions.enqueue(session, case, effects.actions, now)
            self.wake_after_commit(session)
        self.raise_alerts(session, case.tenant_id, effects.alerts, now, case=case)
        case_feed.append(session, tenant_id=case.tenant_id,
                         kind=types_pb2.CHANGE_KIND_CREATED if created else types_pb2.CHANGE_KIND_UPDATED,
                         resource_type="case", resource_key=case.id,
                         payload=case_to_proto(case, now).SerializeToString(), change_time=now)

    @staticmethod
    def record_events(session: Session, case: Case, events: Sequence[CaseEvent], now: datetime,
                      actor: Actor | None = None) -> None:
        """The case's events in the audit trail, in order: those the caller made as the caller (its key and
        request id), the others (what the service did in consequence) as the service itself."""
        runs: list[tuple[Actor, list[AuditEntry]]] = []
        for happened in events:
            who = actor if actor is not None and happened.actor == actor.name else Actor.system(happened.actor)
            if not runs or runs[-1][0] != who:
                runs.append((who, []))
            runs[-1][1].append(case_event_entry(case, happened))
        for who, entries in runs:
            audit.record(session, who, entries, now)

    def raise_alerts(self, session: Session, tenant_id: str, requests: Sequence[AlertRequest], now: datetime, *,
                     case: Case | None = None, phone_number: str = "") -> int:
        """Store each alert with a delivery per subscription that wants it; returns how many deliveries."""
        if not requests:
            return 0
        phone = case.phone_number if case is not None else phone_number
        campaign_ids = self.replicas.campaign_ids(session, tenant_id, phone) if phone else []
        subscriptions = self.alerts.subscriptions(session, tenant_id)
        queued = 0
        for request in requests:
            alert = alerting.build_alert(tenant_id, request, now, case=case, phone_number=phone,
                                         campaign_ids=campaign_ids)
            queued += self.alerts.add_alert(session, alert,
                                            [s for s in subscriptions if s.wants(alert.kind, alert.campaign_ids)])
        if queued:
            self.wake_after_commit(session)
        return queued

    def raise_alert(self, session: Session, tenant_id: str, kind: AlertKind, summary: str, now: datetime, *,
                    phone_number: str = "", **details: object) -> int:
        return self.raise_alerts(session, tenant_id, [AlertRequest(kind, summary, dict(details))], now,
                                 phone_number=phone_number)

    def wake_after_commit(self, session: Session) -> None:
        """Wake the scheduler once this transaction commits (new work is waiting)."""
        if not session.info.get("nhm_wake"):
            session.info["nhm_wake"] = True

            def wake(_session: Session) -> None:
                _session.info.pop("nhm_wake", None)
                self._wake()

            event.listen(session, "after_commit", wake, once=True)


def case_resource(case_id: str, task_id: str = "") -> str:
    """How the audit trail names a case, or a task of it."""
    return f"cases/{case_id}/tasks/{task_id}" if task_id else f"cases/{case_id}"


def case_event_entry(case: Case, event: CaseEvent) -> AuditEntry:
    return AuditEntry(case.tenant_id, "task" if event.task_id else "case", case_resource(case.id, event.task_id),
                      event.event_type, event.changes, event.detail)
