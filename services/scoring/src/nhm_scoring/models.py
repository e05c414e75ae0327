"""The scoring service's tables."""

from __future__ import annotations

from sqlalchemy import MetaData

from nhm_platform.idempotency import IdempotencyStore

metadata = MetaData()
idempotency = IdempotencyStore(metadata)
