"""SQL of the allocation path and the usage reports: SQLAlchemy Core statements over allocation's own tables.

Statements of the allocation path are built once, with bound parameters. None of them scans a pool:
candidates come from the pool indexes in rotation order, a window at a time, and counters change only
through a conditional UPDATE that adds a batch's calls to each number only if every one of them was under its
caps (count_all).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import BigInteger, Integer, String, and_, any_, bindparam, case, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from nhm_allocation.eligibility import Candidate, Place, Usage
from nhm_allocation.enums import Gate, State, Tier
from nhm_allocation.health_view import HealthView, from_columns
from nhm_allocation.models import (
    allocations,
    campaigns,
    idempotency,
    number_health,
    number_usage,
    numbers,
    pool_members,
    prospects,
)
from nhm_allocation.policy import WarmupPlan
from nhm_platform.protoconv import as_utc
from nhm_platform.statements import Compiled, dialect_of, savepoint

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


_FROM = (
    pool_members
    .join(numbers, and_(numbers.c.tenant_id == pool_members.c.tenant_id,
                        numbers.c.phone_number == pool_members.c.phone_number))
    .join(number_usage, and_(number_usage.c.tenant_id == pool_members.c.tenant_id,
                             number_usage.c.phone_number == pool_members.c.phone_number))
    .outerjoin(number_health, and_(number_health.c.tenant_id == pool_members.c.tenant_id,
                                   number_health.c.phone_number == pool_members.c.phone_number))
)
_P, _U = pool_members.c, number_usage.c
_ROTATION = (_P.day_start, _P.day_used, _P.last_ms, _P.phone_number)


def _health(row: Row[Any]) -> HealthView:
    return from_columns(row.status, row.universal_status, row.tmobile_status, row.att_status, row.verizon_status,
                        row.other_status)


def warmup_plan(caps: str, step_seconds: int) -> WarmupPlan:
    values = tuple(int(c) for c in caps.split(",") if c.strip().isdigit())
    return WarmupPlan(values or WarmupPlan().daily_caps, timedelta(seconds=step_seconds) if step_seconds > 0
                      else WarmupPlan().step)


def _state(value: int) -> State:
    return State(value) if value in State._value2member_map_ else State.UNSPECIFIED


def _warmup(row: Row[Any], state: State) -> tuple[WarmupPlan | None, datetime | None]:
    """A warming number's plan and when its warm-up began (None for the others' plan)."""
    plan = warmup_plan(row.warmup_caps, row.warmup_step_seconds) if state is State.WARMING else None
    return plan, as_utc(row.warmup_start_time) if row.warmup_start_time is not None else None


def _candidate(row: Row[Any]) -> Candidate:
    state = _state(row.state)
    warmup, warmup_start = _warmup(row, state)
    return Candidate(
        phone_number=row.phone_number,
        place=Place(row.country, row.area_code, row.exchange, row.region),
        state=state,
        display_name=row.display_name,
        warmup=warmup,
        warmup_start=warmup_start,
        health=_health(row),
        usage=Usage(row.day_start, row.day_used, row.hour_start, row.hour_used, row.last_ms),
    )


@dataclass(frozen=True)
class CampaignRecord:
    campaign_id: str
    name: str
    policy: bytes


_CAMPAIGN = Compiled(select(campaigns.c.campaign_id, campaigns.c.name, campaigns.c.policy).where(
    campaigns.c.tenant_id == bindparam("tenant"), campaigns.c.campaign_id == bindparam("campaign")), prepared=True)


def campaign(session: Session, tenant_id: str, campaign_id: str) -> CampaignRecord | None:
    row = _CAMPAIGN.first(session, {"tenant": tenant_id, "campaign": campaign_id})
    return CampaignRecord(row.campaign_id, row.name, bytes(row.policy)) if row else None


# How each tier selects pool members: the column compared with the prospect's key (None: every member).
_TIER_COLUMNS: dict[Tier, Any] = {Tier.AREA_CODE: _P.area_key, Tier.REGION: _P.region_key,
                                  Tier.COUNTRY: _P.country, Tier.ANY: None}


def tier_key(tier: Tier, destination: Place) -> str | None:
    """The prospect's key for a tier ("" for ANY); None if the prospect's place cannot match the tier."""
    key = {Tier.AREA_CODE: destination.area_key, Tier.REGION: destination.region_key,
           Tier.COUNTRY: destination.country, Tier.ANY: ""}.get(tier)
    if tier is not Tier.ANY and not key:
        return None
    return key


def _walk_filter(tier: Tier) -> list[ColumnElement[bool]]:
    column = _TIER_COLUMNS[tier]
    conditions = [_P.tenant_id == bindparam("tenant"), _P.campaign_id == bindparam("campaign"),
                  _P.gate == bindparam("gate")]
    if column is not None:
        conditions.append(column == bindparam("tier_key"))
    return conditions


@functools.cache
def _window_statement(tier: Tier, resume: bool, limit: int) -> Select[Any]:
    query = select(*_CANDIDATE_COLUMNS).select_from(_FROM).where(*_walk_filter(tier))
    if resume:
        query = query.where(tuple_(*_ROTATION) > tuple_(*(bindparam(f"after_{i}") for i in range(4))))
    return query.order_by(*_ROTATION).limit(limit)


@functools.cache
def _window(tier: Tier, resume: bool, limit: int) -> Compiled:
    # Planned per call: a generic plan cannot see which tier key is rare, and may walk the whole-pool index.
    return Compiled(_window_statement(tier, resume, limit))


def candidate_window(session: Session, tenant_id: str, campaign_id: str, gate: Gate, tier: Tier, key: str,
                     after: RotationKey | None, limit: int) -> list[tuple[RotationKey, Candidate]]:
    """The next `limit` members of a tier and gate in rotation order (an index range walk), after a key."""
    params: dict[str, Any] = {"tenant": tenant_id, "campaign": campaign_id, "gate": int(gate), "tier_key": key}
    if after is not None:
        params.update({f"after_{i}": value for i, value in enumerate(after)})
    rows = _window(tier, after is not None, limit).rows(session, params)
    return [((r.key_day_start, r.key_day_used, r.key_last_ms, r.phone_number), _candidate(r)) for r in rows]


@functools.cache
def _later_day_statement(tier: Tier) -> Compiled:
    return Compiled(select(_P.phone_number).where(*_walk_filter(tier), _P.day_start > bindparam("day_start"))
                    .limit(1))


def has_later_day(session: Session, tenant_id: str, campaign_id: str, gate: Gate, tier: Tier, key: str,
                  day_start: int) -> bool:
    """Whether any member of the walk counts a day that started after `day_start` (another reset zone)."""
    params = {"tenant": tenant_id, "campaign": campaign_id, "gate": int(gate), "tier_key": key,
              "day_start": day_start}
    return _later_day_statement(tier).first(session, params) is not None


def _members_of(listed: Listed) -> Select[Any]:
    return select(*_CANDIDATE_COLUMNS).select_from(_FROM).where(
        _P.tenant_id == bindparam("p_tenant"), _P.campaign_id == bindparam("p_campaign"), listed(_P.phone_number))


def members(session: Session, tenant_id: str, campaign_id: str, phone_numbers: Collection[str]) -> dict[str, Candidate]:
    """The numbers that are members of the campaign's pool, each with its usage and health: one statement."""
    ordered = sorted(set(phone_numbers))
    if not ordered:
        return {}
    dialect = dialect_of(session)
    rows = _of_listed(_members_of, dialect, len(ordered)).rows(
        session, {"p_tenant": tenant_id, "p_campaign": campaign_id, **_listed_values(dialect, ordered)})
    return {row.phone_number: _candidate(row) for row in rows}


