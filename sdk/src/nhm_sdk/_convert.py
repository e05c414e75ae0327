"""Plain Python values → protobuf messages: datetimes, timedeltas, enum names, "HH:MM", nested mappings.

Every method that takes a message also takes a mapping of its fields with plain values, e.g.
``{"daily_cap_per_number": 80, "sticky_ttl": timedelta(days=14), "calling_window_start": "09:00"}``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from google.protobuf import descriptor, duration_pb2, field_mask_pb2, message_factory, timestamp_pb2
from google.protobuf.message import Message

from nhm.type.v1 import types_pb2

M = TypeVar("M", bound=Message)

TimestampLike = dt.datetime | timestamp_pb2.Timestamp | str
DurationLike = dt.timedelta | duration_pb2.Duration | int | float


def to_timestamp(value: TimestampLike) -> timestamp_pb2.Timestamp:
    """A Timestamp from an aware datetime (naive ones are refused: say which zone), an RFC 3339 string or a
    Timestamp."""
    if isinstance(value, timestamp_pb2.Timestamp):
        return value
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}: give a time zone, e.g. datetime.now(timezone.utc)")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(dt.UTC))
    return stamp


def from_timestamp(value: timestamp_pb2.Timestamp) -> dt.datetime | None:
    """An aware UTC datetime, or None for an unset (zero) Timestamp."""
    if value.seconds == 0 and value.nanos == 0:
        return None
    return value.ToDatetime(tzinfo=dt.UTC)


def to_duration(value: DurationLike) -> duration_pb2.Duration:
    """A Duration from a timedelta, a number of seconds or a Duration."""
    if isinstance(value, duration_pb2.Duration):
        return value
    if isinstance(value, bool):
        raise TypeError("a duration is a timedelta or a number of seconds, not a bool")
    if isinstance(value, int | float):
        value = dt.timedelta(seconds=value)
    duration = duration_pb2.Duration()
    duration.FromTimedelta(value)
    return duration


def to_time_of_day(value: Any) -> types_pb2.TimeOfDay:
    """A TimeOfDay from "HH:MM", a datetime.time, an (hours, minutes) pair or a TimeOfDay."""
    if isinstance(value, types_pb2.TimeOfDay):
        return value
    if isinstance(value, str):
        hours, _, minutes = value.partition(":")
        return types_pb2.TimeOfDay(hours=int(hours), minutes=int(minutes or 0))
    if isinstance(value, dt.time):
        return types_pb2.TimeOfDay(hours=value.hour, minutes=value.minute)
    if isinstance(value, tuple) and len(value) == 2:
        return types_pb2.TimeOfDay(hours=int(value[0]), minutes=int(value[1]))
    if isinstance(value, Mapping):
        return types_pb2.TimeOfDay(hours=int(value.get("hours", 0)), minutes=int(value.get("minutes", 0)))
    raise TypeError(f"cannot make a time of day from {value!r}; use 'HH:MM'")


def enum_number(enum: Any, value: Any, field: str = "") -> int:
    """An enum's number from its number, its full name, or its short name in any case.

    For LifecycleState, ``"active"``, ``"ACTIVE"``, ``"LIFECYCLE_STATE_ACTIVE"`` and ``1`` are the same.
    """
    if isinstance(value, bool):
        raise TypeError(f"{field or enum.name}: {value!r} is not a {enum.name}")
    if isinstance(value, int):
        if value not in enum.values_by_number:
            raise ValueError(f"{field or enum.name}: {value} is not a {enum.name} value")
        return value
    if isinstance(value, str):
        text = value.strip().upper().replace("-", "_").replace(" ", "_")
        prefix = enum_prefix(enum)
        for candidate in (text, prefix + text):
            found = enum.values_by_name.get(candidate)
            if found is not None:
                return int(found.number)
        names = ", ".join(short_enum_name(enum, v.number) for v in enum.values if v.number != 0)
        raise ValueError(f"{field or enum.name}: unknown {enum.name} {value!r}; one of {names}")
    raise TypeError(f"{field or enum.name}: {value!r} is not a {enum.name}")


def enum_prefix(enum: Any) -> str:
    first = enum.values_by_number.get(0)
    if first is not None and first.name.endswith("UNSPECIFIED"):
        return str(first.name[: -len("UNSPECIFIED")])
    return ""


def short_enum_name(enum: Any, number: int) -> str:
    """``LIFECYCLE_STATE_ACTIVE`` → ``ACTIVE`` (the number itself when unknown)."""
    value = enum.values_by_number.get(number)
    if value is None:
        return str(number)
    return str(value.name).removeprefix(enum_prefix(enum))


def field_mask(paths: Iterable[str]) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


_WELL_KNOWN: dict[str, Callable[[Any], Message]] = {
    "google.protobuf.Timestamp": to_timestamp,
    "google.protobuf.Duration": to_duration,
    "google.protobuf.FieldMask": lambda v: v if isinstance(v, field_mask_pb2.FieldMask) else field_mask(v),
    "nhm.type.v1.TimeOfDay": to_time_of_day,
}


def to_message(cls: type[M], value: M | Mapping[str, Any] | None) -> M:
    """``value`` itself if it already is a ``cls``, else a new ``cls`` built from a mapping of plain values."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Message):
        raise TypeError(f"expected {cls.DESCRIPTOR.full_name} or a mapping, got {value.DESCRIPTOR.full_name}")
    if not isinstance(value, Mapping):
        raise TypeError(f"expected {cls.DESCRIPTOR.full_name} or a mapping of its fields, got {value!r}")
    message = cls()
    fill(message, value)
    return message


