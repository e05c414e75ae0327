"""Repository of health: the current health per number, its history of transitions, and its change feed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from nhm.scoring.v1 import scoring_pb2
from nhm.type.v1 import types_pb2
from nhm_platform.prefix_search import starts_with
from nhm_platform.protoconv import as_utc
from nhm_platform.statements import set_filters
from nhm_scoring.folding import Standing
from nhm_scoring.models import assignments, feed, health, health_history, source_labels, status_counts
from nhm_scoring.reputation import HealthStatus, Label
from nhm_scoring.sql_upserts import add_counts, update_rows

RESOURCE_TYPE = "health"


@dataclass(frozen=True)
class HealthRow:
    phone_number: str
    status: HealthStatus
    status_time: datetime
    update_time: datetime
    payload: bytes
    time_sensitive: bool = False


@dataclass(frozen=True)
class HistoryRow:
    id: int
    phone_number: str
    from_status: HealthStatus
    to_status: HealthStatus
    score: int
    cause: str
    factors: tuple[int, ...]
    sources: tuple[int, ...]
    transition_time: datetime


def load(session: Session, tenant_id: str, phones: Collection[str], *, lock: bool = False) -> dict[str, HealthRow]:
    """The current health of phones; with lock, the rows are locked (in number order) until the transaction ends,
    so two processes rescoring one number one after the other never record one transition twice."""
    t = health.c
    found = {}
    for among in set_filters(session, t.phone_number, phones):
        query = (select(t.phone_number, t.status, t.status_time, t.update_time, t.payload, t.time_sensitive)
                 .where(t.tenant_id == tenant_id, among).order_by(t.phone_number))
        if lock and session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()  # SQLite: the transaction already holds the only write lock
        for r in session.execute(query):
            found[r.phone_number] = HealthRow(r.phone_number, HealthStatus(r.status), as_utc(r.status_time),
                                              as_utc(r.update_time), bytes(r.payload), bool(r.time_sensitive))
    return found


def get(session: Session, tenant_id: str, phone: str) -> HealthRow | None:
    return load(session, tenant_id, [phone]).get(phone)


def standings(session: Session, tenant_id: str, phones: Collection[str]) -> dict[str, Standing]:
    t = health.c
    found = {}
    for among in set_filters(session, t.phone_number, phones):
        for phone, status, flags in session.execute(select(t.phone_number, t.status, t.carrier_flags).where(
                t.tenant_id == tenant_id, among)):
            found[phone] = Standing(HealthStatus(status), flags)
    return found


@dataclass
class HealthWrites:
    """What one rescoring pass writes, gathered so it goes out in a few statements."""

    inserts: list[dict[str, object]] = field(default_factory=list)
    updates: list[dict[str, object]] = field(default_factory=list)
    flag_updates: list[dict[str, object]] = field(default_factory=list)
    history: list[dict[str, object]] = field(default_factory=list)
    changes: list[dict[str, object]] = field(default_factory=list)
    # (tenant, status) -> change in the number of numbers with that status
    counts: Counter[tuple[str, int]] = field(default_factory=Counter)

    def health(self, tenant_id: str, message: scoring_pb2.NumberHealth, *, payload: bytes, carrier_flags: int,
               time_sensitive: bool, status_time: datetime, now: datetime, previous_status: int | None) -> None:
        exists_already = previous_status is not None
        if previous_status != message.status:
            self.counts[(tenant_id, message.status)] += 1
            if previous_status is not None:
                self.counts[(tenant_id, previous_status)] -= 1
        values = {"area_code": message.area_code, "status": message.status, "score": message.score,
                  "status_time": status_time, "update_time": now, "carrier_flags": carrier_flags,
                  "time_sensitive": time_sensitive, "payload": payload}
        if exists_already:
            self.updates.append({"tenant_id": tenant_id, "phone_number": message.phone_number, **values})
        else:
            self.inserts.append({"tenant_id": tenant_id, "phone_number": message.phone_number, **values})

    def time_sensitive(self, tenant_id: str, phone: str, value: bool) -> None:
        self.flag_updates.append({"tenant_id": tenant_id, "phone_number": phone, "time_sensitive": value})

    def transition(self, tenant_id: str, transition: scoring_pb2.HealthTransition, when: datetime) -> None:
        self.history.append({
            "tenant_id": tenant_id, "phone_number": transition.phone_number, "from_status": transition.from_status,
            "to_status": transition.to_status, "score": transition.score, "cause": transition.cause[:2000],
            "factors": ",".join(str(f) for f in transition.factors),
            "sources": ",".join(str(s) for s in transition.sources), "transition_time": when})

    def change(self, tenant_id: str, phone: str, kind: int, change: scoring_pb2.WatchHealthResponse,
               now: datetime) -> None:
        self.changes.append({"tenant_id": tenant_id, "kind": kind, "resource_type": RESOURCE_TYPE,
                             "resource_key": phone, "payload": change.SerializeToString(deterministic=True),
                             "change_time": now})

    def flush(self, session: Session) -> None:
        key = ("tenant_id", "phone_number")
        if self.inserts:
            session.execute(insert(health), self.inserts)
        update_rows(session, health, self.updates, key)
        update_rows(session, health, self.flag_updates, key)
        if self.history:
            session.execute(insert(health_history), self.history)
        feed.append_many(session, self.changes)
        add_counts(session, status_counts, [{"tenant_id": tenant, "status": status, "numbers": delta}
                                            for (tenant, status), delta in self.counts.items() if delta],
                   ("tenant_id", "status"))
        self.inserts, self.updates, self.flag_updates, self.history, self.changes = [], [], [], [], []
        self.counts = Counter()


def remove(session: Session, tenant_id: str, phone: str) -> bool:
    status = session.execute(delete(health).where(health.c.tenant_id == tenant_id, health.c.phone_number == phone)
                             .returning(health.c.status)).scalar()
    if status is None:
        return False
    add_counts(session, status_counts, [{"tenant_id": tenant_id, "status": status, "numbers": -1}],
               ("tenant_id", "status"))
    return True


def publish(session: Session, tenant_id: str, phone: str, kind: int, change: scoring_pb2.WatchHealthResponse,
            now: datetime) -> int:
    """Append one change to the health feed in the caller's transaction; returns its revision."""
    return feed.append(session, tenant_id=tenant_id, kind=kind, resource_type=RESOURCE_TYPE, resource_key=phone,
                       payload=change.SerializeToString(deterministic=True), change_time=now)


