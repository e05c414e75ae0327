"""Repository of scoring policies: the fields each tenant set (the rest are defaults)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from nhm_platform.replica import upsert
from nhm_scoring.models import policies
from nhm_scoring.policy import ScoringPolicy, effective, overrides_from_json, overrides_to_json


def load_overrides(session: Session, tenant_id: str) -> dict[str, object]:
    text = session.execute(select(policies.c.overrides).where(policies.c.tenant_id == tenant_id)).scalar()
    return overrides_from_json(text or "")


def load(session: Session, tenant_id: str) -> ScoringPolicy:
    return effective(load_overrides(session, tenant_id))


def save(session: Session, tenant_id: str, overrides: dict[str, object], now: datetime) -> None:
    upsert(session, policies, {"tenant_id": tenant_id, "overrides": overrides_to_json(overrides), "update_time": now},
           ["tenant_id"])