def all_members(session: Session, tenant_id: str, campaign_id: str) -> Iterator[Candidate]:
    """Every member of a campaign's pool (refusal explanations and reports, never the normal path)."""
    rows = session.execute(select(*_CANDIDATE_COLUMNS).select_from(_FROM).where(
        _P.tenant_id == tenant_id, _P.campaign_id == campaign_id).order_by(_P.phone_number))
    for row in rows:
        yield _candidate(row)


@dataclass(frozen=True)
class MemberGroup:
    """Members of a campaign alike in everything today's capacity depends on, and how many there are."""

    # One of them as the rules see it: place without exchange, health by overall status only, no usage.
    like: Candidate
    members: int


_IF_WARMING = numbers.c.state == int(State.WARMING)
_GROUP_KEY = (
    numbers.c.country, numbers.c.area_code, numbers.c.region, numbers.c.state, number_health.c.status,
    # The warm-up sets the cap of a warming number only; the others are grouped without it.
    case((_IF_WARMING, numbers.c.warmup_caps)).label("warmup_caps"),
    case((_IF_WARMING, numbers.c.warmup_step_seconds)).label("warmup_step_seconds"),
    case((_IF_WARMING, numbers.c.warmup_start_time)).label("warmup_start_time"),
)


def member_groups(session: Session, tenant_id: str, campaign_id: str) -> list[MemberGroup]:
    """A campaign's members counted by the database, grouped as capacity reads them (area, region, lifecycle
    state, overall health, a warming number's plan): a few rows per area whatever the pool's size."""
    rows = session.execute(select(*_GROUP_KEY, func.count().label("members")).select_from(_FROM).where(
        _P.tenant_id == tenant_id, _P.campaign_id == campaign_id).group_by(*_GROUP_KEY))
    groups = []
    for row in rows:
        state = _state(row.state)
        warmup, warmup_start = _warmup(row, state)
        like = Candidate(phone_number="", place=Place(row.country, row.area_code, "", row.region), state=state,
                         warmup=warmup, warmup_start=warmup_start,
                         health=from_columns(row.status, 0, 0, 0, 0, 0))
        groups.append(MemberGroup(like, int(row.members)))
    return groups


