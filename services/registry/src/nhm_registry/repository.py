"""Reads and writes of the registry's tables for one session. Every query names the tenant."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import bindparam, delete, exists, func, insert, literal, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from nhm_platform import statements
from nhm_platform.db import refresh_statistics
from nhm_platform.prefix_search import starts_with
from nhm_platform.protoconv import as_utc
from nhm_platform.statements import Compiled, dialect_of, in_set, set_filters, set_type, set_value
from nhm_registry import models as m
from nhm_registry.commands import NumberFilter
from nhm_registry.domain import (
    ApiKey,
    ApiKeyRole,
    Assignment,
    Attestation,
    BusinessProfile,
    CallingPolicy,
    Campaign,
    FallbackBehavior,
    LifecycleState,
    LocalPresenceTier,
    Number,
    NumberOrder,
    Registration,
    RegistrationProgram,
    RegistrationStatus,
    Tenant,
    TimeOfDay,
    Transition,
    WarmupPlan,
)

# Row locks a writer takes on what it reads (PostgreSQL; SQLite has one writer at a time): "share" keeps a
# row from changing until the transaction ends, "update" also from being locked by another writer.
Lock = Literal["share", "update"] | None
_SNAPSHOT_BATCH = 1000
_ORDER_COLUMNS = {
    NumberOrder.CREATE_TIME: m.numbers.c.create_time,
    NumberOrder.UPDATE_TIME: m.numbers.c.update_time,
    NumberOrder.STATE: m.numbers.c.state,
    NumberOrder.AREA_CODE: m.numbers.c.area_code,
}
_TIME_ORDERS = {NumberOrder.CREATE_TIME, NumberOrder.UPDATE_TIME}


def _locked(query: Any, lock: Lock) -> Any:
    return query if lock is None else query.with_for_update(read=lock == "share")


@functools.cache
def _among(table: Any, dialect: str, lock: Lock) -> Compiled:
    """A table's rows of one tenant's numbers among a set (one parameter, kit statements.in_set), compiled once per
    database: the numbers themselves in number order (the order their locks are taken in), their labels and
    campaigns without one (an ORDER BY would tempt the planner into the (tenant, key) index over the primary key)."""
    t = table.c
    query = select(table).where(t.tenant_id == bindparam("p_tenant"),
                                in_set(dialect, t.phone_number, bindparam("p_phones", type_=set_type(dialect))))
    if table is m.numbers:
        query = query.order_by(t.phone_number)
    return Compiled(_locked(query, lock))


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _time(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def _from_iso(value: str | None) -> datetime | None:
    return None if value is None else as_utc(datetime.fromisoformat(value))


# --- rows <-> domain values ---------------------------------------------------------------------------------

def _tenant(row: Row[Any]) -> Tenant:
    profile = BusinessProfile(row.legal_name, row.address, row.website, row.call_purpose,
                              int(row.expected_monthly_volume), row.contact_email, row.contact_phone)
    return Tenant(row.id, row.display_name, profile, as_utc(row.create_time), as_utc(row.update_time), row.etag)


def _tenant_values(tenant: Tenant) -> dict[str, Any]:
    p = tenant.business_profile
    return {"id": tenant.id, "display_name": tenant.display_name, "legal_name": p.legal_name,
            "address": p.address, "website": p.website, "call_purpose": p.call_purpose,
            "expected_monthly_volume": p.expected_monthly_volume, "contact_email": p.contact_email,
            "contact_phone": p.contact_phone, "create_time": tenant.create_time,
            "update_time": tenant.update_time, "etag": tenant.etag}


def _api_key(row: Row[Any]) -> ApiKey:
    return ApiKey(row.id, row.tenant_id, row.name, ApiKeyRole(row.role), row.prefix, row.secret_sha256,
                  as_utc(row.create_time), _time(row.revoke_time))


def _registrations_json(registrations: Iterable[Registration]) -> str:
    return json.dumps([{"program": r.program.value, "status": r.status.value, "status_time": _iso(r.status_time),
                        "reference": r.reference} for r in registrations], separators=(",", ":"))


def _registrations(text: str) -> tuple[Registration, ...]:
    if text == "[]":
        return ()
    return tuple(Registration(RegistrationProgram(r["program"]), RegistrationStatus(r["status"]),
                              _from_iso(r["status_time"]), r["reference"]) for r in json.loads(text))


def _number_values(n: Number) -> dict[str, Any]:
    plan = n.warmup_plan
    return {
        "tenant_id": n.tenant_id, "phone_number": n.phone_number, "country": n.country, "area_code": n.area_code,
        "exchange": n.exchange, "region": n.region, "time_zone": n.time_zone, "display_name": n.display_name,
        "provider": n.provider, "attestation": n.attestation.value,
        "registrations": _registrations_json(n.registrations), "inbound_enabled": n.inbound_enabled,
        "inbound_required_until": n.inbound_required_until, "state": n.state.value, "state_time": n.state_time,
        "rest_until": n.rest_until,
        "warmup_daily_caps": ",".join(str(c) for c in plan.daily_caps) if plan else None,
        "warmup_step_seconds": int(plan.step.total_seconds()) if plan else None,
        "warmup_start_time": n.warmup_start_time, "create_time": n.create_time, "update_time": n.update_time,
        "etag": n.etag,
    }


def _number(row: Any, labels: dict[str, str], campaign_ids: list[str]) -> Number:
    plan = None
    if row.warmup_daily_caps is not None:
        plan = WarmupPlan(tuple(int(c) for c in row.warmup_daily_caps.split(",") if c),
                          timedelta(seconds=int(row.warmup_step_seconds or 0)))
    return Number(
        phone_number=row.phone_number, tenant_id=row.tenant_id, country=row.country, area_code=row.area_code,
        exchange=row.exchange, region=row.region, time_zone=row.time_zone, display_name=row.display_name,
        provider=row.provider, attestation=Attestation(row.attestation),
        registrations=_registrations(row.registrations), inbound_enabled=bool(row.inbound_enabled),
        inbound_required_until=_time(row.inbound_required_until), labels=labels,
        state=LifecycleState(row.state), state_time=as_utc(row.state_time), rest_until=_time(row.rest_until),
        warmup_plan=plan, warmup_start_time=_time(row.warmup_start_time), campaign_ids=campaign_ids,
        create_time=as_utc(row.create_time), update_time=as_utc(row.update_time), etag=row.etag,
    )


def _policy_json(p: CallingPolicy) -> str:
    return json.dumps({
        "daily_cap_per_number": p.daily_cap_per_number, "hourly_cap_per_number": p.hourly_cap_per_number,
        "local_presence": [t.value for t in p.local_presence], "allow_at_risk": p.allow_at_risk,
        "sticky_caller_id": p.sticky_caller_id, "sticky_ttl_seconds": p.sticky_ttl.total_seconds(),
        "calling_window_start": [p.calling_window_start.hours, p.calling_window_start.minutes],
        "calling_window_end": [p.calling_window_end.hours, p.calling_window_end.minutes],
        "max_calls_per_prospect_per_day": p.max_calls_per_prospect_per_day,
        "max_calls_per_prospect_per_week": p.max_calls_per_prospect_per_week,
        "cap_reset_time_zone": p.cap_reset_time_zone, "fallback_behavior": p.fallback_behavior.value,
        "fallback_phone_number": p.fallback_phone_number,
    }, separators=(",", ":"))


def _policy(text: str) -> CallingPolicy:
    d = json.loads(text)
    return CallingPolicy(
        daily_cap_per_number=d["daily_cap_per_number"], hourly_cap_per_number=d["hourly_cap_per_number"],
        local_presence=tuple(LocalPresenceTier(t) for t in d["local_presence"]), allow_at_risk=d["allow_at_risk"],
        sticky_caller_id=d["sticky_caller_id"], sticky_ttl=timedelta(seconds=d["sticky_ttl_seconds"]),
        calling_window_start=TimeOfDay(*d["calling_window_start"]),
        calling_window_end=TimeOfDay(*d["calling_window_end"]),
        max_calls_per_prospect_per_day=d["max_calls_per_prospect_per_day"],
        max_calls_per_prospect_per_week=d["max_calls_per_prospect_per_week"],
        cap_reset_time_zone=d["cap_reset_time_zone"], fallback_behavior=FallbackBehavior(d["fallback_behavior"]),
        fallback_phone_number=d["fallback_phone_number"],
    )


def _campaign(row: Row[Any], number_count: int) -> Campaign:
    return Campaign(row.id, row.tenant_id, row.name, row.description, _policy(row.policy), number_count,
                    as_utc(row.create_time), as_utc(row.update_time), row.etag)


def _campaign_values(c: Campaign) -> dict[str, Any]:
    return {"id": c.id, "tenant_id": c.tenant_id, "name": c.name, "description": c.description,
            "policy": _policy_json(c.policy), "create_time": c.create_time, "update_time": c.update_time,
            "etag": c.etag}


def _transition(row: Row[Any]) -> Transition:
    return Transition(row.tenant_id, row.phone_number, LifecycleState(row.from_state) if row.from_state else None,
                      LifecycleState(row.to_state), row.actor, row.reason, as_utc(row.transition_time))


# --- the repository -------------------------------------------------------------------------------------------

class Repository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _insert(self) -> Any:
        return postgresql.insert if self.session.get_bind().dialect.name == "postgresql" else sqlite.insert

    # Tenants

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        row = self.session.execute(select(m.tenants).where(m.tenants.c.id == tenant_id)).first()
        return _tenant(row) if row else None

    def add_tenant_if_missing(self, tenant: Tenant) -> bool:
        added = self.session.execute(
            self._insert()(m.tenants).values(**_tenant_values(tenant))
            .on_conflict_do_nothing(index_elements=["id"]).returning(m.tenants.c.id)).first()
        return added is not None

    def save_tenant(self, tenant: Tenant, expected_etag: str) -> bool:
        values = _tenant_values(tenant)
        del values["id"], values["create_time"]
        return self.session.execute(update(m.tenants).where(
            m.tenants.c.id == tenant.id, m.tenants.c.etag == expected_etag).values(**values)).rowcount == 1

    def tenants(self, tenant_id: str | None) -> Iterator[Tenant]:
        query = select(m.tenants).order_by(m.tenants.c.id)
        if tenant_id:
            query = query.where(m.tenants.c.id == tenant_id)
        for row in self.session.execute(query):
            yield _tenant(row)

    # API keys

    def add_api_key(self, key: ApiKey) -> None:
        self.session.execute(insert(m.api_keys).values(
            id=key.id, tenant_id=key.tenant_id, name=key.name, role=key.role.value, prefix=key.prefix,
            secret_sha256=key.secret_sha256, create_time=key.create_time, revoke_time=key.revoke_time))

    def get_api_key(self, tenant_id: str, key_id: str) -> ApiKey | None:
        row = self.session.execute(select(m.api_keys).where(
            m.api_keys.c.tenant_id == tenant_id, m.api_keys.c.id == key_id)).first()
        return _api_key(row) if row else None

    def revoke_api_key(self, key: ApiKey) -> None:
        self.session.execute(update(m.api_keys).where(m.api_keys.c.id == key.id, m.api_keys.c.revoke_time.is_(None))
                             .values(revoke_time=key.revoke_time))

    def list_api_keys(self, tenant_id: str, include_revoked: bool, after_id: str | None, limit: int) -> list[ApiKey]:
        query = select(m.api_keys).where(m.api_keys.c.tenant_id == tenant_id)
        if not include_revoked:
            query = query.where(m.api_keys.c.revoke_time.is_(None))
        if after_id is not None:
            query = query.where(m.api_keys.c.id > after_id)
        return [_api_key(r) for r in self.session.execute(query.order_by(m.api_keys.c.id).limit(limit))]

    def active_api_key(self, secret_sha256: str) -> ApiKey | None:
        row = self.session.execute(select(m.api_keys).where(
            m.api_keys.c.secret_sha256 == secret_sha256, m.api_keys.c.revoke_time.is_(None))).first()
        return _api_key(row) if row else None

    def api_keys(self, tenant_id: str | None) -> Iterator[ApiKey]:
        query = select(m.api_keys).order_by(m.api_keys.c.id)
        if tenant_id:
            query = query.where(m.api_keys.c.tenant_id == tenant_id)
        for row in self.session.execute(query):
            yield _api_key(row)

    # Numbers

    def existing_numbers(self, tenant_id: str, phone_numbers: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for among in set_filters(self.session, m.numbers.c.phone_number, phone_numbers):
            found.update(self.session.execute(select(m.numbers.c.phone_number).where(
                m.numbers.c.tenant_id == tenant_id, among)).scalars())
        return found

    def add_numbers(self, numbers: Sequence[Number]) -> None:
        if not numbers:
            return
        self.session.execute(insert(m.numbers), [_number_values(n) for n in numbers])
        labels = [{"tenant_id": n.tenant_id, "phone_number": n.phone_number, "key": k, "value": v}
                  for n in numbers for k, v in n.labels.items()]
        if labels:
            self.session.execute(insert(m.number_labels), labels)
        assignments = [{"tenant_id": n.tenant_id, "campaign_id": c, "phone_number": n.phone_number}
                       for n in numbers for c in n.campaign_ids]
        if assignments:
            self.session.execute(insert(m.campaign_numbers), assignments)

    def get_number(self, tenant_id: str, phone_number: str, *, lock: Lock = None) -> Number | None:
        found = self.get_numbers(tenant_id, [phone_number], lock=lock)
        return found.get(phone_number)

    def get_numbers(self, tenant_id: str, phone_numbers: Sequence[str], *, lock: Lock = None) -> dict[str, Number]:
        """The numbers found; with lock, their rows stay locked (PostgreSQL) until the transaction ends."""
        dialect = dialect_of(self.session)
        rows: list[Any] = []
        for chunk in _chunks(phone_numbers, statements.SET_LIMIT):
            rows.extend(_among(m.numbers, dialect, lock).rows(
                self.session, {"p_tenant": tenant_id, "p_phones": set_value(dialect, chunk)}))
        return {n.phone_number: n for n in self._hydrate(rows)}

    def _hydrate(self, rows: Sequence[Any]) -> list[Number]:
        """Numbers from their rows, with their labels and campaigns."""
        if not rows:
            return []
        dialect = dialect_of(self.session)
        labels: dict[tuple[str, str], dict[str, str]] = {}
        campaigns: dict[tuple[str, str], list[str]] = {}
        tenant_ids = {r.tenant_id for r in rows}
        for tenant_id in tenant_ids:
            phones = [r.phone_number for r in rows if r.tenant_id == tenant_id]
            for chunk in _chunks(phones, statements.SET_LIMIT):
                among = {"p_tenant": tenant_id, "p_phones": set_value(dialect, chunk)}
                for label in _among(m.number_labels, dialect, None).rows(self.session, among):
                    labels.setdefault((tenant_id, label.phone_number), {})[label.key] = label.value
                for member in _among(m.campaign_numbers, dialect, None).rows(self.session, among):
                    campaigns.setdefault((tenant_id, member.phone_number), []).append(member.campaign_id)
        return [_number(r, dict(sorted(labels.get((r.tenant_id, r.phone_number), {}).items())),
                        sorted(campaigns.get((r.tenant_id, r.phone_number), []))) for r in rows]

    def save_number(self, number: Number, expected_etag: str, *, labels_changed: bool = False) -> bool:
        """Write the number if its stored etag is still expected_etag; False if someone changed it meanwhile."""
        values = _number_values(number)
        for key in ("tenant_id", "phone_number", "create_time"):
            del values[key]
        saved = self.session.execute(update(m.numbers).where(
            m.numbers.c.tenant_id == number.tenant_id, m.numbers.c.phone_number == number.phone_number,
            m.numbers.c.etag == expected_etag).values(**values)).rowcount == 1
        if saved and labels_changed:
            self.session.execute(delete(m.number_labels).where(
                m.number_labels.c.tenant_id == number.tenant_id,
                m.number_labels.c.phone_number == number.phone_number))
            if number.labels:
                self.session.execute(insert(m.number_labels), [
                    {"tenant_id": number.tenant_id, "phone_number": number.phone_number, "key": k, "value": v}
                    for k, v in number.labels.items()])
        return saved

    def list_numbers(self, tenant_id: str, flt: NumberFilter, order: NumberOrder, descending: bool,
                     after: list[Any] | None, limit: int) -> list[Number]:
        n = m.numbers
        query = select(n).where(n.c.tenant_id == tenant_id)
        if flt.states:
            query = query.where(n.c.state.in_(flt.states))
        if flt.area_code:
            query = query.where(n.c.area_code == flt.area_code)
        if flt.region:
            query = query.where(n.c.region == flt.region)
        if flt.attestations:
            query = query.where(n.c.attestation.in_(flt.attestations))
        if flt.phone_number_prefix:
            query = query.where(*starts_with(n.c.phone_number, flt.phone_number_prefix))
        if flt.campaign_id:
            cn = m.campaign_numbers
            query = query.where(exists().where(cn.c.tenant_id == n.c.tenant_id, cn.c.campaign_id == flt.campaign_id,
                                               cn.c.phone_number == n.c.phone_number))
        for key, value in sorted(flt.labels.items()):
            lb = m.number_labels.alias()
            query = query.where(exists().where(lb.c.tenant_id == n.c.tenant_id, lb.c.phone_number == n.c.phone_number,
                                               lb.c.key == key, lb.c.value == value))
        column = _ORDER_COLUMNS.get(order)
        keys = [column, n.c.phone_number] if column is not None else [n.c.phone_number]
        if after is not None:
            bound = [literal(v, type_=k.type) for k, v in zip(keys, _decode_key(order, after), strict=True)]
            row_key, row_bound = (tuple_(*keys), tuple_(*bound)) if len(keys) > 1 else (keys[0], bound[0])
            query = query.where(row_key < row_bound if descending else row_key > row_bound)
        query = query.order_by(*[k.desc() if descending else k.asc() for k in keys]).limit(limit)
        return self._hydrate(list(self.session.execute(query)))

    def numbers(self, tenant_id: str | None) -> Iterator[Number]:
        """Every number (of one tenant, or of all), in batches."""
        n = m.numbers
        after: tuple[str, str] | None = None
        while True:
            query = select(n).order_by(n.c.tenant_id, n.c.phone_number).limit(_SNAPSHOT_BATCH)
            if tenant_id:
                query = query.where(n.c.tenant_id == tenant_id)
            if after is not None:
                query = query.where(tuple_(n.c.tenant_id, n.c.phone_number) > tuple_(*after))
            rows = list(self.session.execute(query))
            if not rows:
                return
            yield from self._hydrate(rows)
            after = (rows[-1].tenant_id, rows[-1].phone_number)

    # Lifecycle history

    def add_transitions(self, transitions: Sequence[Transition]) -> None:
        if transitions:
            self.session.execute(insert(m.number_transitions), [
                {"tenant_id": t.tenant_id, "phone_number": t.phone_number,
                 "from_state": t.from_state.value if t.from_state else "", "to_state": t.to_state.value,
                 "actor": t.actor, "reason": t.reason, "transition_time": t.time} for t in transitions])

    def list_transitions(self, tenant_id: str, phone_number: str, before: list[Any] | None,
                         limit: int) -> list[tuple[Transition, list[Any]]]:
        """Newest first; each with its page key."""
        t = m.number_transitions
        query = select(t).where(t.c.tenant_id == tenant_id, t.c.phone_number == phone_number)
        if before is not None:
            when, row_id = _from_iso(before[0]), int(before[1])
            query = query.where(tuple_(t.c.transition_time, t.c.id)
                                < tuple_(literal(when, type_=t.c.transition_time.type), literal(row_id)))
        rows = self.session.execute(query.order_by(t.c.transition_time.desc(), t.c.id.desc()).limit(limit))
        return [(_transition(r), [_iso(as_utc(r.transition_time)), r.id]) for r in rows]

    # Campaigns

    def add_campaign(self, campaign: Campaign) -> None:
        self.session.execute(insert(m.campaigns).values(**_campaign_values(campaign)))

    def get_campaign(self, tenant_id: str, campaign_id: str, *, lock: Lock = None) -> Campaign | None:
        row = self.session.execute(_locked(select(m.campaigns).where(
            m.campaigns.c.tenant_id == tenant_id, m.campaigns.c.id == campaign_id), lock)).first()
        if row is None:
            return None
        return _campaign(row, self._counts(tenant_id, [campaign_id]).get(campaign_id, 0))

    def _counts(self, tenant_id: str, campaign_ids: Sequence[str]) -> dict[str, int]:
        cn = m.campaign_numbers
        rows = self.session.execute(select(cn.c.campaign_id, func.count()).where(
            cn.c.tenant_id == tenant_id, cn.c.campaign_id.in_(campaign_ids)).group_by(cn.c.campaign_id))
        return {r[0]: int(r[1]) for r in rows}

    def campaign_name_taken(self, tenant_id: str, name: str, other_than: str = "") -> bool:
        c = m.campaigns
        return self.session.execute(select(c.c.id).where(
            c.c.tenant_id == tenant_id, c.c.name == name, c.c.id != other_than)).first() is not None

    def existing_campaigns(self, tenant_id: str, campaign_ids: Sequence[str], *, lock: Lock = None) -> set[str]:
        found: set[str] = set()
        for among in set_filters(self.session, m.campaigns.c.id, campaign_ids):
            found.update(self.session.execute(_locked(select(m.campaigns.c.id).where(
                m.campaigns.c.tenant_id == tenant_id, among).order_by(m.campaigns.c.id), lock)).scalars())
        return found

    def save_campaign(self, campaign: Campaign, expected_etag: str) -> bool:
        values = _campaign_values(campaign)
        for key in ("id", "tenant_id", "create_time"):
            del values[key]
        return self.session.execute(update(m.campaigns).where(
            m.campaigns.c.tenant_id == campaign.tenant_id, m.campaigns.c.id == campaign.id,
            m.campaigns.c.etag == expected_etag).values(**values)).rowcount == 1

    def delete_campaign(self, campaign: Campaign, expected_etag: str) -> bool:
        """Delete the campaign (its assignments first) if its etag is still expected_etag."""
        c = m.campaigns
        locked = self.session.execute(update(c).where(c.c.tenant_id == campaign.tenant_id, c.c.id == campaign.id,
                                                      c.c.etag == expected_etag).values(etag=expected_etag)).rowcount
        if locked != 1:
            return False
        self.session.execute(delete(m.campaign_numbers).where(m.campaign_numbers.c.tenant_id == campaign.tenant_id,
                                                              m.campaign_numbers.c.campaign_id == campaign.id))
        self.session.execute(delete(c).where(c.c.tenant_id == campaign.tenant_id, c.c.id == campaign.id))
        return True

    def list_campaigns(self, tenant_id: str, after_id: str | None, limit: int) -> list[Campaign]:
        c = m.campaigns
        query = select(c).where(c.c.tenant_id == tenant_id)
        if after_id is not None:
            query = query.where(c.c.id > after_id)
        rows = list(self.session.execute(query.order_by(c.c.id).limit(limit)))
        counts = self._counts(tenant_id, [r.id for r in rows]) if rows else {}
        return [_campaign(r, counts.get(r.id, 0)) for r in rows]

    def campaigns(self, tenant_id: str | None) -> Iterator[Campaign]:
        query = select(m.campaigns).order_by(m.campaigns.c.id)
        if tenant_id:
            query = query.where(m.campaigns.c.tenant_id == tenant_id)
        rows = list(self.session.execute(query))
        cn = m.campaign_numbers
        counts = dict(self.session.execute(select(cn.c.campaign_id, func.count()).group_by(cn.c.campaign_id)).all())
        for row in rows:
            yield _campaign(row, int(counts.get(row.id, 0)))

    # Assignments

    def campaign_members(self, tenant_id: str, campaign_id: str, phone_numbers: Sequence[str] | None = None
                         ) -> set[str]:
        cn = m.campaign_numbers
        query = select(cn.c.phone_number).where(cn.c.tenant_id == tenant_id, cn.c.campaign_id == campaign_id)
        if phone_numbers is None:
            return set(self.session.execute(query).scalars())
        found: set[str] = set()
        for among in set_filters(self.session, cn.c.phone_number, phone_numbers):
            found.update(self.session.execute(query.where(among)).scalars())
        return found

    def assign(self, tenant_id: str, campaign_id: str, phone_numbers: Sequence[str]) -> None:
        if phone_numbers:
            self.session.execute(insert(m.campaign_numbers), [
                {"tenant_id": tenant_id, "campaign_id": campaign_id, "phone_number": p} for p in phone_numbers])

    def unassign(self, tenant_id: str, campaign_id: str, phone_numbers: Sequence[str]) -> None:
        cn = m.campaign_numbers
        for among in set_filters(self.session, cn.c.phone_number, phone_numbers):
            self.session.execute(delete(cn).where(cn.c.tenant_id == tenant_id, cn.c.campaign_id == campaign_id,
                                                  among))

    def unassign_everywhere(self, tenant_id: str, phone_number: str) -> list[str]:
        """Take a number out of every campaign; returns the campaigns it left."""
        cn = m.campaign_numbers
        left = list(self.session.execute(select(cn.c.campaign_id).where(
            cn.c.tenant_id == tenant_id, cn.c.phone_number == phone_number).order_by(cn.c.campaign_id)).scalars())
        self.session.execute(delete(cn).where(cn.c.tenant_id == tenant_id, cn.c.phone_number == phone_number))
        return left

    def assignments(self, tenant_id: str | None) -> Iterator[Assignment]:
        cn = m.campaign_numbers
        query = select(cn).order_by(cn.c.tenant_id, cn.c.campaign_id, cn.c.phone_number)
        if tenant_id:
            query = query.where(cn.c.tenant_id == tenant_id)
        for row in self.session.execute(query):
            yield Assignment(row.tenant_id, row.campaign_id, row.phone_number)

    # Housekeeping

    def refresh_statistics(self) -> None:
        """Let the query planner see how big the number tables are now (after a bulk import), whether or not
        the database runs autovacuum: without statistics PostgreSQL sorted whole tenants to list a page."""
        refresh_statistics(self.session, ("numbers", "number_labels", "number_transitions", "campaign_numbers"))

    def prune_request_ids(self, older_than: datetime) -> int:
        table = m.idempotency.table
        return int(self.session.execute(delete(table).where(table.c.create_time < older_than)).rowcount or 0)


def encode_number_key(order: NumberOrder, number: Number) -> list[Any]:
    """The page key of a number in a list ordered by order."""
    if order is NumberOrder.PHONE_NUMBER:
        return [number.phone_number]
    value = {NumberOrder.CREATE_TIME: number.create_time, NumberOrder.UPDATE_TIME: number.update_time,
             NumberOrder.STATE: number.state.value, NumberOrder.AREA_CODE: number.area_code}[order]
    return [_iso(value) if isinstance(value, datetime) else value, number.phone_number]


def _decode_key(order: NumberOrder, key: list[Any]) -> list[Any]:
    expected = 1 if order is NumberOrder.PHONE_NUMBER else 2
    if len(key) != expected or not all(isinstance(v, str) for v in key):
        raise ValueError("page key does not match the order")
    if order in _TIME_ORDERS:
        return [_from_iso(key[0]), key[1]]
    return list(key)