def fill(message: Message, values: Mapping[str, Any]) -> None:
    """Set fields of ``message`` from plain values (see the module doc)."""
    fields = message.DESCRIPTOR.fields_by_name
    for name, value in values.items():
        fd = fields.get(name)
        if fd is None:
            known = ", ".join(sorted(fields))
            raise TypeError(f"{message.DESCRIPTOR.name} has no field {name!r}; fields: {known}")
        if value is None:
            continue
        _set_field(message, fd, value)


def _is_map(fd: Any) -> bool:
    return bool(fd.type == descriptor.FieldDescriptor.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry)


def _set_field(message: Message, fd: Any, value: Any) -> None:
    name = fd.name
    if _is_map(fd):
        target = getattr(message, name)
        target.clear()
        value_fd = fd.message_type.fields_by_name["value"]
        for key, item in dict(value).items():
            if value_fd.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
                target[key].CopyFrom(_convert_single(value_fd, item))
            else:
                target[key] = _convert_single(value_fd, item)
        return
    if fd.is_repeated:
        if isinstance(value, str | bytes | Mapping):
            raise TypeError(f"{message.DESCRIPTOR.name}.{name} is a list")
        target = getattr(message, name)
        del target[:]
        converted = [_convert_single(fd, item) for item in value]
        target.extend(converted)
        return
    converted = _convert_single(fd, value)
    if fd.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
        target = getattr(message, name)
        target.CopyFrom(converted)
        target.SetInParent()  # present even when every sub-field is zero (e.g. a 00:00 time of day)
    else:
        setattr(message, name, converted)


def _convert_single(fd: Any, value: Any) -> Any:
    if fd.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
        full_name = fd.message_type.full_name
        converter = _WELL_KNOWN.get(full_name)
        if converter is not None:
            return converter(value)
        if isinstance(value, Message):
            if value.DESCRIPTOR.full_name != full_name:
                raise TypeError(f"{fd.name}: expected {full_name}, got {value.DESCRIPTOR.full_name}")
            return value
        cls = message_factory.GetMessageClass(fd.message_type)
        return to_message(cls, value)
    if fd.type == descriptor.FieldDescriptor.TYPE_ENUM:
        return enum_number(fd.enum_type, value, fd.name)
    if fd.type == descriptor.FieldDescriptor.TYPE_BYTES and isinstance(value, str):
        return value.encode()
    return value