def _history_row(r: object) -> HistoryRow:
    def ints(text: str) -> tuple[int, ...]:
        return tuple(int(v) for v in text.split(",") if v)

    return HistoryRow(r.id, r.phone_number, HealthStatus(r.from_status), HealthStatus(r.to_status),  # type: ignore[attr-defined]
                      r.score, r.cause, ints(r.factors), ints(r.sources), as_utc(r.transition_time))  # type: ignore[attr-defined]


def history_page(session: Session, tenant_id: str, phone: str, after: tuple[datetime, int] | None,
                 limit: int) -> list[HistoryRow]:
    """Newest first, keyset on (transition_time, id)."""
    t = health_history.c
    query = select(health_history).where(t.tenant_id == tenant_id, t.phone_number == phone)
    if after is not None:
        when, last_id = after
        query = query.where(or_(t.transition_time < when, and_(t.transition_time == when, t.id < last_id)))
    rows = session.execute(query.order_by(t.transition_time.desc(), t.id.desc()).limit(limit))
    return [_history_row(r) for r in rows]


def _last_transitions(tenant_id: str, when: datetime) -> Any:
    """Each number's last transition at or before a time (its status then), as a subquery of ids."""
    t = health_history.c
    return (select(func.max(t.id).label("id")).where(t.tenant_id == tenant_id, t.transition_time <= when)
            .group_by(t.phone_number).subquery())


def counts_at(session: Session, tenant_id: str, when: datetime) -> dict[HealthStatus, int]:
    """Numbers per status at a time (numbers not known yet are not counted)."""
    last = _last_transitions(tenant_id, when)
    rows = session.execute(select(health_history.c.to_status, func.count())
                           .select_from(health_history.join(last, health_history.c.id == last.c.id))
                           .group_by(health_history.c.to_status))
    return {HealthStatus(status): int(count) for status, count in rows}


def unhealthy_at(session: Session, tenant_id: str, when: datetime) -> dict[str, HistoryRow]:
    """The last transition at or before a time of each number that was not Healthy then."""
    last = _last_transitions(tenant_id, when)
    rows = session.execute(select(health_history).join(last, health_history.c.id == last.c.id)
                           .where(health_history.c.to_status != int(HealthStatus.HEALTHY)))
    return {r.phone_number: _history_row(r) for r in rows}


