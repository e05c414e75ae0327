"""Alert subscriptions, alerts and their deliveries (the outbox the scheduler works through), digests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from nhm_platform.ids import new_id
from nhm_platform.protoconv import as_utc
from nhm_platform.replica import upsert
from nhm_remediation.alerting import Alert, Subscription
from nhm_remediation.domain import AlertChannel, AlertKind, DeliveryState
from nhm_remediation.models import alert_deliveries as deliveries
from nhm_remediation.models import alert_subscriptions as subscriptions
from nhm_remediation.models import alerts, digest_schedule


@dataclass(frozen=True)
class Delivery:
    id: str
    alert_id: str
    subscription_id: str
    tenant_id: str
    kind: AlertKind
    state: DeliveryState
    attempts: int
    last_error: str
    next_attempt_time: datetime
    create_time: datetime
    deliver_time: datetime | None
    summary: str


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery: Delivery
    alert: Alert
    subscription: Subscription | None


def _subscription(r: Any) -> Subscription:
    return Subscription(
        id=r.id, tenant_id=r.tenant_id, channel=AlertChannel(r.channel), target=r.target,
        kinds=tuple(AlertKind(k) for k in json.loads(r.kinds)),
        campaign_ids=tuple(json.loads(r.campaign_ids)), signing_secret=r.signing_secret,
        create_time=as_utc(r.create_time))


def _delivery(d: Any) -> Delivery:
    return Delivery(
        id=d.id, alert_id=d.alert_id, subscription_id=d.subscription_id, tenant_id=d.tenant_id,
        kind=AlertKind(d.kind), state=DeliveryState(d.state), attempts=d.attempts,
        last_error=d.last_error, next_attempt_time=as_utc(d.next_attempt_time),
        create_time=as_utc(d.create_time),
        deliver_time=None if d.deliver_time is None else as_utc(d.deliver_time),
        summary=d.summary)


def _free(now: datetime) -> object:
    return or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now)


class AlertRepository:
    # --- Subscriptions ---

    def add_subscription(self, session: Session, sub: Subscription) -> None:
        session.execute(insert(subscriptions).values(
            id=sub.id, tenant_id=sub.tenant_id, channel=sub.channel.value, target=sub.target,
            kinds=json.dumps([k.value for k in sub.kinds]), campaign_ids=json.dumps(list(sub.campaign_ids)),
            signing_secret=sub.signing_secret, create_time=sub.create_time, delete_time=None))

    def subscriptions(self, session: Session, tenant_id: str, after_id: str | None = None,
                      limit: int | None = None) -> list[Subscription]:
        query = select(subscriptions).where(subscriptions.c.tenant_id == tenant_id,
                                            subscriptions.c.delete_time.is_(None))
        if after_id is not None:
            query = query.where(subscriptions.c.id > after_id)
        query = query.order_by(subscriptions.c.id)
        if limit is not None:
            query = query.limit(limit)
        return [_subscription(r) for r in session.execute(query)]

    def delete_subscription(self, session: Session, tenant_id: str, subscription_id: str, now: datetime) -> bool:
        deleted = session.execute(update(subscriptions).where(
            subscriptions.c.id == subscription_id, subscriptions.c.tenant_id == tenant_id,
            subscriptions.c.delete_time.is_(None)).values(delete_time=now)).rowcount == 1
        if deleted:
            session.execute(update(deliveries).where(
                deliveries.c.subscription_id == subscription_id, deliveries.c.state == DeliveryState.PENDING.value)
                .values(state=DeliveryState.FAILED.value, last_error="the subscription was deleted"))
        return deleted

    # --- Alerts and deliveries ---

    def add_alert(self, session: Session, alert: Alert, to: Sequence[Subscription]) -> int:
        """Store an alert and one pending delivery per subscription that wants it; returns how many."""
        if not to:
            return 0
        session.execute(insert(alerts).values(
            id=alert.id, tenant_id=alert.tenant_id, kind=alert.kind.value, case_id=alert.case_id,
            phone_number=alert.phone_number, campaign_ids=json.dumps(list(alert.campaign_ids)),
            summary=alert.summary, body=alert.body, create_time=alert.create_time))
        session.execute(insert(deliveries), [{
            "id": new_id("dlv"), "alert_id": alert.id, "subscription_id": sub.id, "tenant_id": alert.tenant_id,
            "kind": alert.kind.value, "state": DeliveryState.PENDING.value, "attempts": 0, "last_error": "",
            "next_attempt_time": alert.create_time, "lease_owner": None, "lease_until": None,
            "create_time": alert.create_time, "deliver_time": None, "summary": alert.summary} for sub in to])
        return len(to)

    def deliveries(self, session: Session, tenant_id: str, subscription_id: str, states: Sequence[DeliveryState],
                   after_id: str | None, limit: int) -> list[Delivery]:
        query = select(deliveries).where(deliveries.c.tenant_id == tenant_id)
        if subscription_id:
            query = query.where(deliveries.c.subscription_id == subscription_id)
        if states:
            query = query.where(deliveries.c.state.in_([s.value for s in states]))
        if after_id is not None:
            query = query.where(deliveries.c.id > after_id)
        return [_delivery(r) for r in session.execute(query.order_by(deliveries.c.id).limit(limit))]

    def due_delivery_ids(self, session: Session, now: datetime, limit: int) -> list[str]:
        query = (select(deliveries.c.id).where(deliveries.c.state == DeliveryState.PENDING.value,
                                               deliveries.c.next_attempt_time <= now, _free(now))
                 .order_by(deliveries.c.next_attempt_time, deliveries.c.id).limit(limit))
        return list(session.execute(query).scalars())

    def claim_delivery(self, session: Session, delivery_id: str, owner: str, now: datetime,
                       lease: timedelta) -> ClaimedDelivery | None:
        claimed = session.execute(update(deliveries).where(
            deliveries.c.id == delivery_id, deliveries.c.state == DeliveryState.PENDING.value, _free(now))
            .values(lease_owner=owner, lease_until=now + lease)).rowcount
        if claimed != 1:
            return None
        row = session.execute(select(deliveries).where(deliveries.c.id == delivery_id)).one()
        a = session.execute(select(alerts).where(alerts.c.id == row.alert_id)).one()
        alert = Alert(a.id, a.tenant_id, AlertKind(a.kind), a.case_id, a.phone_number,
                      tuple(json.loads(a.campaign_ids)), a.summary, a.body, as_utc(a.create_time))
        sub_row = session.execute(select(subscriptions).where(subscriptions.c.id == row.subscription_id,
                                                              subscriptions.c.delete_time.is_(None))).first()
        return ClaimedDelivery(_delivery(row), alert, None if sub_row is None else _subscription(sub_row))

    def record_attempt(self, session: Session, delivery_id: str, owner: str, now: datetime, *, ok: bool,
                       error: str = "", retry_at: datetime | None = None) -> None:
        """Log one attempt: DELIVERED, PENDING again at retry_at, or FAILED when there is no retry."""
        if ok:
            values: dict[str, object] = {"state": DeliveryState.DELIVERED.value, "deliver_time": now,
                                         "last_error": ""}
        elif retry_at is not None:
            values = {"state": DeliveryState.PENDING.value, "next_attempt_time": retry_at, "last_error": error}
        else:
            values = {"state": DeliveryState.FAILED.value, "last_error": error}
        session.execute(update(deliveries).where(deliveries.c.id == delivery_id,
                                                 deliveries.c.lease_owner == owner)
                        .values(attempts=deliveries.c.attempts + 1, lease_owner=None, lease_until=None, **values))

    def release(self, session: Session, owner: str) -> None:
        session.execute(update(deliveries).where(deliveries.c.lease_owner == owner)
                        .values(lease_owner=None, lease_until=None))

    # --- Weekly digests ---

    def schedule_digest(self, session: Session, tenant_id: str, first: datetime) -> None:
        """Start a tenant's digest schedule if it has none."""
        exists = session.execute(select(digest_schedule.c.tenant_id)
                                 .where(digest_schedule.c.tenant_id == tenant_id)).first()
        if exists is None:
            upsert(session, digest_schedule, {"tenant_id": tenant_id, "next_time": first}, ["tenant_id"])

    def due_digests(self, session: Session, now: datetime, limit: int) -> list[tuple[str, datetime]]:
        rows = session.execute(select(digest_schedule).where(digest_schedule.c.next_time <= now)
                               .order_by(digest_schedule.c.next_time).limit(limit)).all()
        return [(r.tenant_id, as_utc(r.next_time)) for r in rows]

    def claim_digest(self, session: Session, tenant_id: str, due: datetime, following: datetime) -> bool:
        """Move the schedule on from ``due`` (once, across replicas); True if this call did."""
        return session.execute(update(digest_schedule).where(
            digest_schedule.c.tenant_id == tenant_id, digest_schedule.c.next_time == due)
            .values(next_time=following)).rowcount == 1
