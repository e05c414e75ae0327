"""Batch gets by phone number (AIP-231), the same on every service that has one.

A request names 1 to a documented maximum of numbers, each written as E.164 and none twice; anything else is
INVALID_ARGUMENT naming each bad field, before any database is read. The answer keeps the request's order and
splits it in two: the items found, and the numbers the caller's tenant has nothing for (another tenant's numbers
are among those, indistinguishable from numbers nobody has). A page of a dashboard then shows what exists instead
of failing whole because one number was retired or not replicated yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from nhm_platform.errors import FieldViolation, InvalidArgument
from nhm_platform.phone import is_e164

T = TypeVar("T")

FIELD = "phone_numbers"


def checked_phone_numbers(phone_numbers: Sequence[str], maximum: int) -> list[str]:
    """The numbers a batch get asks for, in order; InvalidArgument for an empty, too long or bad list."""
    if not phone_numbers:
        raise InvalidArgument.for_field(FIELD, "give at least one number, e.g. +14155550123")
    if len(phone_numbers) > maximum:
        raise InvalidArgument.for_field(FIELD, f"at most {maximum} numbers per request; split the batch",
                                        reason="BATCH_TOO_LARGE")
    violations: list[FieldViolation] = []
    first_seen: dict[str, int] = {}
    for i, phone in enumerate(phone_numbers):
        if not is_e164(phone):
            violations.append(FieldViolation(f"{FIELD}[{i}]", "must be E.164: '+' then 8 to 15 digits"))
        elif phone in first_seen:
            violations.append(FieldViolation(f"{FIELD}[{i}]", f"repeats {FIELD}[{first_seen[phone]}]; "
                                                              "name each number once"))
        else:
            first_seen[phone] = i
    if violations:
        raise InvalidArgument.for_fields(violations)
    return list(phone_numbers)


@dataclass(frozen=True)
class BatchResult(Generic[T]):
    # Found items, in the order their numbers were asked for.
    found: list[T]
    # Numbers asked for that have no item, in the order asked.
    not_found: list[str]


def in_request_order(phone_numbers: Sequence[str], found: Mapping[str, T]) -> BatchResult[T]:
    return BatchResult([found[p] for p in phone_numbers if p in found],
                       [p for p in phone_numbers if p not in found])
