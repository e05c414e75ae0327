"""Reading health: one number, a filtered page with counts per status, a number's history, its call activity."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from nhm.scoring.v1 import scoring_pb2
from nhm_platform.batch_get import BatchResult, checked_phone_numbers, in_request_order
from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.errors import FieldViolation, InvalidArgument, NotFound
from nhm_platform.pagination import decode_page_token, encode_page_token, filter_fingerprint, page_size
from nhm_platform.protoconv import as_utc
from nhm_scoring import buckets, health_store, number_replica, policy_store, raw_events
from nhm_scoring.activity import day_start, epoch_day
from nhm_scoring.health_store import HistoryRow, ListFilter
from nhm_scoring.messages import as_read
from nhm_scoring.reputation import HealthStatus, Source

_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_PREFIX = re.compile(r"\+[0-9]{0,15}")
_AREA_CODE = re.compile(r"[0-9]{1,8}")
MAX_ACTIVITY_DAYS, DEFAULT_ACTIVITY_DAYS = 90, 30
MAX_SAMPLE, DEFAULT_SAMPLE = 100, 10


def check_phone(phone: str, field: str = "phone_number") -> None:
    if not _E164.fullmatch(phone):
        raise InvalidArgument.for_field(field, "an E.164 number such as +14158675309 is required")


@dataclass(frozen=True)
class ListQuery:
    statuses: tuple[int, ...] = ()
    source: int = 0
    campaign_id: str = ""
    area_code: str = ""
    prefix: str = ""


@dataclass(frozen=True)
class HealthPage:
    health: list[scoring_pb2.NumberHealth]
    next_page_token: str
    counts: dict[HealthStatus, int]


@dataclass(frozen=True)
class HistoryPage:
    transitions: list[HistoryRow]
    next_page_token: str


@dataclass(frozen=True)
class DayActivity:
    day: datetime
    outbound: int
    answered: int
    inbound: int
    talk_ms: int
    short_calls: int
    blocked: int
    complaints: int


@dataclass(frozen=True)
class CallActivity:
    phone_number: str
    days: list[DayActivity]
    sample_call_times: list[datetime]


class Reading:
    def __init__(self, db: Database, clock: Clock, *, max_batch_get: int) -> None:
        self._db, self._clock, self._max_batch_get = db, clock, max_batch_get

    def get(self, tenant_id: str, phone: str) -> scoring_pb2.NumberHealth:
        check_phone(phone)
        with self._db.read() as session:
            row = health_store.get(session, tenant_id, phone)
        if row is None:
            raise NotFound(f"no health for {phone}: not one of this tenant's numbers (or not replicated yet)")
        return as_read(row.payload, row.update_time, self._clock.now())

    def batch_get(self, tenant_id: str, phones: Sequence[str]) -> BatchResult[scoring_pb2.NumberHealth]:
        wanted = checked_phone_numbers(phones, self._max_batch_get)
        with self._db.read() as session:
            rows = health_store.load(session, tenant_id, wanted)
        now = self._clock.now()
        return in_request_order(wanted, {phone: as_read(row.payload, row.update_time, now)
                                         for phone, row in rows.items()})

    def list(self, tenant_id: str, query: ListQuery, requested_size: int, token: str) -> HealthPage:
        size = page_size(requested_size)
        violations = []
        if any(s not in (1, 2, 3, 4) for s in query.statuses):
            violations.append(FieldViolation("statuses", "each status must be HEALTHY, AT_RISK, FLAGGED or BLOCKED"))
        if query.source and not Source.TMOBILE <= query.source <= Source.OTHER:
            violations.append(FieldViolation("source", "unknown reputation source"))
        if query.area_code and not _AREA_CODE.fullmatch(query.area_code):
            violations.append(FieldViolation("area_code", "digits only, e.g. 415"))
        if query.prefix and not _PREFIX.fullmatch(query.prefix):
            violations.append(FieldViolation("phone_number_prefix", "'+' then up to 15 digits, e.g. +1415"))
        if len(query.campaign_id) > 64:
            violations.append(FieldViolation("campaign_id", "at most 64 characters"))
        if violations:
            raise InvalidArgument.for_fields(violations)
        fingerprint = filter_fingerprint("health", tenant_id, sorted(set(query.statuses)), query.source,
                                         query.campaign_id, query.area_code, query.prefix)
        last = decode_page_token(token, fingerprint)
        if last is not None and (len(last) != 1 or not isinstance(last[0], str)):
            raise InvalidArgument.for_field("page_token", "not a page token this service issued")
        now = self._clock.now()
        with self._db.read() as session:
            policy = policy_store.load(session, tenant_id)
            f = ListFilter(tuple(HealthStatus(s) for s in sorted(set(query.statuses))), query.source,
                           now - policy.label_expires_after if query.source else None, query.campaign_id,
                           query.area_code, query.prefix)
            rows = health_store.list_page(session, tenant_id, f, last[0] if last else None, size + 1)
            counts = health_store.count_by_status(session, tenant_id, f)
        page = [as_read(payload, update_time, now) for payload, update_time in rows[:size]]
        next_token = encode_page_token([page[-1].phone_number], fingerprint) if len(rows) > size else ""
        return HealthPage(page, next_token, counts)

    def history(self, tenant_id: str, phone: str, requested_size: int, token: str) -> HistoryPage:
        check_phone(phone)
        size = page_size(requested_size)
        fingerprint = filter_fingerprint("history", tenant_id, phone)
        last = decode_page_token(token, fingerprint)
        after = None
        if last is not None:
            try:
                after = (datetime.fromisoformat(str(last[0])), int(last[1]))
            except (ValueError, IndexError, TypeError):
                raise InvalidArgument.for_field("page_token", "not a page token this service issued") from None
        with self._db.read() as session:
            if health_store.get(session, tenant_id, phone) is None:
                raise NotFound(f"no health for {phone}: not one of this tenant's numbers")
            rows = health_store.history_page(session, tenant_id, phone, after, size + 1)
        next_token = ""
        if len(rows) > size:
            tail = rows[size - 1]
            next_token = encode_page_token([tail.transition_time.isoformat(), tail.id], fingerprint)
        return HistoryPage(rows[:size], next_token)

    def call_activity(self, tenant_id: str, phone: str, days: int, sample_size: int) -> CallActivity:
        check_phone(phone)
        violations = []
        if not 0 <= days <= MAX_ACTIVITY_DAYS:
            violations.append(FieldViolation("days", f"between 1 and {MAX_ACTIVITY_DAYS} (0: {DEFAULT_ACTIVITY_DAYS})"))
        if not 0 <= sample_size <= MAX_SAMPLE:
            violations.append(FieldViolation("sample_size", f"between 1 and {MAX_SAMPLE} (0: {DEFAULT_SAMPLE})"))
        if violations:
            raise InvalidArgument.for_fields(violations)
        days = days or DEFAULT_ACTIVITY_DAYS
        sample_size = sample_size or DEFAULT_SAMPLE
        today = epoch_day(self._clock.now())
        first = today - days + 1
        with self._db.read() as session:
            if number_replica.get(session, tenant_id, phone) is None:
                raise NotFound(f"{phone} is not one of this tenant's numbers")
            policy = policy_store.load(session, tenant_id)
            counts = {d.day: d for d in buckets.load_days(session, tenant_id, [phone], first, today).get(phone, [])}
            short = buckets.short_calls_by_day(session, tenant_id, phone, first, today, policy.short_call_seconds)
            sample = raw_events.recent_outbound_times(session, tenant_id, phone, sample_size)
        result = []
        for day in range(first, today + 1):
            d = counts.get(day)
            result.append(DayActivity(day_start(day), d.outbound if d else 0, d.answered if d else 0,
                                      d.inbound if d else 0, d.talk_ms if d else 0, short.get(day, 0),
                                      d.blocked if d else 0, d.complaints if d else 0))
        return CallActivity(phone, result, _utc(sample))


def _utc(times: Sequence[datetime]) -> list[datetime]:
    return [as_utc(t) for t in times]
