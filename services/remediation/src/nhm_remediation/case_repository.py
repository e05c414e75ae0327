"""Cases, their tasks and pool alerts in the database (their events are in the audit trail: case_store.py).

A case is saved with a conditional update on its version (a concurrent change makes the save fail with
ABORTED instead of overwriting it); each task's version moves only when the task itself changed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from nhm_platform.errors import Aborted
from nhm_platform.ids import new_id
from nhm_platform.protoconv import as_utc
from nhm_remediation.domain import (
    OPEN_TASK_STATUSES,
    Case,
    CaseKind,
    CaseStage,
    CaseState,
    PoolAlert,
    Task,
    TaskKind,
    TaskOutcome,
    TaskStatus,
)
from nhm_remediation.models import assignments, cases, pool_alerts, tasks


def _t(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _task_values(task: Task) -> dict[str, Any]:
    return {
        "id": task.id, "case_id": task.case_id, "tenant_id": task.tenant_id, "kind": task.kind.value,
        "status": task.status.value, "cycle": task.cycle, "owner": task.owner, "program": task.program,
        "source": task.source, "due_time": task.due_time, "reference": task.reference, "notes": task.notes,
        "outcome": task.outcome.value if task.outcome else None, "prefill": json.dumps(task.prefill, sort_keys=True),
        "create_time": task.create_time, "update_time": task.update_time, "version": task.version,
        "overdue_alert_time": task.overdue_alert_time,
    }


def _fingerprint(task: Task) -> tuple[Any, ...]:
    """What a save compares: the task as loaded against the task now (the overdue-alert mark is the
    scheduler's, written on its own, so a save never undoes it)."""
    values = _task_values(task)
    for name in ("version", "update_time", "overdue_alert_time"):
        values.pop(name)
    return tuple(sorted(values.items()))


def _task(row: Any) -> Task:
    return Task(
        id=row.id, case_id=row.case_id, tenant_id=row.tenant_id, kind=TaskKind(row.kind),
        status=TaskStatus(row.status), cycle=row.cycle, create_time=as_utc(row.create_time),
        update_time=as_utc(row.update_time), owner=row.owner, program=row.program, source=row.source,
        due_time=_t(row.due_time), reference=row.reference, notes=row.notes,
        outcome=TaskOutcome(row.outcome) if row.outcome else None, prefill=json.loads(row.prefill),
        version=row.version, overdue_alert_time=_t(row.overdue_alert_time))


def _case_values(case: Case) -> dict[str, Any]:
    return {
        "tenant_id": case.tenant_id, "phone_number": case.phone_number,
        "open_phone_number": case.phone_number if case.is_open else None, "kind": case.kind.value,
        "state": case.state.value, "stage": case.stage.value, "cycle": case.cycle,
        "triggers": json.dumps(case.triggers), "stage_until": case.stage_until,
        "recommendation": case.recommendation, "open_time": case.open_time, "close_time": case.close_time,
        "update_time": case.update_time, "labelled_check_time": case.labelled_check_time,
        "waiting": case.waiting, "due_time": case.next_due(),
    }


@dataclass(frozen=True)
class CaseFilter:
    states: Sequence[CaseState] = ()
    stages: Sequence[CaseStage] = ()
    overdue: bool = False
    phone_number: str = ""
    campaign_id: str = ""


@dataclass(frozen=True)
class TaskFilter:
    kinds: Sequence[TaskKind] = ()
    statuses: Sequence[TaskStatus] = ()
    overdue: bool = False


class CaseRepository:
    # --- Loading ---

    def get(self, session: Session, tenant_id: str, case_id: str, *, for_update: bool = False) -> Case | None:
        query = select(cases).where(cases.c.id == case_id, cases.c.tenant_id == tenant_id)
        return self._load_one(session, query, for_update)

    def get_any_tenant(self, session: Session, case_id: str, *, for_update: bool = False,
                       skip_locked: bool = False) -> Case | None:
        return self._load_one(session, select(cases).where(cases.c.id == case_id), for_update, skip_locked)

    def open_case_for(self, session: Session, tenant_id: str, phone_number: str, *,
                      for_update: bool = False) -> Case | None:
        query = select(cases).where(cases.c.tenant_id == tenant_id, cases.c.open_phone_number == phone_number)
        return self._load_one(session, query, for_update)

    def closed_since(self, session: Session, tenant_id: str, phone_number: str, since: datetime) -> bool:
        """Whether a case of this number closed at or after a time (an operator already dealt with it)."""
        query = select(cases.c.id).where(cases.c.tenant_id == tenant_id, cases.c.phone_number == phone_number,
                                         cases.c.close_time >= since).limit(1)
        return session.execute(query).first() is not None

    def _load_one(self, session: Session, query: Any, for_update: bool, skip_locked: bool = False) -> Case | None:
        if for_update:
            query = query.with_for_update(skip_locked=skip_locked)
        row = session.execute(query).first()
        if row is None:
            return None
        return self._assemble(session, [row])[0]

    def _assemble(self, session: Session, rows: Sequence[Any]) -> list[Case]:
        ids = [r.id for r in rows]
        task_rows = session.execute(select(tasks).where(tasks.c.case_id.in_(ids))
                                    .order_by(tasks.c.create_time, tasks.c.id)).all() if ids else []
        alert_rows = session.execute(select(pool_alerts).where(pool_alerts.c.case_id.in_(ids))
                                     .order_by(pool_alerts.c.create_time, pool_alerts.c.id)).all() if ids else []
        by_case: dict[str, list[Task]] = {i: [] for i in ids}
        for tr in task_rows:
            by_case[tr.case_id].append(_task(tr))
        alerts_by_case: dict[str, list[PoolAlert]] = {i: [] for i in ids}
        for ar in alert_rows:
            alerts_by_case[ar.case_id].append(PoolAlert(ar.campaign_id, ar.resting_share, ar.threshold, ar.message))
        result = []
        for r in rows:
            case = Case(
                id=r.id, tenant_id=r.tenant_id, phone_number=r.phone_number, kind=CaseKind(r.kind),
                state=CaseState(r.state), stage=CaseStage(r.stage), cycle=r.cycle, open_time=as_utc(r.open_time),
                update_time=as_utc(r.update_time), triggers=json.loads(r.triggers), tasks=by_case[r.id],
                pool_alerts=alerts_by_case[r.id], stage_until=_t(r.stage_until), recommendation=r.recommendation,
                close_time=_t(r.close_time), labelled_check_time=_t(r.labelled_check_time), waiting=r.waiting,
                version=r.version)
            case.loaded = {t.id: _fingerprint(t) for t in case.tasks}
            case.loaded_pool_alerts = len(case.pool_alerts)
            result.append(case)
        return result

    # --- Saving ---

    def insert(self, session: Session, case: Case) -> None:
        session.execute(insert(cases).values(id=case.id, version=case.version, **_case_values(case)))
        self._save_children(session, case)

    def update(self, session: Session, case: Case) -> None:
        updated = session.execute(
            update(cases).where(cases.c.id == case.id, cases.c.version == case.version)
            .values(version=case.version + 1, **_case_values(case))
        ).rowcount
        if updated != 1:
            raise Aborted(f"case {case.id} was changed concurrently; read it again and retry", reason="CONFLICT")
        case.version += 1
        self._save_children(session, case)

    def _save_children(self, session: Session, case: Case) -> None:
        loaded = case.loaded
        for task in case.tasks:
            before = loaded.get(task.id)
            if before is None:
                session.execute(insert(tasks).values(**_task_values(task)))
            elif before != _fingerprint(task):
                task.version += 1
                values = _task_values(task)
                if not task.overdue_reset:
                    values.pop("overdue_alert_time")  # the scheduler's mark stays as it wrote it
                task.overdue_reset = False
                session.execute(update(tasks).where(tasks.c.id == task.id).values(**values))
        for alert in case.pool_alerts[case.loaded_pool_alerts:]:
            session.execute(insert(pool_alerts).values(
                id=new_id("pal"), case_id=case.id, campaign_id=alert.campaign_id,
                resting_share=alert.resting_share, threshold=alert.threshold, message=alert.message,
                create_time=case.update_time))
        case.loaded = {t.id: _fingerprint(t) for t in case.tasks}
        case.loaded_pool_alerts = len(case.pool_alerts)

    # --- Queries ---

    def list_cases(self, session: Session, tenant_id: str, where: CaseFilter, now: datetime, after_id: str | None,
                   limit: int) -> list[Case]:
        query = select(cases).where(cases.c.tenant_id == tenant_id)
        if where.states:
            query = query.where(cases.c.state.in_([s.value for s in where.states]))
        if where.stages:
            query = query.where(cases.c.stage.in_([s.value for s in where.stages]))
        if where.phone_number:
            query = query.where(cases.c.phone_number == where.phone_number)
        if where.campaign_id:
            query = query.where(exists().where(
                assignments.c.tenant_id == cases.c.tenant_id, assignments.c.phone_number == cases.c.phone_number,
                assignments.c.campaign_id == where.campaign_id))
        if where.overdue:
            query = query.where(exists().where(tasks.c.case_id == cases.c.id, _overdue(now)))
        if after_id is not None:
            query = query.where(cases.c.id < after_id)
        rows = session.execute(query.order_by(cases.c.id.desc()).limit(limit)).all()
        return self._assemble(session, rows)

    def list_tasks(self, session: Session, tenant_id: str, where: TaskFilter, now: datetime,
                   after: tuple[str, str] | None, limit: int) -> list[Task]:
        """Ordered by due time (tasks without one last), then id."""
        due_key = func.coalesce(tasks.c.due_time, datetime(9999, 12, 31, tzinfo=UTC))
        query = select(tasks).where(tasks.c.tenant_id == tenant_id)
        if where.kinds:
            query = query.where(tasks.c.kind.in_([k.value for k in where.kinds]))
        if where.statuses:
            query = query.where(tasks.c.status.in_([s.value for s in where.statuses]))
        if where.overdue:
            query = query.where(_overdue(now))
        if after is not None:
            due, last_id = datetime.fromisoformat(after[0]), after[1]
            query = query.where(or_(due_key > due, and_(due_key == due, tasks.c.id > last_id)))
        rows = session.execute(query.order_by(due_key, tasks.c.id).limit(limit)).all()
        return [_task(r) for r in rows]

    def due_case_ids(self, session: Session, now: datetime, limit: int) -> list[str]:
        query = (select(cases.c.id).where(cases.c.state == CaseState.OPEN.value, cases.c.due_time <= now)
                 .order_by(cases.c.due_time).limit(limit))
        return list(session.execute(query).scalars())

    def overdue_task_ids(self, session: Session, now: datetime, limit: int) -> list[str]:
        query = (select(tasks.c.id).join(cases, cases.c.id == tasks.c.case_id)
                 .where(cases.c.state == CaseState.OPEN.value, _overdue(now), tasks.c.overdue_alert_time.is_(None),
                        tasks.c.kind.in_([TaskKind.REGISTRATION.value, TaskKind.DISPUTE.value]))
                 .order_by(tasks.c.due_time).limit(limit))
        return list(session.execute(query).scalars())

    def claim_overdue_alert(self, session: Session, task_id: str, now: datetime) -> str | None:
        """Mark a task's overdue alert as sent (once, across replicas); returns its case id if this call did."""
        updated = session.execute(update(tasks).where(tasks.c.id == task_id, tasks.c.overdue_alert_time.is_(None))
                                  .values(overdue_alert_time=now)).rowcount
        if updated != 1:
            return None
        return session.execute(select(tasks.c.case_id).where(tasks.c.id == task_id)).scalar_one()

    def digest(self, session: Session, tenant_id: str, since: datetime, until: datetime) -> dict[str, Any]:
        """A tenant's remediation over a period: open cases per stage, cases opened and closed, pool alerts."""
        stages = session.execute(
            select(cases.c.stage, func.count()).where(cases.c.tenant_id == tenant_id,
                                                      cases.c.state == CaseState.OPEN.value)
            .group_by(cases.c.stage)).all()
        opened = session.execute(select(func.count()).where(cases.c.tenant_id == tenant_id,
                                                            cases.c.open_time >= since,
                                                            cases.c.open_time < until)).scalar_one()
        closed = session.execute(
            select(cases.c.state, func.count()).where(cases.c.tenant_id == tenant_id, cases.c.close_time >= since,
                                                      cases.c.close_time < until)
            .group_by(cases.c.state)).all()
        alerts = session.execute(
            select(pool_alerts.c.campaign_id, pool_alerts.c.message, cases.c.phone_number)
            .join(cases, cases.c.id == pool_alerts.c.case_id)
            .where(cases.c.tenant_id == tenant_id, pool_alerts.c.create_time >= since,
                   pool_alerts.c.create_time < until)
            .order_by(pool_alerts.c.create_time)).all()
        return {
            "open_cases": {stage: int(count) for stage, count in stages},
            "opened": int(opened),
            "closed": {state: int(count) for state, count in closed},
            "pool_alerts": [{"campaign_id": a.campaign_id, "phone_number": a.phone_number, "message": a.message}
                            for a in alerts],
        }

    def snapshot(self, session: Session, tenant_id: str | None) -> list[Case]:
        query = select(cases)
        if tenant_id:
            query = query.where(cases.c.tenant_id == tenant_id)
        rows = session.execute(query.order_by(cases.c.id)).all()
        found = []
        for start in range(0, len(rows), 500):
            found.extend(self._assemble(session, rows[start:start + 500]))
        return found


def _overdue(now: datetime) -> Any:
    return and_(tasks.c.status.in_([s.value for s in OPEN_TASK_STATUSES]), tasks.c.due_time.is_not(None),
                tasks.c.due_time < now)