def member_kinds(session: Session, tenant_id: str, campaign_id: str, *, destination_exchange: str, day_start: int,
                 hour_start: int) -> list[tuple[Candidate, int]]:
    """A campaign's members counted by the database in kinds that every allocation rule treats alike for one call:
    place (the exchange only as "the prospect's own or not"), lifecycle, health on every carrier, a warming
    number's plan, and the calls counted today and this hour. Each kind comes as one member the rules can judge
    (no phone number) and how many members are of that kind."""
    alike = select(
        numbers.c.country, numbers.c.area_code, numbers.c.region, numbers.c.state, *_HEALTH_COLUMNS,
        case((and_(numbers.c.exchange != "", numbers.c.exchange == bindparam("k_exchange")), True),
             else_=False).label("prospects_exchange"),
        case((_IF_WARMING, numbers.c.warmup_caps)).label("warmup_caps"),
        case((_IF_WARMING, numbers.c.warmup_step_seconds)).label("warmup_step_seconds"),
        case((_IF_WARMING, numbers.c.warmup_start_time)).label("warmup_start_time"),
        case((_U.day_start >= bindparam("k_day_start"), _U.day_used), else_=0).label("used_today"),
        case((_U.hour_start >= bindparam("k_hour_start"), _U.hour_used), else_=0).label("used_this_hour"),
    ).select_from(_FROM).where(_P.tenant_id == tenant_id, _P.campaign_id == campaign_id).subquery()
    rows = session.execute(select(*alike.c, func.count().label("members")).group_by(*alike.c),
                           {"k_exchange": destination_exchange, "k_day_start": day_start, "k_hour_start": hour_start})
    kinds = []
    for row in rows:
        state = _state(row.state)
        warmup, warmup_start = _warmup(row, state)
        exchange = destination_exchange if row.prospects_exchange else ""
        like = Candidate(phone_number="", place=Place(row.country, row.area_code, exchange, row.region), state=state,
                         warmup=warmup, warmup_start=warmup_start, health=_health(row),
                         usage=Usage(day_start, int(row.used_today), hour_start, int(row.used_this_hour)))
        kinds.append((like, int(row.members)))
    return kinds


