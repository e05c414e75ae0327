"""SQL of the allocation path and the usage reports: SQLAlchemy Core statements over allocation's own tables.

No statement here scans a pool: candidates come from the pool indexes in rotation order, a window at a
time, and counters change only through one conditional UPDATE ... WHERE used < cap ... RETURNING.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from nhm_allocation.eligibility import Candidate, Place, Usage
from nhm_allocation.enums import Gate, State, Tier
from nhm_allocation.health_view import HealthView, from_columns
from nhm_allocation.models import allocations, campaigns, number_health, number_usage, numbers, pool_members, prospects
from nhm_allocation.policy import WarmupPlan
from nhm_platform.protoconv import as_utc

RotationKey = tuple[int, int, int, str]

_POOL_COLUMNS = (
    pool_members.c.phone_number, pool_members.c.gate,
    pool_members.c.day_start.label("key_day_start"), pool_members.c.day_used.label("key_day_used"),
    pool_members.c.last_ms.label("key_last_ms"),
)
_NUMBER_COLUMNS = (
    numbers.c.country, numbers.c.area_code, numbers.c.exchange, numbers.c.region, numbers.c.state,
    numbers.c.display_name, numbers.c.warmup_caps, numbers.c.warmup_step_seconds, numbers.c.warmup_start_time,
)
_HEALTH_COLUMNS = (
    number_health.c.status, number_health.c.universal_status, number_health.c.tmobile_status,
    number_health.c.att_status, number_health.c.verizon_status, number_health.c.other_status,
)
_USAGE_COLUMNS = (
    number_usage.c.day_start, number_usage.c.day_used, number_usage.c.hour_start, number_usage.c.hour_used,
    number_usage.c.last_ms,
)
_CANDIDATE_COLUMNS = (*_POOL_COLUMNS, *_NUMBER_COLUMNS, *_HEALTH_COLUMNS, *_USAGE_COLUMNS)


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _candidates_from() -> Any:
    return (
        pool_members
        .join(numbers, and_(numbers.c.tenant_id == pool_members.c.tenant_id,
                            numbers.c.phone_number == pool_members.c.phone_number))
        .join(number_usage, and_(number_usage.c.tenant_id == pool_members.c.tenant_id,
                                 number_usage.c.phone_number == pool_members.c.phone_number))
        .outerjoin(number_health, and_(number_health.c.tenant_id == pool_members.c.tenant_id,
                                       number_health.c.phone_number == pool_members.c.phone_number))
    )


def _health(row: Row[Any]) -> HealthView:
    return from_columns(row.status, row.universal_status, row.tmobile_status, row.att_status, row.verizon_status,
                        row.other_status)


def warmup_plan(caps: str, step_seconds: int) -> WarmupPlan:
    values = tuple(int(c) for c in caps.split(",") if c.strip().isdigit())
    return WarmupPlan(values or WarmupPlan().daily_caps, timedelta(seconds=step_seconds) if step_seconds > 0
                      else WarmupPlan().step)


def _candidate(row: Row[Any]) -> Candidate:
    state = State(row.state) if row.state in State._value2member_map_ else State.UNSPECIFIED
    return Candidate(
        phone_number=row.phone_number,
        place=Place(row.country, row.area_code, row.exchange, row.region),
        state=state,
        display_name=row.display_name,
        warmup=warmup_plan(row.warmup_caps, row.warmup_step_seconds) if state is State.WARMING else None,
        warmup_start=as_utc(row.warmup_start_time) if row.warmup_start_time is not None else None,
        health=_health(row),
        usage=Usage(row.day_start, row.day_used, row.hour_start, row.hour_used, row.last_ms),
    )


@dataclass(frozen=True)
class CampaignRecord:
    campaign_id: str
    name: str
    policy: bytes


def campaign(session: Session, tenant_id: str, campaign_id: str) -> CampaignRecord | None:
    row = session.execute(select(campaigns.c.campaign_id, campaigns.c.name, campaigns.c.policy).where(
        campaigns.c.tenant_id == tenant_id, campaigns.c.campaign_id == campaign_id)).first()
    return CampaignRecord(row.campaign_id, row.name, bytes(row.policy)) if row else None


def tier_filter(tier: Tier, destination: Place) -> ColumnElement[bool] | None:
    """The pool predicate of a tier for a prospect; None if the prospect's place cannot match the tier."""
    if tier is Tier.AREA_CODE:
        return pool_members.c.area_key == destination.area_key if destination.area_key else None
    if tier is Tier.REGION:
        return pool_members.c.region_key == destination.region_key if destination.region_key else None
    if tier is Tier.COUNTRY:
        return pool_members.c.country == destination.country if destination.country else None
    return literal(True)


