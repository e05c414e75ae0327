"""The eligibility replica: registry and scoring changes applied to allocation's own tables.

Every change is an idempotent upsert or delete keyed by the resource's natural key, so replaying a change
(after a reconnect, or from a second replica of this service) leaves the same state. Applying a change also
re-derives the pool members it affects (their gate and place keys). Usage, the ledger and sticky caller IDs
are allocation's own and survive a resync.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from nhm.registry.v1 import registry_pb2
from nhm.scoring.v1 import scoring_pb2
from nhm.type.v1 import types_pb2
from nhm_allocation.eligibility import Place, gate
from nhm_allocation.enums import Carrier, Gate, Health, State
from nhm_allocation.feed_conversion import health_from_proto, number_values, policy_from_bytes
from nhm_allocation.health_view import from_columns
from nhm_allocation.models import (
    campaigns,
    cursors,
    number_health,
    number_usage,
    numbers,
    pool_members,
)
from nhm_platform.clock import Clock
from nhm_platform.db import refresh_statistics
from nhm_platform.replica import ApiKeyReplica, upsert

_DELETED = types_pb2.CHANGE_KIND_DELETED
_PENDING_NUMBERS = "nhm_allocation_refresh_numbers"
_PENDING_CAMPAIGNS = "nhm_allocation_refresh_campaigns"
_PENDING_ALL = "nhm_allocation_refresh_all"
# Pool members (re)derived since the last ANALYZE beyond which statistics are refreshed.
ANALYZE_AFTER_ROWS = 2_000
_DERIVED = ("gate", "country", "area_key", "region_key", "day_start", "day_used", "last_ms")


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


class EligibilityReplica:
    """apply_registry/apply_scoring apply one change each; after_batch re-derives the pool members the batch
    touched, once per batch (follow_feed calls it in the batch's transaction)."""

    def __init__(self, clock: Clock, keys: ApiKeyReplica) -> None:
        self._clock = clock
        self._keys = keys
        self._changed_since_analyze = 0

    def _already_applied(self, session: Session, upstream: str, revision: int) -> bool:
        """Whether another replica of this service already applied this change (they share the database).

        The first change of a batch locks the upstream's cursor row, so replicas apply batches one at a time,
        and a replica that is behind skips what another applied instead of moving rows back to older states.
        Snapshot items (revision 0) always apply.
        """
        key = f"nhm_allocation_applied_{upstream}"
        if key not in session.info:
            session.info[key] = int(session.execute(
                select(cursors.table.c.revision).where(cursors.table.c.upstream == upstream).with_for_update()
            ).scalar() or 0)
        return 0 < revision <= session.info[key]

    def _touch_number(self, session: Session, tenant_id: str, phone: str) -> None:
        session.info.setdefault(_PENDING_NUMBERS, set()).add((tenant_id, phone))

    def _touch_campaign(self, session: Session, tenant_id: str, campaign_id: str) -> None:
        session.info.setdefault(_PENDING_CAMPAIGNS, set()).add((tenant_id, campaign_id))

    def after_batch(self, session: Session) -> None:
        changed = 0
        if session.info.pop(_PENDING_ALL, False):
            session.info.pop(_PENDING_NUMBERS, None)
            session.info.pop(_PENDING_CAMPAIGNS, None)
            changed += self.refresh(session, None)
        for tenant_id, campaign_id in sorted(session.info.pop(_PENDING_CAMPAIGNS, set())):
            changed += self.refresh(session, and_(pool_members.c.tenant_id == tenant_id,
                                                  pool_members.c.campaign_id == campaign_id))
        by_tenant: dict[str, list[str]] = {}
        for tenant_id, phone in sorted(session.info.pop(_PENDING_NUMBERS, set())):
            by_tenant.setdefault(tenant_id, []).append(phone)
        for tenant_id, phones in by_tenant.items():
            for start in range(0, len(phones), 500):
                changed += self.refresh(session, and_(pool_members.c.tenant_id == tenant_id,
                                                      pool_members.c.phone_number.in_(phones[start:start + 500])))
        self._analyze_when_grown(session, changed)

    def _analyze_when_grown(self, session: Session, changed: int) -> None:
        """After a snapshot or a bulk import, refresh PostgreSQL's statistics at once: without them the planner
        may walk the wrong pool index (filtering 100,000 rows instead of reading 16) until autovacuum runs."""
        self._changed_since_analyze += changed
        if self._changed_since_analyze < ANALYZE_AFTER_ROWS:
            return
        self._changed_since_analyze = 0
        if session.get_bind().dialect.name == "postgresql":
            refresh_statistics(session, ("pool_members", "numbers", "number_usage"))

    # --- registry -------------------------------------------------------------------------------------------

    def apply_registry(self, session: Session, change: registry_pb2.WatchChangesResponse) -> None:
        if self._already_applied(session, "registry", change.revision):
            return
        which = change.WhichOneof("resource")
        deleted = change.kind == _DELETED
        if which == "number":
            tenant_id = change.tenant_id or change.number.tenant_id
            if deleted:
                self._delete_number(session, tenant_id, change.number.phone_number)
            else:
                self._put_number(session, tenant_id, change.number)
        elif which == "campaign":
            tenant_id = change.tenant_id or change.campaign.tenant_id
            if deleted:
                self._delete_campaign(session, tenant_id, change.campaign.id)
            else:
                self._put_campaign(session, tenant_id, change.campaign)
        elif which == "assignment":
            a = change.assignment
            tenant_id = change.tenant_id or a.tenant_id
            if deleted:
                self._unassign(session, tenant_id, a.campaign_id, [a.phone_number])
            else:
                self._assign(session, tenant_id, a.campaign_id, [a.phone_number])
        elif which == "api_key":
            self._keys.apply(session, change.api_key)

    def reset_registry(self, session: Session) -> None:
        """Forget everything the registry owns (a snapshot follows)."""
        session.execute(delete(pool_members))
        session.execute(delete(campaigns))
        session.execute(delete(numbers))
        self._keys.clear(session)

    def _put_number(self, session: Session, tenant_id: str, number: registry_pb2.Number) -> None:
        """Membership comes from Assignment changes only (the registry publishes one for every assign and
        unassign, and lists them in snapshots); a Number's campaign_ids may be read before a concurrent
        assignment commits, so it is not trusted for membership."""
        phone = number.phone_number
        upsert(session, numbers, number_values(number, tenant_id, self._clock.now()), ["tenant_id", "phone_number"])
        self._ensure_usage(session, tenant_id, [phone])
        self._touch_number(session, tenant_id, phone)

    def _delete_number(self, session: Session, tenant_id: str, phone: str) -> None:
        session.execute(delete(pool_members).where(pool_members.c.tenant_id == tenant_id,
                                                   pool_members.c.phone_number == phone))
        session.execute(delete(numbers).where(numbers.c.tenant_id == tenant_id, numbers.c.phone_number == phone))

    def _put_campaign(self, session: Session, tenant_id: str, campaign: registry_pb2.Campaign) -> None:
        raw = campaign.policy.SerializeToString(deterministic=True)
        before = session.execute(select(campaigns.c.policy).where(
            campaigns.c.tenant_id == tenant_id, campaigns.c.campaign_id == campaign.id)).scalar()
        upsert(session, campaigns, {"tenant_id": tenant_id, "campaign_id": campaign.id, "name": campaign.name[:200],
                                    "policy": raw, "update_time": self._clock.now()}, ["tenant_id", "campaign_id"])
        # Only allow_at_risk feeds a member's gate; refresh the pool when it (or the campaign) is new.
        if before is None or policy_from_bytes(bytes(before)).allow_at_risk != policy_from_bytes(raw).allow_at_risk:
            self._touch_campaign(session, tenant_id, campaign.id)

    def _delete_campaign(self, session: Session, tenant_id: str, campaign_id: str) -> None:
        session.execute(delete(pool_members).where(pool_members.c.tenant_id == tenant_id,
                                                   pool_members.c.campaign_id == campaign_id))
        session.execute(delete(campaigns).where(campaigns.c.tenant_id == tenant_id,
                                                campaigns.c.campaign_id == campaign_id))

    def _assign(self, session: Session, tenant_id: str, campaign_id: str, phones: Iterable[str]) -> None:
        phones = list(phones)
        self._ensure_usage(session, tenant_id, phones)
        insert = _insert(session)
        for phone in phones:
            session.execute(insert(pool_members).values(
                tenant_id=tenant_id, campaign_id=campaign_id, phone_number=phone, gate=int(Gate.CLOSED),
                country="", area_key="", region_key="", day_start=0, day_used=0, last_ms=0,
            ).on_conflict_do_nothing(index_elements=["tenant_id", "campaign_id", "phone_number"]))
            self._touch_number(session, tenant_id, phone)

    def _unassign(self, session: Session, tenant_id: str, campaign_id: str, phones: list[str]) -> None:
        session.execute(delete(pool_members).where(
            pool_members.c.tenant_id == tenant_id, pool_members.c.campaign_id == campaign_id,
            pool_members.c.phone_number.in_(phones)))

    def _ensure_usage(self, session: Session, tenant_id: str, phones: list[str]) -> None:
        insert = _insert(session)
        for phone in phones:
            session.execute(insert(number_usage).values(
                tenant_id=tenant_id, phone_number=phone, day_start=0, day_used=0, hour_start=0, hour_used=0,
                last_ms=0).on_conflict_do_nothing(index_elements=["tenant_id", "phone_number"]))

    # --- scoring --------------------------------------------------------------------------------------------

    def apply_scoring(self, session: Session, change: scoring_pb2.WatchHealthResponse) -> None:
        if not change.HasField("health") or self._already_applied(session, "scoring", change.revision):
            return
        health = change.health
        tenant_id, phone = health.tenant_id, health.phone_number
        if change.kind == _DELETED:
            session.execute(delete(number_health).where(number_health.c.tenant_id == tenant_id,
                                                        number_health.c.phone_number == phone))
        else:
            view = health_from_proto(health)
            upsert(session, number_health, {
                "tenant_id": tenant_id, "phone_number": phone, "status": int(view.status),
                "universal_status": int(view.universal),
                "tmobile_status": int(view.carriers.get(Carrier.TMOBILE, Health.UNKNOWN)),
                "att_status": int(view.carriers.get(Carrier.ATT, Health.UNKNOWN)),
                "verizon_status": int(view.carriers.get(Carrier.VERIZON, Health.UNKNOWN)),
                "other_status": int(view.carriers.get(Carrier.OTHER, Health.UNKNOWN)),
                "update_time": self._clock.now(),
            }, ["tenant_id", "phone_number"])
        self._touch_number(session, tenant_id, phone)

    def reset_scoring(self, session: Session) -> None:
        """Forget every health record (a snapshot follows); numbers without one count as Healthy meanwhile."""
        session.execute(delete(number_health))
        session.info[_PENDING_ALL] = True

    # --- derived pool columns -------------------------------------------------------------------------------

    def refresh(self, session: Session, where: ColumnElement[bool] | None) -> int:
        """Re-derive gate, place keys and rotation copies of the pool members matching `where`."""
        p, n, h, u, c = pool_members.c, numbers.c, number_health.c, number_usage.c, campaigns.c
        query = (
            select(p.tenant_id, p.campaign_id, p.phone_number, p.gate, p.country, p.area_key, p.region_key,
                   p.day_start.label("p_day_start"), p.day_used.label("p_day_used"), p.last_ms.label("p_last_ms"),
                   n.state, n.country.label("n_country"), n.area_code, n.exchange, n.region,
                   h.status, h.universal_status, h.tmobile_status, h.att_status, h.verizon_status, h.other_status,
                   u.day_start, u.day_used, u.last_ms, c.policy)
            .select_from(
                pool_members
                .outerjoin(numbers, and_(n.tenant_id == p.tenant_id, n.phone_number == p.phone_number))
                .outerjoin(number_health, and_(h.tenant_id == p.tenant_id, h.phone_number == p.phone_number))
                .outerjoin(number_usage, and_(u.tenant_id == p.tenant_id, u.phone_number == p.phone_number))
                .outerjoin(campaigns, and_(c.tenant_id == p.tenant_id, c.campaign_id == p.campaign_id)))
        )
        if where is not None:
            query = query.where(where)
        at_risk_allowed: dict[bytes, bool] = {}
        changed = []
        for row in session.execute(query):
            if row.state is None or row.policy is None:
                values = {"gate": int(Gate.CLOSED), "country": "", "area_key": "", "region_key": ""}
            else:
                raw = bytes(row.policy)
                if raw not in at_risk_allowed:
                    at_risk_allowed[raw] = policy_from_bytes(raw).allow_at_risk
                place = Place(row.n_country, row.area_code, row.exchange, row.region)
                state = State(row.state) if row.state in State._value2member_map_ else State.UNSPECIFIED
                view = from_columns(row.status, row.universal_status, row.tmobile_status, row.att_status,
                                    row.verizon_status, row.other_status)
                values = {"gate": int(gate(state, view, at_risk_allowed[raw])), "country": place.country,
                          "area_key": place.area_key, "region_key": place.region_key}
            values.update(day_start=row.day_start or 0, day_used=row.day_used or 0, last_ms=row.last_ms or 0)
            current = {"gate": row.gate, "country": row.country, "area_key": row.area_key,
                       "region_key": row.region_key, "day_start": row.p_day_start, "day_used": row.p_day_used,
                       "last_ms": row.p_last_ms}
            if values != current:
                changed.append(((row.tenant_id, row.campaign_id, row.phone_number), values))
        if changed:
            session.execute(
                update(pool_members).where(p.tenant_id == bindparam("k_tenant"),
                                           p.campaign_id == bindparam("k_campaign"),
                                           p.phone_number == bindparam("k_phone"))
                .values({name: bindparam(f"v_{name}") for name in _DERIVED}),
                [{"k_tenant": t, "k_campaign": c_, "k_phone": ph, **{f"v_{k}": v for k, v in values.items()}}
                 for (t, c_, ph), values in changed],
            )
        return len(changed)