_USAGE_RETURNING = (_U.day_start, _U.day_used, _U.hour_start, _U.hour_used, _U.last_ms)

_REFUND = (
    update(number_usage)
    .where(_U.tenant_id == bindparam("p_tenant"), _U.phone_number == bindparam("p_phone"))
    .values(day_used=case((and_(_U.day_start == bindparam("p_day_start"), _U.day_used > 0), _U.day_used - 1),
                          else_=_U.day_used),
            hour_used=case((and_(_U.hour_start == bindparam("p_hour_start"), _U.hour_used > 0), _U.hour_used - 1),
                           else_=_U.hour_used))
)
_COPY_ROTATION = update(pool_members).where(
    _P.tenant_id == bindparam("p_tenant"), _P.phone_number == bindparam("p_phone"),
).values(day_start=bindparam("p_day_start"), day_used=bindparam("p_day_used"), last_ms=bindparam("p_last_ms"))


def _with_rotation_copy(count: Any) -> Select[Any]:
    """PostgreSQL: a counter UPDATE (returning the number and its counters) and the copy of its result into the
    number's pool rows, as one statement (a round trip less; SQLite, in process, runs the two statements)."""
    counted = count.cte("counted")
    copy = update(pool_members).where(
        _P.tenant_id == bindparam("p_tenant"), _P.phone_number == counted.c.phone_number,
    ).values(day_start=counted.c.day_start, day_used=counted.c.day_used, last_ms=counted.c.last_ms)
    return select(*counted.c).add_cte(copy.returning(_P.phone_number).cte("copied"))


@dataclass(frozen=True)
class Count:
    """The calls a batch counted against one number, written when it ends: how many, the day and hour they count
    in (those their ledger rows record), and the most calls of that day and hour the counters may have held
    before them for each of those calls to have been under its caps (a counter of an earlier day or hour holds
    none). A counter that has moved on to a later day or hour since the batch read it is a conflict, as a full
    one is: its calls would count in a period their ledger rows do not name."""

    phone_number: str
    calls: int
    day_start: int
    hour_start: int
    day_limit: int
    hour_limit: int
    last_ms: int


_COUNT_TYPES: dict[str, Any] = {"phone_number": String, "calls": Integer, "day_start": BigInteger,
                                 "hour_start": BigInteger, "day_limit": Integer, "hour_limit": Integer,
                                 "last_ms": BigInteger}


def _counting(count: Any) -> tuple[dict[str, Any], tuple[ColumnElement[bool], ...]]:
    """The counters' new values and the condition that every counted call was under its caps in the day and hour
    it counts in, for a count whose columns (phone_number, calls, day_start, ...) are `count`'s attributes."""
    new_day, new_hour = _U.day_start < count.day_start, _U.hour_start < count.hour_start
    values = {
        "day_used": case((new_day, count.calls), else_=_U.day_used + count.calls),
        "day_start": case((new_day, count.day_start), else_=_U.day_start),
        "hour_used": case((new_hour, count.calls), else_=_U.hour_used + count.calls),
        "hour_start": case((new_hour, count.hour_start), else_=_U.hour_start),
        "last_ms": count.last_ms,
    }
    under_caps = (_U.day_start <= count.day_start, _U.hour_start <= count.hour_start,
                  case((new_day, 0), else_=_U.day_used) <= count.day_limit,
                  case((new_hour, 0), else_=_U.hour_used) <= count.hour_limit)
    return values, under_caps