def candidate_window(session: Session, tenant_id: str, campaign_id: str, gate: Gate,
                     tier_predicate: ColumnElement[bool], after: RotationKey | None,
                     limit: int) -> list[tuple[RotationKey, Candidate]]:
    """The next `limit` members of a tier and gate in rotation order (an index range walk), after a key."""
    key = tuple_(pool_members.c.day_start, pool_members.c.day_used, pool_members.c.last_ms,
                 pool_members.c.phone_number)
    query: Select[Any] = select(*_CANDIDATE_COLUMNS).select_from(_candidates_from()).where(
        pool_members.c.tenant_id == tenant_id, pool_members.c.campaign_id == campaign_id,
        pool_members.c.gate == int(gate), tier_predicate)
    if after is not None:
        query = query.where(key > tuple_(*[literal(v) for v in after]))
    query = query.order_by(pool_members.c.day_start, pool_members.c.day_used, pool_members.c.last_ms,
                           pool_members.c.phone_number).limit(limit)
    return [((r.key_day_start, r.key_day_used, r.key_last_ms, r.phone_number), _candidate(r))
            for r in session.execute(query)]


def has_later_day(session: Session, tenant_id: str, campaign_id: str, gate: Gate,
                  tier_predicate: ColumnElement[bool], day_start: int) -> bool:
    """Whether any member of the tier counts a day that started after `day_start` (another reset zone)."""
    return session.execute(select(pool_members.c.phone_number).where(
        pool_members.c.tenant_id == tenant_id, pool_members.c.campaign_id == campaign_id,
        pool_members.c.gate == int(gate), tier_predicate, pool_members.c.day_start > day_start).limit(1)).first() \
        is not None


def member(session: Session, tenant_id: str, campaign_id: str, phone_number: str) -> Candidate | None:
    row = session.execute(select(*_CANDIDATE_COLUMNS).select_from(_candidates_from()).where(
        pool_members.c.tenant_id == tenant_id, pool_members.c.campaign_id == campaign_id,
        pool_members.c.phone_number == phone_number)).first()
    return _candidate(row) if row else None


def all_members(session: Session, tenant_id: str, campaign_id: str) -> Iterator[Candidate]:
    """Every member of a campaign's pool (refusal explanations and reports, never the normal path)."""
    rows = session.execute(select(*_CANDIDATE_COLUMNS).select_from(_candidates_from()).where(
        pool_members.c.tenant_id == tenant_id, pool_members.c.campaign_id == campaign_id)
        .order_by(pool_members.c.phone_number))
    for row in rows:
        yield _candidate(row)


def take(session: Session, tenant_id: str, phone_number: str, *, day_start: int, hour_start: int,
         daily_cap: int, hourly_cap: int, now_ms: int) -> Usage | None:
    """Count one call against a number's caps, atomically: None if either cap is reached (the row is re-read
    under its lock on PostgreSQL, so concurrent callers can never push it past a cap)."""
    u = number_usage.c
    new_day = u.day_start < day_start
    new_hour = u.hour_start < hour_start
    row = session.execute(
        update(number_usage)
        .where(u.tenant_id == tenant_id, u.phone_number == phone_number,
               or_(new_day, u.day_used < daily_cap), or_(new_hour, u.hour_used < hourly_cap))
        .values(day_used=case((new_day, 1), else_=u.day_used + 1),
                day_start=case((new_day, day_start), else_=u.day_start),
                hour_used=case((new_hour, 1), else_=u.hour_used + 1),
                hour_start=case((new_hour, hour_start), else_=u.hour_start),
                last_ms=now_ms)
        .returning(u.day_start, u.day_used, u.hour_start, u.hour_used, u.last_ms)
    ).first()
    if row is None:
        return None
    usage = Usage(row.day_start, row.day_used, row.hour_start, row.hour_used, row.last_ms)
    _copy_rotation(session, tenant_id, phone_number, usage)
    return usage


