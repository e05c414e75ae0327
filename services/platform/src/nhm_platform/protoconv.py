"""Conversions between protobuf well-known types and Python values."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from google.protobuf.descriptor import Descriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from nhm_platform.errors import FieldViolation

_TIME_TYPES = {Timestamp.DESCRIPTOR.full_name, Duration.DESCRIPTOR.full_name}
_TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)  # 0001-01-01 to 9999-12-31, as the type defines
_DURATION_SECONDS = 315_576_000_000  # about 10,000 years either way


def to_timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(as_utc(value))
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def optional_timestamp(message: object, field: str) -> datetime | None:
    """The field's time if it is set on message, else None."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    return from_timestamp(getattr(message, field))


def to_duration(value: timedelta) -> Duration:
    d = Duration()
    d.FromTimedelta(value)
    return d


def from_duration(d: Duration) -> timedelta:
    return d.ToTimedelta()


def as_utc(value: datetime) -> datetime:
    """Treat naive datetimes (as SQLite returns them) as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def time_field_violations(message: Message, prefix: str = "") -> list[FieldViolation]:
    """Timestamps and durations anywhere in a request that the types do not allow (out of range, nanos out of
    range or of the other sign): converting them would raise, so they are refused up front, by field."""
    if not _holds_time(message.DESCRIPTOR):
        return []
    violations: list[FieldViolation] = []
    for field, value in message.ListFields():
        if field.message_type is None or not _holds_time(field.message_type):
            continue
        path = f"{prefix}{field.name}"
        if field.message_type.GetOptions().map_entry:
            items = [(f"{path}[{key!r}]", value[key]) for key in value]
            if field.message_type.fields_by_name["value"].message_type is None:
                continue
        elif field.is_repeated:
            items = [(f"{path}[{i}]", item) for i, item in enumerate(value)]
        else:
            items = [(path, value)]
        for item_path, item in items:
            problem = _time_problem(item)
            if problem:
                violations.append(FieldViolation(item_path, problem))
            elif item.DESCRIPTOR.full_name not in _TIME_TYPES:
                violations += time_field_violations(item, item_path + ".")
    return violations


def _time_problem(value: Message) -> str:
    name = value.DESCRIPTOR.full_name
    if name == Timestamp.DESCRIPTOR.full_name:
        low, high = _TIMESTAMP_SECONDS
        if not low <= value.seconds <= high or not 0 <= value.nanos <= 999_999_999:  # type: ignore[attr-defined]
            return "not a valid time: must lie between 0001-01-01 and 9999-12-31 UTC with nanos in [0, 999999999]"
    elif name == Duration.DESCRIPTOR.full_name:
        seconds, nanos = value.seconds, value.nanos  # type: ignore[attr-defined]
        if abs(seconds) > _DURATION_SECONDS or abs(nanos) > 999_999_999 or seconds * nanos < 0:
            return ("not a valid duration: at most 315,576,000,000 s either way, nanos within one second and of"
                    " the same sign as seconds")
    return ""


@functools.cache
def _holds_time(descriptor: Descriptor) -> bool:
    """Whether messages of this type can hold a timestamp or duration (at any depth)."""
    return _reaches_time(descriptor, frozenset())


def _reaches_time(descriptor: Descriptor, seen: frozenset[str]) -> bool:
    if descriptor.full_name in _TIME_TYPES:
        return True
    if descriptor.full_name in seen:
        return False
    seen = seen | {descriptor.full_name}
    return any(field.message_type is not None and _reaches_time(field.message_type, seen)
               for field in descriptor.fields)
