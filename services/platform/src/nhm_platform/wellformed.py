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


def malformed_fields(message: Message, prefix: str = "", *, max_entries: int = 0) -> list[FieldViolation]:
    """Every field of a request (at any depth) that no service could convert or store.

    max_entries bounds the entries of all its lists and maps together (0: no bound). Its message-size limit
    alone lets a request carry millions of empty entries, each of which costs the server microseconds to walk
    and convert before any service could refuse the list; a list that would pass the bound is refused unread.

    It runs on every request, in the serving process: a field's path is spelled out only for a violation, and
    fields that cannot hold a problem (numbers, enums, booleans, bytes) are not looked at (a 10,000-number
    import took 165 ms to walk when every path was built)."""
    violations: list[FieldViolation] = []
    _walk(message, prefix, violations, _Budget(max_entries))
    return violations


class _Budget:
    def __init__(self, entries: int) -> None:
        self.limit = self.left = entries

    @property
    def exhausted(self) -> bool:
        return self.left < 0

    def spend(self, entries: int) -> bool:
        if self.limit:
            self.left -= entries
        return not self.exhausted


# What a field can hold that needs a look: text (NUL), a time (its range), a message (its own fields), a map.
_OTHER, _TEXT, _TIME, _MESSAGE, _MAP = range(5)
_KINDS: dict[FieldDescriptor, int] = {}


def _kind(field: FieldDescriptor) -> int:
    kind = _KINDS.get(field)
    if kind is None:
        if field.type == FieldDescriptor.TYPE_STRING:
            kind = _TEXT
        elif field.message_type is None:
            kind = _OTHER
        elif field.message_type.GetOptions().map_entry:
            kind = _MAP
        elif field.message_type.full_name in (_TIMESTAMP, _DURATION):
            kind = _TIME
        else:
            kind = _MESSAGE
        _KINDS[field] = kind
    return kind


def _walk(message: Message, prefix: str, violations: list[FieldViolation], budget: _Budget) -> None:
    for field, value in message.ListFields():
        if budget.exhausted:  # reported where it ran out; the rest is not read
            return
        if field.is_repeated and not budget.spend(len(value)):
            violations.append(FieldViolation(
                prefix + field.name, f"too many entries: a request may carry at most {budget.limit:,} list and map"
                                     " entries in all; send several smaller requests"))
            return
        kind = _kind(field)
        if kind == _OTHER:
            continue
        if kind == _MAP:
            value_kind = _kind(field.message_type.fields_by_name["value"])
            if value_kind == _TEXT and not any("\x00" in k or "\x00" in v for k, v in value.items()):
                continue  # labels and the like: nothing to report, found without a lookup per key
            for key in value:
                if isinstance(key, str) and "\x00" in key:
                    violations.append(FieldViolation(f"{prefix}{field.name}[{key!r}]", "keys " + NUL_TEXT))
                if value_kind != _OTHER:
                    _check(value_kind, value[key], f"{prefix}{field.name}[{key!r}]", violations, budget)
        elif not field.is_repeated:
            _check(kind, value, prefix + field.name, violations, budget)
        elif kind == _TEXT:
            if any("\x00" in item for item in value):
                violations += [FieldViolation(f"{prefix}{field.name}[{i}]", NUL_TEXT)
                               for i, item in enumerate(value) if "\x00" in item]
        else:
            for i, item in enumerate(value):
                if kind == _TIME:
                    problem = _time_problem(item)
                    if problem:
                        violations.append(FieldViolation(f"{prefix}{field.name}[{i}]", problem))
                elif _needs_path(item, budget):
                    _walk(item, f"{prefix}{field.name}[{i}].", violations, budget)


def _check(kind: int, value: Any, path: str, violations: list[FieldViolation], budget: _Budget) -> None:
    if kind == _TEXT:
        if "\x00" in value:
            violations.append(FieldViolation(path, NUL_TEXT))
    elif kind == _TIME:
        problem = _time_problem(value)
        if problem:
            violations.append(FieldViolation(path, problem))
    else:
        _walk(value, path + ".", violations, budget)


def _needs_path(message: Message, budget: _Budget) -> bool:
    """Whether an entry of a list of messages holds anything to report: walked first without a path (the
    common case, nothing), and again with its path only when it does. Its lists are spent from the budget
    once, in the first walk."""
    found: list[FieldViolation] = []
    before = budget.left
    _walk(message, "", found, budget)
    if not found:
        return False
    budget.left = before  # the second walk spends them again
    return True


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
