"""Ingestion: events in, buckets and labels updated, the numbers they touched rescored — one transaction a batch.
With a rescore delay, the numbers are marked instead, and a background pass rescores them (rescore_queue.py).

Per event: checked (events.py), then its number must be one of the tenant's (from the registry's feed), then
its event id must be new (INSERT … ON CONFLICT DO NOTHING on the raw table). Only then does it count. A batch
sent twice therefore changes nothing the second time and reports every event as a duplicate.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_scoring import buckets, label_store, number_replica, policy_store, raw_events, rescore_queue
from nhm_scoring.csv_import import parse_observations
from nhm_scoring.events import (
    CallOutcome,
    Checked,
    Complaint,
    IngestSummary,
    Limits,
    Observation,
    check_calls,
    check_complaints,
    check_observations,
    unknown_number,
)
from nhm_scoring.folding import fold_calls, fold_complaints
from nhm_scoring.health_store import standings
from nhm_scoring.policy import ScoringPolicy
from nhm_scoring.rescoring import rescore


class Event(Protocol):
    @property
    def event_id(self) -> str: ...

    @property
    def phone_number(self) -> str: ...


E = TypeVar("E", bound=Event)
T = TypeVar("T")


@dataclass(frozen=True)
class IngestLimits:
    # Events per request (or per stream message).
    max_batch: int
    # Events one stream transaction takes at most (messages that arrived together are applied together).
    max_stream_batch: int
    # How far in the future an event's time may be (clocks differ).
    max_clock_skew: timedelta
    # CSV rows per transaction.
    csv_chunk: int


class Ingestion:
    def __init__(self, db: Database, clock: Clock, limits: IngestLimits, *, defer_rescoring: bool = False) -> None:
        self._db, self._clock, self._limits = db, clock, limits
        self._defer_rescoring = defer_rescoring

    def report_calls(self, tenant_id: str, outcomes: Sequence[CallOutcome]) -> IngestSummary:
        return self._ingest(tenant_id, lambda limits, _policy: check_calls(outcomes, limits), self._store_calls)

    def stream_calls(self, tenant_id: str, messages: Iterable[Sequence[CallOutcome]]) -> IngestSummary:
        """Batches from a client stream. Messages that are already waiting are applied in one transaction."""
        total = IngestSummary()
        base = 0
        for group in _coalesce(messages, self._limits.max_stream_batch):
            starts = []
            for _, outcomes in group:
                starts.append(base)
                base += len(outcomes)

            def check(limits: Limits, _policy: ScoringPolicy, group: Any = group, starts: Any = starts
                      ) -> Checked[CallOutcome]:
                checked: Checked[CallOutcome] = Checked()
                for (number, outcomes), start in zip(group, starts, strict=True):
                    checked.extend(check_calls(outcomes, limits, prefix=f"requests[{number}].outcomes",
                                               index_base=start))
                return checked

            total.add(self._ingest(tenant_id, check, self._store_calls))
        return total

    def report_complaints(self, tenant_id: str, complaints: Sequence[Complaint]) -> IngestSummary:
        return self._ingest(tenant_id, lambda limits, _policy: check_complaints(complaints, limits),
                            self._store_complaints)

    def report_observations(self, tenant_id: str, observations: Sequence[Observation]) -> IngestSummary:
        return self._ingest(
            tenant_id, lambda limits, policy: check_observations(observations, limits, policy.label_expires_after),
            self._store_observations)

    def import_csv(self, tenant_id: str, data: bytes) -> IngestSummary:
        """Rows are applied in chunks, each its own transaction; event ids make a retried import harmless."""
        parsed = parse_observations(data)
        total = IngestSummary(rejections=list(parsed.rejections))
        chunk = self._limits.csv_chunk
        for i in range(0, len(parsed.rows), chunk):
            part = parsed.rows[i:i + chunk]
            rows = [row for row, _ in part]
            events = [event for _, event in part]
            total.add(self._ingest(
                tenant_id,
                lambda limits, policy, events=events, rows=rows: check_observations(
                    events, limits, policy.label_expires_after, prefix="rows", positions=rows),
                self._store_observations))
        total.rejections.sort(key=lambda r: r.index)
        return total

    def _ingest(self, tenant_id: str, check: Callable[[Limits, ScoringPolicy], Checked[E]],
                store: Callable[[Session, str, list[E], datetime, ScoringPolicy], set[str]]) -> IngestSummary:
        with self._db.transaction() as session:
            now = self._clock.now()
            policy = policy_store.load(session, tenant_id)
            checked = check(Limits(now, policy.max_event_age, self._limits.max_clock_skew), policy)
            summary = IngestSummary(rejections=list(checked.rejections))
            phones = {event.phone_number for _, _, event in checked.events}
            known = number_replica.known(session, tenant_id, phones)
            fresh: list[E] = []
            seen: set[str] = set()
            for index, where, event in checked.events:
                phone, event_id = event.phone_number, event.event_id
                if phone not in known:
                    summary.rejections.append(unknown_number(index, event_id, phone, f"{where}.phone_number"))
                elif event_id in seen:
                    summary.duplicates += 1
                else:
                    seen.add(event_id)
                    fresh.append(event)
            accepted = store(session, tenant_id, fresh, now, policy) if fresh else set()
            summary.accepted = len(accepted)
            summary.duplicates += len(fresh) - len(accepted)
        summary.rejections.sort(key=lambda r: r.index)
        return summary

    def _store_calls(self, session: Session, tenant_id: str, events: list[CallOutcome], now: datetime,
                     policy: ScoringPolicy) -> set[str]:
        inserted = raw_events.insert_calls(session, tenant_id, events, now)
        accepted = [e for e in events if e.event_id in inserted]
        if accepted:
            phones = {e.phone_number for e in accepted}
            buckets.apply(session, tenant_id, fold_calls(accepted, standings(session, tenant_id, phones)))
            self._rescore(session, tenant_id, phones, now, policy)
        return inserted

    def _store_complaints(self, session: Session, tenant_id: str, events: list[Complaint], now: datetime,
                          policy: ScoringPolicy) -> set[str]:
        inserted = raw_events.insert_complaints(session, tenant_id, events, now)
        accepted = [e for e in events if e.event_id in inserted]
        if accepted:
            buckets.apply(session, tenant_id, fold_complaints(accepted))
            self._rescore(session, tenant_id, {e.phone_number for e in accepted}, now, policy)
        return inserted

    def _store_observations(self, session: Session, tenant_id: str, events: list[Observation], now: datetime,
                            policy: ScoringPolicy) -> set[str]:
        inserted = raw_events.insert_observations(session, tenant_id, events, now)
        accepted = [e for e in events if e.event_id in inserted]
        if accepted:
            label_store.apply(session, tenant_id, accepted)
            self._rescore(session, tenant_id, {e.phone_number for e in accepted}, now, policy)
        return inserted

    def _rescore(self, session: Session, tenant_id: str, phones: set[str], now: datetime,
                 policy: ScoringPolicy) -> None:
        if self._defer_rescoring:
            rescore_queue.mark(session, tenant_id, phones)
        else:
            rescore(session, tenant_id, phones, now, policy)


_END = object()


def _coalesce(messages: Iterable[Sequence[T]], max_events: int) -> Iterator[list[tuple[int, Sequence[T]]]]:
    """Groups of (message number, message): each message that arrived while the last group was being applied
    joins the next group, up to max_events. A reader thread keeps receiving meanwhile."""
    inbox: queue.Queue[Any] = queue.Queue(maxsize=256)
    stopped = threading.Event()

    def put(item: Any) -> None:
        while not stopped.is_set():
            try:
                inbox.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def pump() -> None:
        try:
            for item in enumerate(messages):
                put(item)
                if stopped.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            put(exc)
        finally:
            put(_END)

    threading.Thread(target=pump, name="scoring-stream-reader", daemon=True).start()
    try:
        yield from _groups(inbox, max_events)
    finally:
        stopped.set()


def _groups(inbox: queue.Queue[Any], max_events: int) -> Iterator[list[tuple[int, Sequence[T]]]]:
    pending: Any = None
    while True:
        item = pending if pending is not None else inbox.get()
        pending = None
        if item is _END:
            return
        if isinstance(item, BaseException):
            raise item
        group, count = [item], len(item[1])
        while count < max_events:
            try:
                more = inbox.get_nowait()
            except queue.Empty:
                break
            if more is _END or isinstance(more, BaseException) or count + len(more[1]) > max_events:
                pending = more
                break
            group.append(more)
            count += len(more[1])
        yield group
