"""Checks on what callers send, each failure a field violation naming the field and what is wrong."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from nhm_platform.errors import FieldViolation
from nhm_platform.phone import InvalidPhoneNumber, PhoneNumber, Purpose, parse_phone_number
from nhm_registry.commands import BusinessProfileInput, RegistrationInput
from nhm_registry.domain import BusinessProfile, Registration, RegistrationProgram, RegistrationStatus

E = TypeVar("E", bound=StrEnum)

UNSPECIFIED = "UNSPECIFIED"
MAX_NAME = 200
MAX_TEXT = 2000
MAX_REASON = 1000
_LABEL_KEY = re.compile(r"[a-z0-9]([a-z0-9_./-]{0,61}[a-z0-9])?")
_LABEL_VALUE_MAX = 256
TENANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_WEBSITE = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)
ID_FIELD = re.compile(r"[a-z]{3}_[0-9a-z]{26}")


class Violations(list[FieldViolation]):
    """Collects violations; a request is refused with all of them at once."""

    def add(self, field: str, description: str) -> None:
        self.append(FieldViolation(field, description))


def enum_value(enum: type[E], raw: str, field: str, violations: Violations, *, default: E | None = None) -> E | None:
    """The member named raw; UNSPECIFIED gives default (a violation when there is none)."""
    if raw == UNSPECIFIED:
        if default is None:
            violations.add(field, f"required: one of {', '.join(m.value for m in enum)}")
        return default
    try:
        return enum(raw)
    except ValueError:
        violations.add(field, f"unknown value {raw}; one of {', '.join(m.value for m in enum)}")
        return default


def text(value: str, field: str, violations: Violations, *, max_length: int = MAX_NAME,
         required: bool = False, multiline: bool = False) -> str:
    if required and not value.strip():
        violations.add(field, "required")
    elif len(value) > max_length:
        violations.add(field, f"at most {max_length} characters")
    elif value and not (value.replace("\n", " ") if multiline else value).isprintable():
        violations.add(field, "only printable characters (no control or invisible characters)")
    return value.strip()


def phone_number(raw: str, field: str, violations: Violations,
                 purpose: Purpose = Purpose.CALLER_ID) -> PhoneNumber | None:
    try:
        return parse_phone_number(raw, purpose)
    except InvalidPhoneNumber as exc:
        violations.append(exc.violation(field))
        return None


def labels(values: Mapping[str, str], field: str, violations: Violations, *, max_labels: int) -> dict[str, str]:
    if len(values) > max_labels:
        violations.add(field, f"at most {max_labels} labels")
        return {}
    for key, value in sorted(values.items()):
        if not _LABEL_KEY.fullmatch(key):
            violations.add(f"{field}[{key!r}]", "key: 1-63 lowercase letters, digits, '_', '.', '-', '/',"
                                                " starting and ending with a letter or digit")
        elif len(value) > _LABEL_VALUE_MAX or not value.isprintable():
            violations.add(f"{field}[{key!r}]", f"value: at most {_LABEL_VALUE_MAX} printable characters")
    return dict(values)


def registrations(given: Sequence[RegistrationInput], field: str, violations: Violations,
                  now: datetime) -> tuple[Registration, ...]:
    result: dict[RegistrationProgram, Registration] = {}
    if len(given) > len(RegistrationProgram):
        violations.add(field, f"at most {len(RegistrationProgram)} registrations, one per program"
                              f" ({', '.join(RegistrationProgram)})")
        return ()
    for i, item in enumerate(given):
        at = f"{field}[{i}]"
        program = enum_value(RegistrationProgram, item.program, f"{at}.program", violations)
        status = enum_value(RegistrationStatus, item.status, f"{at}.status", violations,
                            default=RegistrationStatus.NOT_REGISTERED)
        reference = text(item.reference, f"{at}.reference", violations)
        if program is None or status is None:
            continue
        if program in result:
            violations.add(f"{at}.program", f"{program.value} is listed twice")
            continue
        status_time = item.status_time
        if status_time is None and status is not RegistrationStatus.NOT_REGISTERED:
            status_time = now
        result[program] = Registration(program, status, status_time, reference)
    return tuple(result[p] for p in RegistrationProgram if p in result)


def business_profile(given: BusinessProfileInput, field: str, violations: Violations) -> BusinessProfile:
    website = text(given.website, f"{field}.website", violations)
    if website and not _WEBSITE.fullmatch(website):
        violations.add(f"{field}.website", "an http:// or https:// address")
    email = text(given.contact_email, f"{field}.contact_email", violations)
    if email and not _EMAIL.fullmatch(email):
        violations.add(f"{field}.contact_email", "an email address such as ops@example.com")
    phone = given.contact_phone
    if phone:
        parsed = phone_number(phone, f"{field}.contact_phone", violations, Purpose.DESTINATION)
        phone = parsed.e164 if parsed else phone
    if given.expected_monthly_volume < 0:
        violations.add(f"{field}.expected_monthly_volume", "must not be negative")
    return BusinessProfile(
        legal_name=text(given.legal_name, f"{field}.legal_name", violations),
        address=text(given.address, f"{field}.address", violations, max_length=MAX_TEXT, multiline=True),
        website=website,
        call_purpose=text(given.call_purpose, f"{field}.call_purpose", violations, max_length=MAX_TEXT,
                          multiline=True),
        expected_monthly_volume=given.expected_monthly_volume,
        contact_email=email,
        contact_phone=phone,
    )