def _pg_count_all() -> Compiled:
    """PostgreSQL: every count of a batch (one tenant's) in one statement, the numbers locked in phone order first
    (two batches that count the same numbers then wait for each other instead of deadlocking)."""
    arrays = {name: bindparam(f"c_{name}", type_=postgresql.ARRAY(type_)) for name, type_ in _COUNT_TYPES.items()}
    phones = arrays["phone_number"]
    counts = func.unnest(*arrays.values()).table_valued(*_COUNT_TYPES).render_derived()
    locked = (select(_U.phone_number.label("locked_phone"))
              .where(_U.tenant_id == bindparam("p_tenant"), _U.phone_number == any_(phones))
              .order_by(_U.phone_number).with_for_update()).cte("locked").prefix_with("MATERIALIZED")
    values, under_caps = _counting(counts.c)
    count = (update(number_usage)
             .where(_U.tenant_id == bindparam("p_tenant"), _U.phone_number == counts.c.phone_number,
                    _U.phone_number.in_(select(locked.c.locked_phone)), *under_caps)
             .values(values)
             .returning(_U.phone_number, *_USAGE_RETURNING))
    return Compiled(_with_rotation_copy(count), prepared=True)


def _sqlite_count() -> Compiled:
    """SQLite: one count, a number's (its pool rows' copy is a second statement)."""
    values, under_caps = _counting(SimpleNamespace(**{name: bindparam(f"c_{name}") for name in _COUNT_TYPES}))
    return Compiled(update(number_usage).where(
        _U.tenant_id == bindparam("p_tenant"), _U.phone_number == bindparam("c_phone_number"), *under_caps,
    ).values(values).returning(*_USAGE_RETURNING))


_PG_COUNT_ALL, _SQLITE_COUNT = _pg_count_all(), _sqlite_count()
_PG_REFUND = Compiled(_with_rotation_copy(_REFUND.returning(_U.phone_number, *_USAGE_RETURNING)), prepared=True)
_SQLITE_REFUND, _SQLITE_COPY_ROTATION = Compiled(_REFUND.returning(*_USAGE_RETURNING)), Compiled(_COPY_ROTATION)


def count_all(session: Session, tenant_id: str, counts: Sequence[Count]) -> dict[str, Usage]:
    """Add each count's calls to its number's counters, if they were all under their caps: the numbers counted,
    with their usage since. A number left out had no room for them, given what other transactions counted
    meanwhile, and the others were counted anyway: the transaction must then roll back. One statement on
    PostgreSQL, waiting for the rows other transactions hold; on SQLite, whose transaction holds the whole
    database, one statement a number."""
    if not counts:
        return {}
    if dialect_of(session) == "postgresql":
        ordered = sorted(counts, key=lambda count: count.phone_number)
        rows = _PG_COUNT_ALL.rows(session, {"p_tenant": tenant_id, **{
            f"c_{name}": [getattr(count, name) for count in ordered] for name in _COUNT_TYPES}})
        return {row[0]: Usage(*row[1:]) for row in rows}
    counted = {}
    for count in counts:
        row = _SQLITE_COUNT.first(session, {"p_tenant": tenant_id, **{
            f"c_{name}": getattr(count, name) for name in _COUNT_TYPES}})
        if row is None:
            break
        counted[count.phone_number] = usage = Usage(*row)
        _copy_rotation(session, tenant_id, count.phone_number, usage)
    return counted


class _Released(Exception):
    """The number read under its lock is of no use to the call: its savepoint is rolled back."""


_PG_LOCK_USAGE = Compiled(select(*_USAGE_RETURNING).where(
    _U.tenant_id == bindparam("tenant"), _U.phone_number == bindparam("phone")).with_for_update(), prepared=True)


def lock_usage(session: Session, tenant_id: str, phone_number: str, *,
               keep: Callable[[Usage], bool]) -> tuple[Usage | None, bool]:
    """A number's usage read under its row lock, waiting for a transaction that holds it (counting it), and
    whether the lock is kept: it is if keep(usage), and released at once if not (a savepoint rolled back), so
    that other calls do not queue behind a number this one cannot use. Nothing is written: the count is the
    batch's end's, which no other transaction can now make fail. PostgreSQL only (SQLite's transaction holds the
    whole database)."""
    found: list[Usage | None] = []
    try:
        with savepoint(session):
            row = _PG_LOCK_USAGE.first(session, {"tenant": tenant_id, "phone": phone_number})
            found.append(Usage(*row) if row is not None else None)
            if found[0] is None or not keep(found[0]):
                raise _Released
    except _Released:
        return found[0], False
    return found[0], True


