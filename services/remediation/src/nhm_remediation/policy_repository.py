"""Each tenant's remediation policy: only the fields it set are stored (JSON; durations in seconds)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nhm_platform.replica import upsert
from nhm_remediation.models import policies
from nhm_remediation.policy import FIELDS, RemediationPolicy, effective


def _encode(value: Any) -> Any:
    if isinstance(value, timedelta):
        return {"seconds": value.total_seconds()}
    if isinstance(value, tuple):
        return list(value)
    return value


def _decode(name: str, value: Any) -> Any:
    if isinstance(value, dict) and "seconds" in value:
        return timedelta(seconds=value["seconds"])
    if name == "warmup_daily_caps":
        return tuple(int(v) for v in value)
    return value


class PolicyRepository:
    def stored(self, session: Session, tenant_id: str) -> dict[str, Any]:
        raw = session.execute(select(policies.c.settings).where(policies.c.tenant_id == tenant_id)).scalar()
        if raw is None:
            return {}
        return {k: _decode(k, v) for k, v in json.loads(raw).items() if k in FIELDS}

    def effective(self, session: Session, tenant_id: str) -> RemediationPolicy:
        return effective(self.stored(session, tenant_id))

    def save(self, session: Session, tenant_id: str, stored: dict[str, Any], now: datetime) -> None:
        upsert(session, policies, {"tenant_id": tenant_id, "update_time": now,
                                   "settings": json.dumps({k: _encode(v) for k, v in stored.items()},
                                                          sort_keys=True)}, ["tenant_id"])
