"""Repository of what scoring keeps of the registry: each tenant's numbers and their campaign assignments."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nhm_platform.replica import upsert
from nhm_platform.statements import set_filters
from nhm_scoring.factors import NumberTraits
from nhm_scoring.models import assignments, numbers


@dataclass(frozen=True)
class NumberFacts:
    phone_number: str
    area_code: str
    attestation: str
    inbound_enabled: bool
    state: str

    @property
    def traits(self) -> NumberTraits:
        return NumberTraits(self.attestation, self.inbound_enabled)


def known(session: Session, tenant_id: str, phones: Collection[str]) -> set[str]:
    """Which of phones are the tenant's numbers."""
    found: set[str] = set()
    for among in set_filters(session, numbers.c.phone_number, phones):
        found.update(session.execute(select(numbers.c.phone_number).where(
            numbers.c.tenant_id == tenant_id, among)).scalars())
    return found


def load(session: Session, tenant_id: str, phones: Collection[str]) -> dict[str, NumberFacts]:
    t = numbers.c
    found = {}
    for among in set_filters(session, t.phone_number, phones):
        for r in session.execute(select(t.phone_number, t.area_code, t.attestation, t.inbound_enabled, t.state)
                                 .where(t.tenant_id == tenant_id, among)):
            found[r.phone_number] = NumberFacts(r.phone_number, r.area_code, r.attestation, r.inbound_enabled,
                                                r.state)
    return found


def campaigns(session: Session, tenant_id: str, phones: Collection[str]) -> dict[str, list[str]]:
    t = assignments.c
    found: dict[str, list[str]] = defaultdict(list)
    for among in set_filters(session, t.phone_number, phones):
        for phone, campaign in session.execute(select(t.phone_number, t.campaign_id).where(
                t.tenant_id == tenant_id, among).order_by(t.phone_number, t.campaign_id)):
            found[phone].append(campaign)
    return found


def get(session: Session, tenant_id: str, phone: str) -> NumberFacts | None:
    return load(session, tenant_id, [phone]).get(phone)


def save(session: Session, tenant_id: str, facts: NumberFacts, now: datetime) -> None:
    upsert(session, numbers, {"tenant_id": tenant_id, "phone_number": facts.phone_number,
                              "area_code": facts.area_code, "attestation": facts.attestation,
                              "inbound_enabled": facts.inbound_enabled, "state": facts.state, "update_time": now},
           ["tenant_id", "phone_number"])


def remove(session: Session, tenant_id: str, phone: str) -> None:
    session.execute(delete(assignments).where(assignments.c.tenant_id == tenant_id,
                                              assignments.c.phone_number == phone))
    session.execute(delete(numbers).where(numbers.c.tenant_id == tenant_id, numbers.c.phone_number == phone))


def assign(session: Session, tenant_id: str, campaign_id: str, phone: str) -> None:
    upsert(session, assignments, {"tenant_id": tenant_id, "campaign_id": campaign_id, "phone_number": phone},
           ["tenant_id", "campaign_id", "phone_number"])


def add_campaigns(session: Session, tenant_id: str, phone: str, campaign_ids: Collection[str]) -> None:
    """Record campaigns a number serves (removals arrive as their own assignment changes)."""
    for campaign_id in campaign_ids:
        assign(session, tenant_id, campaign_id, phone)


def unassign(session: Session, tenant_id: str, campaign_id: str, phone: str) -> None:
    session.execute(delete(assignments).where(assignments.c.tenant_id == tenant_id,
                                              assignments.c.campaign_id == campaign_id,
                                              assignments.c.phone_number == phone))


def drop_campaign(session: Session, tenant_id: str, campaign_id: str) -> list[str]:
    """Forget a deleted campaign's assignments; returns the numbers it had."""
    t = assignments.c
    phones = list(session.execute(select(t.phone_number).where(t.tenant_id == tenant_id,
                                                               t.campaign_id == campaign_id)).scalars())
    session.execute(delete(assignments).where(t.tenant_id == tenant_id, t.campaign_id == campaign_id))
    return phones


def clear(session: Session) -> None:
    """Forget every number and assignment (before a registry snapshot replaces them)."""
    session.execute(delete(assignments))
    session.execute(delete(numbers))


def tenants(session: Session) -> list[str]:
    return list(session.execute(select(numbers.c.tenant_id).distinct()).scalars())


def all_phones(session: Session, tenant_id: str) -> list[str]:
    return list(session.execute(select(numbers.c.phone_number).where(numbers.c.tenant_id == tenant_id)
                                .order_by(numbers.c.phone_number)).scalars())