def refund(session: Session, tenant_id: str, phone_number: str, *, day_start: int, hour_start: int) -> Usage | None:
    """Give back one call counted in the given day and hour (a period that has since rolled over is left as is)."""
    params = {"p_tenant": tenant_id, "p_phone": phone_number, "p_day_start": day_start, "p_hour_start": hour_start}
    if dialect_of(session) == "postgresql":
        row = _PG_REFUND.first(session, params)
        return Usage(*row[1:]) if row is not None else None
    row = _SQLITE_REFUND.first(session, params)
    if row is None:
        return None
    usage = Usage(*row)
    _copy_rotation(session, tenant_id, phone_number, usage)
    return usage


def _copy_rotation(session: Session, tenant_id: str, phone_number: str, usage: Usage) -> None:
    _SQLITE_COPY_ROTATION.execute(session, {"p_tenant": tenant_id, "p_phone": phone_number,
                                            "p_day_start": usage.day_start, "p_day_used": usage.day_used,
                                            "p_last_ms": usage.last_ms})


_USAGE = Compiled(select(*_USAGE_RETURNING).where(_U.tenant_id == bindparam("tenant"),
                                                   _U.phone_number == bindparam("phone")), prepared=True)


def usage(session: Session, tenant_id: str, phone_number: str) -> Usage | None:
    row = _USAGE.first(session, {"tenant": tenant_id, "phone": phone_number})
    return Usage(*row) if row else None


@dataclass(frozen=True)
class Sticky:
    phone_number: str
    campaign_id: str
    time: datetime


_STICKY_COLUMNS = (prospects.c.sticky_phone_number, prospects.c.sticky_campaign_id, prospects.c.sticky_time)


def _pg_lock_prospects() -> Compiled:
    """PostgreSQL: each prospect's row (created if new), locked, with its sticky caller ID: one statement."""
    listed = (func.unnest(bindparam("p_destinations", type_=postgresql.ARRAY(String)))
              .table_valued("destination").render_derived())
    statement = postgresql.insert(prospects).from_select(
        ["tenant_id", "destination"], select(bindparam("p_tenant", type_=String), listed.c.destination))
    return Compiled(statement.on_conflict_do_update(index_elements=["tenant_id", "destination"],
                                                     set_={"destination": statement.excluded.destination})
                    .returning(prospects.c.destination, *_STICKY_COLUMNS), prepared=True)


_PG_LOCK_PROSPECTS = _pg_lock_prospects()


def _sticky(row: Row[Any]) -> Sticky | None:
    if not row.sticky_phone_number or row.sticky_time is None:
        return None
    return Sticky(row.sticky_phone_number, row.sticky_campaign_id or "", as_utc(row.sticky_time))


def lock_prospects(session: Session, tenant_id: str, destinations: Collection[str]) -> dict[str, Sticky | None]:
    """Each prospect's sticky caller ID, if any. On PostgreSQL their rows are locked first (created if new, in
    destination order), so concurrent calls to one prospect are served one after the other and per-prospect
    limits hold across replicas; SQLite's write transaction already holds the whole database."""
    ordered = sorted(set(destinations))
    dialect = dialect_of(session)
    if dialect == "postgresql":
        rows = _PG_LOCK_PROSPECTS.rows(session, {"p_tenant": tenant_id, "p_destinations": ordered})
    else:
        rows = _of_listed(_stickies_of, dialect, len(ordered)).rows(
            session, {"p_tenant": tenant_id, **_listed_values(dialect, ordered)})
    found = {row.destination: _sticky(row) for row in rows}
    return {destination: found.get(destination) for destination in ordered}


