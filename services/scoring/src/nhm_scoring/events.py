"""What dialers, operators and reputation feeds report, checked one event at a time.

Each event is accepted, a duplicate (its event id was counted before), or rejected with a reason and the field at
fault; one bad event never fails the others. Checks here need no database; whether the number belongs to the
caller's tenant is checked by the ingestion service against the registry replica.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from nhm_scoring.reputation import Label, Source, parse_label

MAX_EVENT_ID = 128
MAX_TEXT = 200
MAX_DETAIL = 2000
MAX_TALK = timedelta(hours=24)
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")

OUTBOUND, INBOUND = 1, 2
DISPOSITION_ANSWERED, DISPOSITION_REJECTED, DISPOSITION_BLOCKED, DISPOSITION_LAST = 1, 5, 6, 7
COMPLAINT, DO_NOT_CALL = 1, 2
# SIP final responses that mean the call was refused: 603 Decline, 607 Unwanted, 608 Rejected.
BLOCKING_SIP_CODES = frozenset({603, 607, 608})


@dataclass(frozen=True)
class CallOutcome:
    event_id: str
    phone_number: str
    direction: int
    remote_number: str
    start_time: datetime | None
    answered: bool
    talk_ms: int
    sip_code: int
    disposition: int
    campaign_id: str = ""
    call_id: str = ""

    @property
    def is_outbound(self) -> bool:
        return self.direction == OUTBOUND

    @property
    def is_answered(self) -> bool:
        return self.answered or self.disposition == DISPOSITION_ANSWERED

    @property
    def is_blocked(self) -> bool:
        """Refused by the person or an engine: SIP 603/607/608, or disposed REJECTED or BLOCKED."""
        return self.sip_code in BLOCKING_SIP_CODES or self.disposition in (DISPOSITION_REJECTED, DISPOSITION_BLOCKED)

    @property
    def is_608(self) -> bool:
        """Blocked by an analytics engine (SIP 608, or disposed BLOCKED without a SIP code)."""
        return self.sip_code == 608 or (self.sip_code == 0 and self.disposition == DISPOSITION_BLOCKED)


@dataclass(frozen=True)
class Complaint:
    event_id: str
    phone_number: str
    kind: int
    remote_number: str
    report_time: datetime | None
    source: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Observation:
    event_id: str
    phone_number: str
    source: int
    label: int
    raw_label: str
    score: float | None
    observe_time: datetime | None


@dataclass(frozen=True)
class Rejection:
    index: int
    event_id: str
    reason: str
    field: str


E = TypeVar("E")


@dataclass
class Checked(Generic[E]):
    """Events that passed the checks (with their positions) and those that did not."""

    # (index reported in rejections, where the event is in the request, e.g. "outcomes[3]", event)
    events: list[tuple[int, str, E]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def extend(self, other: Checked[E]) -> None:
        self.events.extend(other.events)
        self.rejections.extend(other.rejections)


@dataclass
class IngestSummary:
    accepted: int = 0
    duplicates: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    def add(self, other: IngestSummary) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejections.extend(other.rejections)


@dataclass(frozen=True)
class Limits:
    """How far from now an event's time may be."""

    now: datetime
    max_age: timedelta
    max_future: timedelta


class _Errors:
    def __init__(self, index: int, event_id: str, prefix: str) -> None:
        self.index, self.event_id, self.prefix = index, event_id, prefix
        self.rejection: Rejection | None = None

    def fail(self, name: str, reason: str) -> None:
        if self.rejection is None:
            self.rejection = Rejection(self.index, self.event_id, reason, f"{self.prefix}.{name}" if name
                                       else self.prefix)


def _event_id(value: str, errors: _Errors) -> None:
    if not value:
        errors.fail("event_id", "event_id is required: a unique id per event makes reporting it again harmless")
    elif len(value) > MAX_EVENT_ID or not value.isprintable():
        errors.fail("event_id", f"event_id must be at most {MAX_EVENT_ID} printable characters")


def _number(value: str, name: str, errors: _Errors, *, required: bool) -> None:
    if not value:
        if required:
            errors.fail(name, f"{name} is required: an E.164 number such as +14158675309")
    elif not _E164.fullmatch(value):
        errors.fail(name, f"{name} {value[:40]!r} is not E.164: '+' then 8 to 15 digits")


def _time(value: datetime | None, name: str, limits: Limits, errors: _Errors, *, max_age: timedelta,
          age_words: str) -> None:
    if value is None:
        errors.fail(name, f"{name} is required")
    elif value > limits.now + limits.max_future:
        errors.fail(name, f"{name} {value.isoformat()} is in the future")
    elif value < limits.now - max_age:
        errors.fail(name, f"{name} {value.isoformat()} is older than {age_words}: too late to count")


def _text(value: str, name: str, limit: int, errors: _Errors) -> None:
    if len(value) > limit:
        errors.fail(name, f"{name} must be at most {limit} characters")


def _positions(count: int, positions: Sequence[int] | None, index_base: int) -> list[tuple[int, int, int]]:
    """(offset, reported index, position named in the field) of each event."""
    if positions is not None:
        return [(offset, position, position) for offset, position in enumerate(positions)]
    return [(offset, index_base + offset, offset) for offset in range(count)]


