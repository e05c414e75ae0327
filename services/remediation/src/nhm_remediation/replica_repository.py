"""What this service keeps of its upstreams: the registry's numbers, campaigns, assignments and tenants, and
scoring's health per number. Every write is an upsert keyed by the resource's natural key, so applying a change
twice changes nothing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from sqlalchemy import and_, case, delete, exists, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from nhm_platform.protoconv import as_utc
from nhm_platform.replica import upsert
from nhm_remediation.domain import (
    OUT_OF_POOL_STATES,
    BusinessProfile,
    CaseKind,
    CaseStage,
    CaseState,
    HealthStatus,
    HealthView,
    LifecycleState,
    NumberView,
    SourceLabel,
)
from nhm_remediation.models import assignments, campaigns, cases, health, numbers, tenants
from nhm_remediation.pool_guard import CampaignPool


class ReplicaRepository:
    # --- Registry ---

    def upsert_number(self, session: Session, number: NumberView) -> None:
        upsert(session, numbers, {
            "tenant_id": number.tenant_id, "phone_number": number.phone_number, "state": number.state.value,
            "attestation": number.attestation, "provider": number.provider, "display_name": number.display_name,
            "registrations": json.dumps({k: list(v) for k, v in number.registrations.items()}, sort_keys=True),
        }, ["tenant_id", "phone_number"])

    def delete_number(self, session: Session, tenant_id: str, phone_number: str) -> None:
        session.execute(delete(numbers).where(numbers.c.tenant_id == tenant_id,
                                              numbers.c.phone_number == phone_number))

    def number(self, session: Session, tenant_id: str, phone_number: str) -> NumberView | None:
        row = session.execute(select(numbers).where(numbers.c.tenant_id == tenant_id,
                                                    numbers.c.phone_number == phone_number)).first()
        if row is None:
            return None
        campaign_ids = session.execute(
            select(assignments.c.campaign_id).where(assignments.c.tenant_id == tenant_id,
                                                    assignments.c.phone_number == phone_number)
            .order_by(assignments.c.campaign_id)).scalars()
        registrations = {k: (v[0], v[1]) for k, v in json.loads(row.registrations).items()}
        return NumberView(tenant_id=row.tenant_id, phone_number=row.phone_number, state=LifecycleState(row.state),
                          attestation=row.attestation, provider=row.provider, display_name=row.display_name,
                          registrations=registrations, campaign_ids=tuple(campaign_ids))

    def campaign_ids(self, session: Session, tenant_id: str, phone_number: str) -> list[str]:
        return list(session.execute(
            select(assignments.c.campaign_id).where(assignments.c.tenant_id == tenant_id,
                                                    assignments.c.phone_number == phone_number)
            .order_by(assignments.c.campaign_id)).scalars())

    def upsert_tenant(self, session: Session, tenant_id: str, display_name: str, profile: BusinessProfile) -> None:
        upsert(session, tenants, {"tenant_id": tenant_id, "display_name": display_name,
                                  "profile": json.dumps(dataclasses.asdict(profile), sort_keys=True)}, ["tenant_id"])

    def delete_tenant(self, session: Session, tenant_id: str) -> None:
        session.execute(delete(tenants).where(tenants.c.tenant_id == tenant_id))

    def profile(self, session: Session, tenant_id: str) -> BusinessProfile | None:
        raw = session.execute(select(tenants.c.profile).where(tenants.c.tenant_id == tenant_id)).scalar()
        return None if raw is None else BusinessProfile(**json.loads(raw))

    def existing_campaigns(self, session: Session, tenant_id: str, campaign_ids: Sequence[str]) -> set[str]:
        """Which of the ids are the tenant's campaigns (as far as the registry's feed has reached)."""
        if not campaign_ids:
            return set()
        return set(session.execute(select(campaigns.c.campaign_id).where(
            campaigns.c.tenant_id == tenant_id, campaigns.c.campaign_id.in_(list(campaign_ids)))).scalars())

    def upsert_campaign(self, session: Session, tenant_id: str, campaign_id: str, name: str) -> None:
        upsert(session, campaigns, {"tenant_id": tenant_id, "campaign_id": campaign_id, "name": name},
               ["tenant_id", "campaign_id"])

    def delete_campaign(self, session: Session, tenant_id: str, campaign_id: str) -> None:
        session.execute(delete(assignments).where(assignments.c.tenant_id == tenant_id,
                                                  assignments.c.campaign_id == campaign_id))
        session.execute(delete(campaigns).where(campaigns.c.tenant_id == tenant_id,
                                                campaigns.c.campaign_id == campaign_id))

    def assign(self, session: Session, tenant_id: str, campaign_id: str, phone_number: str) -> None:
        upsert(session, assignments, {"tenant_id": tenant_id, "campaign_id": campaign_id,
                                      "phone_number": phone_number}, ["tenant_id", "campaign_id", "phone_number"])

    def unassign(self, session: Session, tenant_id: str, campaign_id: str, phone_number: str) -> None:
        session.execute(delete(assignments).where(assignments.c.tenant_id == tenant_id,
                                                  assignments.c.campaign_id == campaign_id,
                                                  assignments.c.phone_number == phone_number))

    def reset_registry(self, session: Session) -> None:
        for table in (assignments, campaigns, numbers, tenants):
            session.execute(delete(table))

    # --- Scoring ---

    def health(self, session: Session, tenant_id: str, phone_number: str, *,
               for_update: bool = False) -> tuple[HealthView | None, int]:
        """The number's health and the feed revision it came from (0 when unknown)."""
        query = select(health).where(health.c.tenant_id == tenant_id, health.c.phone_number == phone_number)
        if for_update:
            query = query.with_for_update()
        row = session.execute(query).first()
        if row is None or row.revision < 0:
            return None, 0
        labels = tuple(SourceLabel(**item) for item in json.loads(row.labels))
        view = HealthView(status=HealthStatus(row.status), labels=labels,
                          status_time=None if row.status_time is None else as_utc(row.status_time),
                          summary=row.summary)
        return view, int(row.revision)

    def lock_health(self, session: Session, tenant_id: str, phone_number: str) -> tuple[HealthView | None, int]:
        """The number's health row, locked for this transaction (created empty if missing, so that replicas
        applying the same change one after the other see each other's work instead of both inserting)."""
        view, revision = self.health(session, tenant_id, phone_number, for_update=True)
        if view is not None:
            return view, revision
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        created = session.execute(insert(health).values(
            tenant_id=tenant_id, phone_number=phone_number, status=HealthStatus.HEALTHY.value, labels="[]",
            status_time=None, summary="", revision=-1).on_conflict_do_nothing(
            index_elements=["tenant_id", "phone_number"]).returning(health.c.revision)).first()
        if created is not None:
            return None, 0
        return self.health(session, tenant_id, phone_number, for_update=True)

    def upsert_health(self, session: Session, tenant_id: str, phone_number: str, view: HealthView,
                      revision: int) -> None:
        upsert(session, health, {
            "tenant_id": tenant_id, "phone_number": phone_number, "status": view.status.value,
            "labels": json.dumps([dataclasses.asdict(label) for label in view.labels]),
            "status_time": view.status_time, "summary": view.summary, "revision": revision,
        }, ["tenant_id", "phone_number"])

    def reset_health(self, session: Session) -> None:
        session.execute(delete(health))

    # --- The pool guard's view ---

    def pools(self, session: Session, tenant_id: str, phone_number: str) -> list[CampaignPool]:
        """For each campaign of the number: its numbers (retired ones excluded) and how many of the others are
        out of rotation now: resting or quarantined in the registry, or about to be (an open remediation case
        in quarantine or rest)."""
        mine = select(assignments.c.campaign_id).where(assignments.c.tenant_id == tenant_id,
                                                       assignments.c.phone_number == phone_number)
        being_rested = exists().where(
            cases.c.tenant_id == assignments.c.tenant_id, cases.c.open_phone_number == assignments.c.phone_number,
            cases.c.state == CaseState.OPEN.value, cases.c.kind == CaseKind.REMEDIATION.value,
            cases.c.stage.in_([CaseStage.QUARANTINE.value, CaseStage.RESTING.value]))
        is_out = and_(assignments.c.phone_number != phone_number,
                      or_(numbers.c.state.in_([s.value for s in OUT_OF_POOL_STATES]), being_rested))
        retired = numbers.c.state == LifecycleState.RETIRED.value
        query = (
            select(assignments.c.campaign_id,
                   func.sum(case((retired, 0), else_=1)).label("total"),
                   func.sum(case((and_(~func.coalesce(retired, False), is_out), 1), else_=0)).label("out"))
            .select_from(assignments.outerjoin(numbers, and_(numbers.c.tenant_id == assignments.c.tenant_id,
                                                            numbers.c.phone_number == assignments.c.phone_number)))
            .where(assignments.c.tenant_id == tenant_id, assignments.c.campaign_id.in_(mine))
            .group_by(assignments.c.campaign_id).order_by(assignments.c.campaign_id))
        return [CampaignPool(r.campaign_id, int(r.total or 0), int(r.out or 0)) for r in session.execute(query)]
