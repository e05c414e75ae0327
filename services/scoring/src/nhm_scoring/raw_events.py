"""Repository of raw events: one row per (tenant, event id), claimed with INSERT … ON CONFLICT DO NOTHING.

The rows that were inserted are the events that count; an event id already there is a duplicate. Raw rows
are kept for evidence (sample call times) and pruned after the retention; aggregates never rescan them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nhm_scoring.events import OUTBOUND, CallOutcome, Complaint, Observation
from nhm_scoring.models import call_outcomes, complaints, observations
from nhm_scoring.sql_upserts import insert_new

_KEYS = ("tenant_id", "event_id")


def insert_calls(session: Session, tenant_id: str, events: Sequence[CallOutcome], now: datetime) -> set[str]:
    rows = [{"tenant_id": tenant_id, "event_id": e.event_id, "phone_number": e.phone_number,
             "direction": e.direction, "remote_number": e.remote_number, "start_time": e.start_time,
             "answered": e.is_answered, "talk_ms": e.talk_ms, "sip_code": e.sip_code, "disposition": e.disposition,
             "campaign_id": e.campaign_id, "call_id": e.call_id, "ingest_time": now} for e in events]
    return insert_new(session, call_outcomes, rows, _KEYS, "event_id")


def insert_complaints(session: Session, tenant_id: str, events: Sequence[Complaint], now: datetime) -> set[str]:
    rows = [{"tenant_id": tenant_id, "event_id": e.event_id, "phone_number": e.phone_number, "kind": e.kind,
             "remote_number": e.remote_number, "report_time": e.report_time, "source": e.source,
             "detail": e.detail, "ingest_time": now} for e in events]
    return insert_new(session, complaints, rows, _KEYS, "event_id")


def insert_observations(session: Session, tenant_id: str, events: Sequence[Observation],
                        now: datetime) -> set[str]:
    rows = [{"tenant_id": tenant_id, "event_id": e.event_id, "phone_number": e.phone_number, "source": e.source,
             "label": e.label, "raw_label": e.raw_label, "score": e.score, "observe_time": e.observe_time,
             "ingest_time": now} for e in events]
    return insert_new(session, observations, rows, _KEYS, "event_id")


def recent_outbound_times(session: Session, tenant_id: str, phone: str, limit: int) -> list[datetime]:
    t = call_outcomes.c
    return list(session.execute(
        select(t.start_time).where(t.tenant_id == tenant_id, t.phone_number == phone, t.direction == OUTBOUND)
        .order_by(t.start_time.desc()).limit(limit)).scalars())


def prune(session: Session, before: datetime) -> int:
    """Drop raw events that happened before a time; returns how many."""
    dropped = session.execute(delete(call_outcomes).where(call_outcomes.c.start_time < before)).rowcount or 0
    dropped += session.execute(delete(complaints).where(complaints.c.report_time < before)).rowcount or 0
    dropped += session.execute(delete(observations).where(observations.c.observe_time < before)).rowcount or 0
    return int(dropped)