def last_at(session: Session, tenant_id: str, when: datetime, phones: Collection[str]) -> dict[str, HistoryRow]:
    """The last transition at or before a time of the numbers given (absent: not known then)."""
    t = health_history.c
    found: dict[str, HistoryRow] = {}
    for among in set_filters(session, t.phone_number, phones):
        last = (select(func.max(t.id).label("id"))
                .where(t.tenant_id == tenant_id, t.transition_time <= when, among)
                .group_by(t.phone_number).subquery())
        for r in session.execute(select(health_history).join(last, health_history.c.id == last.c.id)):
            found[r.phone_number] = _history_row(r)
    return found


@dataclass(frozen=True)
class ListFilter:
    statuses: tuple[HealthStatus, ...] = ()
    # Numbers with a non-clean label from this source observed after label_cutoff (older ones have expired).
    source: int = 0
    label_cutoff: datetime | None = None
    campaign_id: str = ""
    area_code: str = ""
    prefix: str = ""


def _filtered(query: Any, tenant_id: str, f: ListFilter, *, with_status: bool) -> Any:
    """query (over health) narrowed to the filter. Campaign and source are IN (subquery), so the database may
    start from the campaign's or the source's numbers instead of probing every number of the tenant."""
    t = health.c
    conditions: list[ColumnElement[bool]] = [t.tenant_id == tenant_id]
    if with_status and f.statuses:
        conditions.append(t.status.in_([int(s) for s in f.statuses]))
    if f.area_code:
        conditions.append(t.area_code == f.area_code)
    if f.prefix:
        conditions += starts_with(t.phone_number, f.prefix)
    if f.campaign_id:
        a = assignments.c
        conditions.append(t.phone_number.in_(select(a.phone_number).where(
            a.tenant_id == tenant_id, a.campaign_id == f.campaign_id)))
    if f.source:
        s = source_labels.c
        labelled = [s.tenant_id == tenant_id, s.source == f.source, s.label != int(Label.CLEAN)]
        if f.label_cutoff is not None:
            labelled.append(s.observe_time > f.label_cutoff)
        conditions.append(t.phone_number.in_(select(s.phone_number).where(*labelled)))
    return query.where(*conditions)


def list_page(session: Session, tenant_id: str, f: ListFilter, after_phone: str | None,
              limit: int) -> list[tuple[bytes, datetime]]:
    t = health.c
    query = _filtered(select(t.payload, t.update_time), tenant_id, f, with_status=True)
    if after_phone is not None:
        query = query.where(t.phone_number > after_phone)
    rows = session.execute(query.order_by(t.phone_number).limit(limit))
    return [(bytes(r.payload), as_utc(r.update_time)) for r in rows]


def count_by_status(session: Session, tenant_id: str, f: ListFilter) -> dict[HealthStatus, int]:
    """Counts per status for the filter (the status filter aside). With no other filter, from the counters kept
    with every write instead of counting the tenant's numbers."""
    if not (f.area_code or f.prefix or f.campaign_id or f.source):
        c = status_counts.c
        rows = session.execute(select(c.status, c.numbers).where(c.tenant_id == tenant_id))
        return {HealthStatus(status): int(count) for status, count in rows if count}
    t = health.c
    rows = session.execute(_filtered(select(t.status, func.count()), tenant_id, f, with_status=False)
                           .group_by(t.status))
    return {HealthStatus(status): int(count) for status, count in rows}


def time_sensitive_phones(session: Session, tenant_id: str) -> list[str]:
    t = health.c
    return list(session.execute(select(t.phone_number).where(t.time_sensitive.is_(True), t.tenant_id == tenant_id)
                                .order_by(t.phone_number)).scalars())


def tenants_with_time_sensitive(session: Session) -> list[str]:
    t = health.c
    return list(session.execute(select(t.tenant_id).where(t.time_sensitive.is_(True)).distinct()).scalars())


def snapshot(session: Session, tenant_id: str | None) -> Iterator[tuple[str, bytes, datetime]]:
    """(tenant, payload, update_time) of every number's current health, for a feed snapshot."""
    t = health.c
    query = select(t.tenant_id, t.payload, t.update_time)
    if tenant_id:
        query = query.where(t.tenant_id == tenant_id)
    for r in session.execute(query.order_by(t.tenant_id, t.phone_number)).yield_per(500):
        yield r.tenant_id, bytes(r.payload), as_utc(r.update_time)


CHANGE_CREATED = types_pb2.CHANGE_KIND_CREATED
CHANGE_UPDATED = types_pb2.CHANGE_KIND_UPDATED
CHANGE_DELETED = types_pb2.CHANGE_KIND_DELETED