def _listed_values(dialect: str, values: Sequence[str]) -> dict[str, Any]:
    if dialect == "postgresql":
        return {"p_listed": list(values)}
    return {f"p_listed_{i}": value for i, value in enumerate(values)}


Listed = Callable[[ColumnElement[str]], ColumnElement[bool]]


@functools.lru_cache(maxsize=256)
def _of_listed(query: Callable[[Listed], Select[Any]], dialect: str, count: int) -> Compiled:
    """A query over a set of values (prospects, numbers), compiled once per database and set size: one array
    parameter on PostgreSQL (prepared), an IN list of `count` parameters on SQLite."""
    if dialect == "postgresql":
        listed = bindparam("p_listed", type_=postgresql.ARRAY(String))
        return Compiled(query(lambda column: column == any_(listed)), prepared=True)
    return Compiled(query(lambda column: column.in_([bindparam(f"p_listed_{i}") for i in range(count)])))


def _stickies_of(listed: Listed) -> Select[Any]:
    return select(prospects.c.destination, *_STICKY_COLUMNS).where(
        prospects.c.tenant_id == bindparam("p_tenant"), listed(prospects.c.destination))


_SET_STICKY = update(prospects).where(
    prospects.c.tenant_id == bindparam("p_tenant"), prospects.c.destination == bindparam("p_destination"),
).values(sticky_phone_number=bindparam("p_phone"), sticky_campaign_id=bindparam("p_campaign"),
         sticky_time=bindparam("p_time"))


def _recent_of(listed: Listed) -> Select[Any]:
    a = allocations.c
    return select(a.destination, a.allocate_time).where(
        a.tenant_id == bindparam("p_tenant"), listed(a.destination), a.allocate_time > bindparam("p_since"),
        a.released.is_(False))


def recent_calls(session: Session, tenant_id: str, destinations: Collection[str],
                 since: datetime) -> dict[str, list[datetime]]:
    """Times of each prospect's calls (not released) after `since`."""
    ordered = sorted(set(destinations))
    dialect = dialect_of(session)
    found: dict[str, list[datetime]] = {destination: [] for destination in ordered}
    for row in _of_listed(_recent_of, dialect, len(ordered)).rows(
            session, {"p_tenant": tenant_id, "p_since": since, **_listed_values(dialect, ordered)}):
        found[row.destination].append(as_utc(row.allocate_time))
    return found


_RECORD = Compiled(allocations.insert().values(
    {column.name: bindparam(column.name) for column in allocations.c}))
# SQLite: the prospect's row exists only once it has a sticky caller ID (no row lock is taken before).
_sqlite_sticky = sqlite.insert(prospects).values(
    tenant_id=bindparam("p_tenant"), destination=bindparam("p_destination"), sticky_phone_number=bindparam("p_phone"),
    sticky_campaign_id=bindparam("p_campaign"), sticky_time=bindparam("p_time"))
_SQLITE_STICK = Compiled(_sqlite_sticky.on_conflict_do_update(
    index_elements=["tenant_id", "destination"],
    set_={column: _sqlite_sticky.excluded[column] for column in ("sticky_phone_number", "sticky_campaign_id",
                                                                 "sticky_time")}))


@functools.cache
def _pg_record(stick: bool) -> Compiled:
    """PostgreSQL: the ledger row, the call id's stored answer and (stick) the prospect's new sticky caller ID
    in one statement."""
    ledger = allocations.insert().values({column.name: bindparam(f"a_{column.name}") for column in allocations.c})
    answer = idempotency.completion.returning(idempotency.table.c.request_id).cte("answered")
    if stick:
        return Compiled(_SET_STICKY.add_cte(ledger.returning(allocations.c.call_id).cte("recorded"))
                        .add_cte(answer))
    return Compiled(ledger.add_cte(answer))


