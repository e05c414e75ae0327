"""The outbox of registry actions: written with the case change that asks for them, carried out afterwards.

Actions of one case run in the order they were queued. A replica claims one with a conditional update (a lease
on a PENDING row); another replica can take it over only once the lease has run out. The request id sent with
each action makes the registry answer a repeat with its first answer, so even a takeover repeats no step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from nhm_platform.protoconv import as_utc
from nhm_remediation.domain import Case, LifecycleState, RegistryAction
from nhm_remediation.models import registry_actions as actions

PENDING, DONE, FAILED, DROPPED = "PENDING", "DONE", "FAILED", "DROPPED"


@dataclass(frozen=True)
class QueuedAction:
    id: int
    tenant_id: str
    case_id: str
    phone_number: str
    action: RegistryAction
    attempts: int


def _free(now: datetime) -> object:
    return or_(actions.c.lease_until.is_(None), actions.c.lease_until <= now)


class ActionRepository:
    def enqueue(self, session: Session, case: Case, queued: list[RegistryAction], now: datetime) -> None:
        for action in queued:
            session.execute(insert(actions).values(
                tenant_id=case.tenant_id, case_id=case.id, phone_number=case.phone_number, task_id=action.task_id,
                method=action.method, target_state=action.target_state.value, reason=action.reason,
                request_id=action.request_id, rest_until=action.rest_until,
                warmup_caps=json.dumps(list(action.warmup_caps)),
                warmup_step_seconds=action.warmup_step.total_seconds() if action.warmup_step else None,
                status=PENDING, attempts=0, last_error="", next_attempt_time=now, lease_owner=None,
                lease_until=None, create_time=now, done_time=None))

    def drop_pending(self, session: Session, case_id: str, now: datetime) -> int:
        """Drop the case's queued actions that no replica is carrying out right now."""
        return int(session.execute(
            update(actions).where(actions.c.case_id == case_id, actions.c.status == PENDING, _free(now))
            .values(status=DROPPED, done_time=now, last_error="dropped: the case closed")).rowcount or 0)

    def due_ids(self, session: Session, now: datetime, limit: int) -> list[int]:
        """Actions that may run now: pending, due, unclaimed, and first in their case's queue."""
        earlier = aliased(actions)
        query = (select(actions.c.id)
                 .where(actions.c.status == PENDING, actions.c.next_attempt_time <= now, _free(now),
                        ~exists().where(earlier.c.case_id == actions.c.case_id, earlier.c.status == PENDING,
                                        earlier.c.id < actions.c.id))
                 .order_by(actions.c.id).limit(limit))
        return list(session.execute(query).scalars())

    def claim(self, session: Session, action_id: int, owner: str, now: datetime,
              lease: timedelta) -> QueuedAction | None:
        claimed = session.execute(
            update(actions).where(actions.c.id == action_id, actions.c.status == PENDING, _free(now))
            .values(lease_owner=owner, lease_until=now + lease)).rowcount
        if claimed != 1:
            return None
        row = session.execute(select(actions).where(actions.c.id == action_id)).one()
        step = row.warmup_step_seconds
        action = RegistryAction(
            task_id=row.task_id, target_state=LifecycleState(row.target_state), reason=row.reason,
            request_id=row.request_id, rest_until=None if row.rest_until is None else as_utc(row.rest_until),
            warmup_caps=tuple(json.loads(row.warmup_caps)),
            warmup_step=None if step is None else timedelta(seconds=step), method=row.method)
        return QueuedAction(row.id, row.tenant_id, row.case_id, row.phone_number, action, row.attempts + 1)

    def finish(self, session: Session, action_id: int, owner: str, now: datetime, *, status: str,
               error: str = "") -> bool:
        """Record the result of a claimed action; False if the claim was lost meanwhile."""
        return session.execute(
            update(actions).where(actions.c.id == action_id, actions.c.lease_owner == owner,
                                  actions.c.status == PENDING)
            .values(status=status, done_time=now, last_error=error, attempts=actions.c.attempts + 1,
                    lease_owner=None, lease_until=None)).rowcount == 1

    def retry_later(self, session: Session, action_id: int, owner: str, error: str, when: datetime) -> None:
        session.execute(
            update(actions).where(actions.c.id == action_id, actions.c.lease_owner == owner,
                                  actions.c.status == PENDING)
            .values(attempts=actions.c.attempts + 1, last_error=error, next_attempt_time=when, lease_owner=None,
                    lease_until=None))

    def release(self, session: Session, owner: str) -> None:
        """Give back every claim of a replica that stops."""
        session.execute(update(actions).where(actions.c.lease_owner == owner, actions.c.status == PENDING)
                        .values(lease_owner=None, lease_until=None))