def refund(session: Session, tenant_id: str, phone_number: str, *, day_start: int, hour_start: int) -> Usage | None:
    """Give back one call counted in the given day and hour (a period that has since rolled over is left as is)."""
    u = number_usage.c
    row = session.execute(
        update(number_usage).where(u.tenant_id == tenant_id, u.phone_number == phone_number)
        .values(day_used=case((and_(u.day_start == day_start, u.day_used > 0), u.day_used - 1), else_=u.day_used),
                hour_used=case((and_(u.hour_start == hour_start, u.hour_used > 0), u.hour_used - 1),
                               else_=u.hour_used))
        .returning(u.day_start, u.day_used, u.hour_start, u.hour_used, u.last_ms)
    ).first()
    if row is None:
        return None
    usage = Usage(row.day_start, row.day_used, row.hour_start, row.hour_used, row.last_ms)
    _copy_rotation(session, tenant_id, phone_number, usage)
    return usage


def _copy_rotation(session: Session, tenant_id: str, phone_number: str, usage: Usage) -> None:
    session.execute(update(pool_members).where(
        pool_members.c.tenant_id == tenant_id, pool_members.c.phone_number == phone_number,
    ).values(day_start=usage.day_start, day_used=usage.day_used, last_ms=usage.last_ms))


def usage(session: Session, tenant_id: str, phone_number: str) -> Usage | None:
    row = session.execute(select(number_usage).where(
        number_usage.c.tenant_id == tenant_id, number_usage.c.phone_number == phone_number)).first()
    return Usage(row.day_start, row.day_used, row.hour_start, row.hour_used, row.last_ms) if row else None


@dataclass(frozen=True)
class Sticky:
    phone_number: str
    campaign_id: str
    time: datetime


def lock_prospect(session: Session, tenant_id: str, destination: str) -> Sticky | None:
    """Take the prospect's row lock (creating the row) and return its sticky caller ID, if any."""
    insert = _insert(session)
    statement = insert(prospects).values(tenant_id=tenant_id, destination=destination)
    row = session.execute(
        statement.on_conflict_do_update(index_elements=["tenant_id", "destination"],
                                        set_={"destination": statement.excluded.destination})
        .returning(prospects.c.sticky_phone_number, prospects.c.sticky_campaign_id, prospects.c.sticky_time)
    ).one()
    if not row.sticky_phone_number or row.sticky_time is None:
        return None
    return Sticky(row.sticky_phone_number, row.sticky_campaign_id or "", as_utc(row.sticky_time))


def set_sticky(session: Session, tenant_id: str, destination: str, phone_number: str, campaign_id: str,
               now: datetime) -> None:
    session.execute(update(prospects).where(
        prospects.c.tenant_id == tenant_id, prospects.c.destination == destination,
    ).values(sticky_phone_number=phone_number, sticky_campaign_id=campaign_id, sticky_time=now))


def recent_calls(session: Session, tenant_id: str, destination: str, since: datetime) -> list[datetime]:
    """Times of the prospect's calls (not released) after `since`."""
    rows = session.execute(select(allocations.c.allocate_time).where(
        allocations.c.tenant_id == tenant_id, allocations.c.destination == destination,
        allocations.c.allocate_time > since, allocations.c.released.is_(False)))
    return [as_utc(t) for t in rows.scalars()]


def record(session: Session, values: dict[str, Any]) -> None:
    session.execute(allocations.insert().values(**values))


@dataclass(frozen=True)
class LedgerEntry:
    campaign_id: str
    phone_number: str
    tier: int
    day_start: int
    hour_start: int
    counted: bool


