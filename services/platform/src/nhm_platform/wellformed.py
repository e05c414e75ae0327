"""Requests every service can convert and store: checked once, for every RPC, before the service sees them.

A timestamp or duration outside what its type allows (or with nanos of the wrong sign) would raise when
converted, and a NUL character cannot be stored in a PostgreSQL text column (SQLite would store it): either
would reach the caller as INTERNAL. They are refused as INVALID_ARGUMENT naming each field instead. What a
field means (a phone number, a state) stays the service's to check.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from nhm_platform.errors import FieldViolation

_TIMESTAMP = Timestamp.DESCRIPTOR.full_name
_DURATION = Duration.DESCRIPTOR.full_name
_TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)  # 0001-01-01 to 9999-12-31, as the type defines
_DURATION_SECONDS = 315_576_000_000  # about 10,000 years either way
NUL_TEXT = "must not contain NUL (\\x00) characters"


def malformed_fields(message: Message, prefix: str = "") -> list[FieldViolation]:
    """Every field of a request (at any depth) that no service could convert or store."""
    violations: list[FieldViolation] = []
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key in value:
                if isinstance(key, str) and "\x00" in key:
                    violations.append(FieldViolation(f"{path}[{key!r}]", "keys " + NUL_TEXT))
                _check_value(field.message_type.fields_by_name["value"], value[key], f"{path}[{key!r}]", violations)
        elif field.is_repeated:
            for i, item in enumerate(value):
                _check_value(field, item, f"{path}[{i}]", violations)
        else:
            _check_value(field, value, path, violations)
    return violations


def _check_value(field: FieldDescriptor, value: Any, path: str, violations: list[FieldViolation]) -> None:
    if field.type == FieldDescriptor.TYPE_STRING:
        if "\x00" in value:
            violations.append(FieldViolation(path, NUL_TEXT))
    elif field.message_type is not None:
        problem = _time_problem(value)
        if problem:
            violations.append(FieldViolation(path, problem))
        elif value.DESCRIPTOR.full_name not in (_TIMESTAMP, _DURATION):
            violations += malformed_fields(value, path + ".")


def _time_problem(value: Any) -> str:
    name = value.DESCRIPTOR.full_name
    if name == _TIMESTAMP:
        low, high = _TIMESTAMP_SECONDS
        if not low <= value.seconds <= high or not 0 <= value.nanos <= 999_999_999:
            return "not a valid time: must lie between 0001-01-01 and 9999-12-31 UTC with nanos in [0, 999999999]"
    elif name == _DURATION:
        seconds, nanos = value.seconds, value.nanos
        if abs(seconds) > _DURATION_SECONDS or abs(nanos) > 999_999_999 or seconds * nanos < 0:
            return ("not a valid duration: at most 315,576,000,000 s either way, nanos within one second and of"
                    " the same sign as seconds")
    return ""