@dataclass(frozen=True)
class Recorded:
    """An allocation to write: its ledger row, the answer its call id keeps, and whether its caller ID becomes
    the prospect's sticky one."""

    ledger: dict[str, Any]
    response: Message
    stick: bool

    def sticky_values(self) -> dict[str, Any]:
        values = self.ledger
        return {"p_tenant": values["tenant_id"], "p_destination": values["destination"],
                "p_phone": values["phone_number"], "p_campaign": values["campaign_id"],
                "p_time": values["allocate_time"]}


def record_all(session: Session, recorded: Sequence[Recorded]) -> None:
    """The ledger rows of allocations and the answers their call ids keep (the call id is the idempotency key);
    each one that sticks makes its caller ID the prospect's sticky one. A few statements, however many."""
    if dialect_of(session) == "postgresql":
        for stick in (True, False):
            _pg_record(stick).execute_many(session, [
                {**{f"a_{name}": value for name, value in r.ledger.items()}, **(r.sticky_values() if stick else {}),
                 **idempotency.completion_values(r.ledger["tenant_id"], r.ledger["call_id"], r.response)}
                for r in recorded if r.stick is stick])
        return
    _RECORD.execute_many(session, [r.ledger for r in recorded])
    idempotency.complete_all(session, [(r.ledger["tenant_id"], r.ledger["call_id"], r.response) for r in recorded])
    _SQLITE_STICK.execute_many(session, [r.sticky_values() for r in recorded if r.stick])


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


def number_candidate(session: Session, tenant_id: str, phone_number: str) -> Candidate | None:
    """A number with its usage and health, whatever campaign it serves."""
    return number_candidates(session, tenant_id, [phone_number]).get(phone_number)


def member_page(session: Session, tenant_id: str, campaign_id: str, after: str | None,
                limit: int) -> list[Candidate]:
    query = select(*_CANDIDATE_COLUMNS).select_from(_FROM).where(
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


# --- Usage of many numbers at once (BatchGetNumberUsage): a few statements per batch, none per number ---

def number_candidates(session: Session, tenant_id: str, phone_numbers: Sequence[str]) -> dict[str, Candidate]:
    """The numbers found, with their usage and health, whatever campaigns they serve."""
    query = (
        select(numbers.c.phone_number, *_NUMBER_COLUMNS, *_HEALTH_COLUMNS,
               *[func.coalesce(column, 0).label(column.name) for column in _USAGE_COLUMNS])
        .select_from(numbers
                     .outerjoin(number_usage, and_(number_usage.c.tenant_id == numbers.c.tenant_id,
                                                   number_usage.c.phone_number == numbers.c.phone_number))
                     .outerjoin(number_health, and_(number_health.c.tenant_id == numbers.c.tenant_id,
                                                    number_health.c.phone_number == numbers.c.phone_number)))
        .where(numbers.c.tenant_id == tenant_id, numbers.c.phone_number.in_(list(phone_numbers))))
    return {row.phone_number: _candidate(row) for row in session.execute(query)}


def first_campaigns_of(session: Session, tenant_id: str, phone_numbers: Sequence[str]) -> dict[str, str]:
    """Each number's first campaign (by id) among those it serves; numbers in none are left out."""
    rows = session.execute(select(pool_members.c.phone_number, func.min(pool_members.c.campaign_id)).where(
        pool_members.c.tenant_id == tenant_id, pool_members.c.phone_number.in_(list(phone_numbers)),
    ).group_by(pool_members.c.phone_number))
    return {phone: campaign_id for phone, campaign_id in rows}


def campaigns_by_id(session: Session, tenant_id: str, campaign_ids: Collection[str]) -> dict[str, CampaignRecord]:
    rows = session.execute(select(campaigns.c.campaign_id, campaigns.c.name, campaigns.c.policy).where(
        campaigns.c.tenant_id == tenant_id, campaigns.c.campaign_id.in_(sorted(campaign_ids))))
    return {row.campaign_id: CampaignRecord(row.campaign_id, row.name, bytes(row.policy)) for row in rows}