def release(session: Session, tenant_id: str, call_id: str, now: datetime) -> tuple[LedgerEntry | None, bool]:
    """Mark an allocation released: (its entry, True) the first time; (entry, False) if it already was;
    (None, False) if there is no such allocation."""
    a = allocations.c
    columns = (a.campaign_id, a.phone_number, a.tier, a.day_start, a.hour_start, a.counted)
    row = session.execute(update(allocations).where(
        a.tenant_id == tenant_id, a.call_id == call_id, a.released.is_(False),
    ).values(released=True, release_time=now).returning(*columns)).first()
    if row is not None:
        return LedgerEntry(*row), True
    row = session.execute(select(*columns).where(a.tenant_id == tenant_id, a.call_id == call_id)).first()
    return (LedgerEntry(*row), False) if row else (None, False)


def display_name(session: Session, tenant_id: str, phone_number: str) -> str:
    value = session.execute(select(numbers.c.display_name).where(
        numbers.c.tenant_id == tenant_id, numbers.c.phone_number == phone_number)).scalar()
    return value or ""


def number_known(session: Session, tenant_id: str, phone_number: str) -> bool:
    return session.execute(select(numbers.c.phone_number).where(
        numbers.c.tenant_id == tenant_id, numbers.c.phone_number == phone_number)).first() is not None


def first_campaign_of(session: Session, tenant_id: str, phone_number: str) -> str:
    value = session.execute(select(func.min(pool_members.c.campaign_id)).where(
        pool_members.c.tenant_id == tenant_id, pool_members.c.phone_number == phone_number)).scalar()
    return value or ""


def number_candidate(session: Session, tenant_id: str, phone_number: str) -> Candidate | None:
    """A number with its usage and health, whatever campaign it serves."""
    query = (
        select(numbers.c.phone_number, *_NUMBER_COLUMNS, *_HEALTH_COLUMNS,
               *[func.coalesce(column, 0).label(column.name) for column in _USAGE_COLUMNS])
        .select_from(numbers
                     .outerjoin(number_usage, and_(number_usage.c.tenant_id == numbers.c.tenant_id,
                                                   number_usage.c.phone_number == numbers.c.phone_number))
                     .outerjoin(number_health, and_(number_health.c.tenant_id == numbers.c.tenant_id,
                                                    number_health.c.phone_number == numbers.c.phone_number)))
        .where(numbers.c.tenant_id == tenant_id, numbers.c.phone_number == phone_number))
    row = session.execute(query).first()
    return _candidate(row) if row else None


def member_page(session: Session, tenant_id: str, campaign_id: str, after: str | None,
                limit: int) -> list[Candidate]:
    query = select(*_CANDIDATE_COLUMNS).select_from(_candidates_from()).where(
        pool_members.c.tenant_id == tenant_id, pool_members.c.campaign_id == campaign_id)
    if after is not None:
        query = query.where(pool_members.c.phone_number > after)
    return [_candidate(r) for r in session.execute(query.order_by(pool_members.c.phone_number).limit(limit))]


def campaign_calls_since(session: Session, tenant_id: str, campaign_id: str, since: datetime) -> int:
    return int(session.execute(select(func.count()).select_from(allocations).where(
        allocations.c.tenant_id == tenant_id, allocations.c.campaign_id == campaign_id,
        allocations.c.allocate_time >= since, allocations.c.released.is_(False))).scalar() or 0)


def calls_by_destination_area(session: Session, tenant_id: str, campaign_id: str,
                              since: datetime) -> dict[str, int]:
    rows = session.execute(select(allocations.c.destination_area_key, func.count()).where(
        allocations.c.tenant_id == tenant_id, allocations.c.campaign_id == campaign_id,
        allocations.c.allocate_time >= since, allocations.c.released.is_(False),
    ).group_by(allocations.c.destination_area_key))
    return {key: int(count) for key, count in rows}


def ledger_counts(session: Session, tenant_id: str, phone_numbers: Sequence[str]) -> dict[tuple[str, int], int]:
    """Counted, unreleased allocations per (number, day): what the usage counters must equal."""
    rows = session.execute(select(allocations.c.phone_number, allocations.c.day_start, func.count()).where(
        allocations.c.tenant_id == tenant_id, allocations.c.phone_number.in_(phone_numbers),
        allocations.c.counted.is_(True), allocations.c.released.is_(False),
    ).group_by(allocations.c.phone_number, allocations.c.day_start))
    return {(phone, int(day)): int(count) for phone, day, count in rows}
