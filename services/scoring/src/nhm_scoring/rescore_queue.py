"""Deferred rescoring (rescore_delay > 0): ingestion marks the numbers its events touched, and a background pass
rescores the marked numbers every rescore_delay seconds, once each however many events arrived meanwhile.

Nothing is lost: a mark is written in the transaction that counts the events, and removed only in the transaction
that writes the health it asked for. On PostgreSQL the pass locks the marks it takes (SKIP LOCKED, so replicas of
the service share the work); an ingestion marking a number being rescored waits for that pass to commit and then
marks it again, so events that arrive during a pass are rescored by the next one.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.periodic import Periodic
from nhm_platform.row_scope import platform_rows
from nhm_platform.statements import set_filters
from nhm_scoring import policy_store
from nhm_scoring.models import rescore_queue
from nhm_scoring.rescoring import rescore
from nhm_scoring.sql_upserts import add_counts

_Q = rescore_queue.c
# Numbers rescored per transaction, so a pass never holds the database for long.
CHUNK = 500


def mark(session: Session, tenant_id: str, phones: Collection[str]) -> None:
    """Ask for the numbers' health to be recomputed by the next pass (in the caller's transaction)."""
    add_counts(session, rescore_queue, [{"tenant_id": tenant_id, "phone_number": phone, "marks": 1}
                                        for phone in phones], ("tenant_id", "phone_number"))


def pending(session: Session) -> int:
    """Numbers marked and not rescored yet (every tenant's in the caller's row scope)."""
    return int(session.execute(select(func.count()).select_from(rescore_queue)).scalar_one())


def _tenants(session: Session) -> list[str]:
    return list(session.execute(select(_Q.tenant_id).distinct().order_by(_Q.tenant_id)).scalars())


def _take(session: Session, tenant_id: str, limit: int) -> list[str]:
    query = select(_Q.phone_number).where(_Q.tenant_id == tenant_id).order_by(_Q.phone_number).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # SQLite: the transaction holds the only write lock
    return list(session.execute(query).scalars())


def _unmark(session: Session, tenant_id: str, phones: Collection[str]) -> None:
    for among in set_filters(session, _Q.phone_number, phones):
        session.execute(delete(rescore_queue).where(_Q.tenant_id == tenant_id, among))


class QueuedRescoring:
    """The background pass. stop() runs a last pass once started, so a clean shutdown leaves no number waiting."""

    def __init__(self, db: Database, clock: Clock, delay: float, chunk: int = CHUNK) -> None:
        self._db, self._clock, self._chunk = db, clock, chunk
        self._periodic = Periodic("scoring-rescore-queue", delay, self.run_once, join_timeout=30)

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        if not self._periodic.started:  # a bulk lane, whose serving process runs the passes
            return
        self._periodic.stop()
        self._periodic.run_logged()

    def run_once(self) -> int:
        """Rescore every number marked when the pass starts (and any marked meanwhile); returns how many."""
        done = 0
        with platform_rows():
            with self._db.read() as session:
                tenants = _tenants(session)
            for tenant in tenants:
                while True:
                    taken = self._rescore_chunk(tenant)
                    done += taken
                    if taken < self._chunk:
                        break
        return done

    def _rescore_chunk(self, tenant_id: str) -> int:
        with self._db.transaction() as session:
            phones = _take(session, tenant_id, self._chunk)
            if phones:
                rescore(session, tenant_id, phones, self._clock.now(), policy_store.load(session, tenant_id))
                _unmark(session, tenant_id, phones)
        return len(phones)