def check_calls(outcomes: Sequence[CallOutcome], limits: Limits, prefix: str = "outcomes",
                index_base: int = 0) -> Checked[CallOutcome]:
    """index_base numbers events across the batches of a stream (rejections name their place in the stream)."""
    checked: Checked[CallOutcome] = Checked()
    for offset, index, position in _positions(len(outcomes), None, index_base):
        event = outcomes[offset]
        errors = _Errors(index, event.event_id, f"{prefix}[{position}]")
        _event_id(event.event_id, errors)
        _number(event.phone_number, "phone_number", errors, required=True)
        if event.direction not in (OUTBOUND, INBOUND):
            errors.fail("direction", "direction must be OUTBOUND or INBOUND")
        _number(event.remote_number, "remote_number", errors, required=False)
        _time(event.start_time, "start_time", limits, errors, max_age=limits.max_age, age_words=_age(limits))
        if not 0 <= event.talk_ms <= MAX_TALK.total_seconds() * 1000:
            errors.fail("talk_duration", "talk_duration must be between 0 and 24 hours")
        if event.sip_code and not 100 <= event.sip_code <= 699:
            errors.fail("sip_code", "sip_code must be a SIP final response code (100-699) or 0 when unknown")
        if not 0 <= event.disposition <= DISPOSITION_LAST:
            errors.fail("disposition", "unknown disposition")
        _text(event.campaign_id, "campaign_id", 64, errors)
        _text(event.call_id, "call_id", MAX_EVENT_ID, errors)
        _collect(checked, index, event, errors)
    return checked


def check_complaints(complaints: Sequence[Complaint], limits: Limits, prefix: str = "complaints"
                     ) -> Checked[Complaint]:
    checked: Checked[Complaint] = Checked()
    for index, event in enumerate(complaints):
        errors = _Errors(index, event.event_id, f"{prefix}[{index}]")
        _event_id(event.event_id, errors)
        _number(event.phone_number, "phone_number", errors, required=True)
        if event.kind not in (COMPLAINT, DO_NOT_CALL):
            errors.fail("kind", "kind must be COMPLAINT or DO_NOT_CALL")
        _number(event.remote_number, "remote_number", errors, required=False)
        _time(event.report_time, "report_time", limits, errors, max_age=limits.max_age, age_words=_age(limits))
        _text(event.source, "source", MAX_TEXT, errors)
        _text(event.detail, "detail", MAX_DETAIL, errors)
        _collect(checked, index, event, errors)
    return checked


def check_observations(observations: Sequence[Observation], limits: Limits, label_expires_after: timedelta,
                       prefix: str = "observations", positions: Sequence[int] | None = None
                       ) -> Checked[Observation]:
    """Observations older than label_expires_after are refused: they would carry no weight.

    An observation without a label takes it from raw_label when the vendor's wording is known ("Spam Likely").
    positions, when given, are what rejections report for each event (the CSV import's row numbers).
    """
    checked: Checked[Observation] = Checked()
    days = int(label_expires_after.total_seconds() // 86400)
    for offset, index, position in _positions(len(observations), positions, 0):
        event = observations[offset]
        errors = _Errors(index, event.event_id, f"{prefix}[{position}]")
        _event_id(event.event_id, errors)
        _number(event.phone_number, "phone_number", errors, required=True)
        if not Source.TMOBILE <= event.source <= Source.OTHER:
            errors.fail("source", "source must be a carrier, an engine or an app (or OTHER)")
        label = event.label
        if label == Label.UNSPECIFIED and event.raw_label:
            label = parse_label(event.raw_label) or Label.UNSPECIFIED
        if not Label.CLEAN <= label <= Label.BLOCKED:
            errors.fail("label", "label is required: CLEAN, MINOR, SPAM, SCAM or BLOCKED"
                        + (f" ({event.raw_label[:40]!r} is not a known vendor label)" if event.raw_label else ""))
        _text(event.raw_label, "raw_label", MAX_TEXT, errors)
        if event.score is not None and not math.isfinite(event.score):
            errors.fail("score", "score must be a finite number")
        _time(event.observe_time, "observe_time", limits, errors, max_age=label_expires_after,
              age_words=f"label_expires_after ({days} days), so it would carry no weight")
        if label != event.label and errors.rejection is None:
            event = Observation(event.event_id, event.phone_number, event.source, int(label), event.raw_label,
                                event.score, event.observe_time)
        _collect(checked, index, event, errors)
    return checked


def _age(limits: Limits) -> str:
    days = limits.max_age.total_seconds() / 86400
    return f"max_event_age ({days:g} days)"


def _collect(checked: Checked[E], index: int, event: E, errors: _Errors) -> None:
    if errors.rejection is not None:
        checked.rejections.append(errors.rejection)
    else:
        checked.events.append((index, errors.prefix, event))


def unknown_number(index: int, event_id: str, phone_number: str, field: str) -> Rejection:
    return Rejection(index, event_id, f"unknown number {phone_number}: not one of this tenant's numbers in the "
                                      "registry (or not replicated here yet)", field)
