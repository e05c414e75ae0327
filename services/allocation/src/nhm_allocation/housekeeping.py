"""Background upkeep: forget call ids, ledger rows and prospects once no rule looks at them any more.

Per-prospect limits look back 7 days and capacity planning averages the last 7 days, so the ledger is kept
longer than both (35 days by default, for audit and disputes); a retry of a call id comes within minutes,
so its stored answer is kept 7 days. Rows are deleted in small batches so that upkeep never holds the
hot tables for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import Table, and_, delete, select, tuple_
from sqlalchemy.sql import ColumnElement

from nhm_allocation.models import allocations, idempotency, prospects
from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.periodic import Periodic
from nhm_platform.row_scope import platform_rows

_log = structlog.get_logger("nhm.allocation.housekeeping")
BATCH = 5_000


@dataclass(frozen=True)
class Pruned:
    call_ids: int
    ledger_rows: int
    prospects: int


class Housekeeper:
    def __init__(self, db: Database, clock: Clock, *, call_id_retention: timedelta, ledger_retention: timedelta,
                 prospect_retention: timedelta, interval: float) -> None:
        self._db, self._clock = db, clock
        self._call_id_retention, self._ledger_retention = call_id_retention, ledger_retention
        self._prospect_retention = prospect_retention
        # interval <= 0: no upkeep in this process.
        self._periodic = (Periodic("allocation-housekeeping", interval, self._run_and_log, join_timeout=5)
                          if interval > 0 else None)

    def run_once(self) -> Pruned:
        with platform_rows():  # every tenant's old rows
            return self._prune_all()

    def _prune_all(self) -> Pruned:
        now = self._clock.now()
        keys = idempotency.table.c
        return Pruned(
            call_ids=self._prune(idempotency.table, (keys.tenant_id, keys.request_id),
                                 keys.create_time < now - self._call_id_retention),
            ledger_rows=self._prune(allocations, (allocations.c.tenant_id, allocations.c.call_id),
                                    allocations.c.allocate_time < now - self._ledger_retention),
            prospects=self._prune(prospects, (prospects.c.tenant_id, prospects.c.destination),
                                  and_(prospects.c.sticky_time.is_not(None),
                                       prospects.c.sticky_time < now - self._prospect_retention)),
        )

    def _prune(self, table: Table, key: tuple[ColumnElement[Any], ...], condition: ColumnElement[bool]) -> int:
        total = 0
        while True:
            with self._db.transaction() as session:
                batch = session.execute(select(*key).where(condition).limit(BATCH)).all()
                if batch:
                    session.execute(delete(table).where(tuple_(*key).in_([tuple(row) for row in batch])))
            total += len(batch)
            if len(batch) < BATCH:
                return total

    def start(self) -> None:
        if self._periodic is not None:
            self._periodic.start()

    def stop(self) -> None:
        if self._periodic is not None:
            self._periodic.stop()

    def _run_and_log(self) -> None:
        pruned = self.run_once()
        if pruned.call_ids or pruned.ledger_rows or pruned.prospects:
            _log.info("housekeeping.pruned", call_ids=pruned.call_ids, ledger_rows=pruned.ledger_rows,
                      prospects=pruned.prospects)
