"""What the registry keeps: tenants, their numbers, campaigns and keys, as plain values (no I/O, no protobuf)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class LifecycleState(StrEnum):
    ACTIVE = "ACTIVE"
    QUARANTINED = "QUARANTINED"
    RESTING = "RESTING"
    WARMING = "WARMING"
    RETIRED = "RETIRED"


class Attestation(StrEnum):
    A = "A"
    B = "B"
    C = "C"
    UNKNOWN = "UNKNOWN"


class RegistrationProgram(StrEnum):
    TMOBILE = "TMOBILE"
    ATT = "ATT"
    VERIZON = "VERIZON"
    FREE_CALLER_REGISTRY = "FREE_CALLER_REGISTRY"


class RegistrationStatus(StrEnum):
    NOT_REGISTERED = "NOT_REGISTERED"
    SUBMITTED = "SUBMITTED"
    REGISTERED = "REGISTERED"
    REJECTED = "REJECTED"


class LocalPresenceTier(StrEnum):
    AREA_CODE = "AREA_CODE"
    REGION = "REGION"
    COUNTRY = "COUNTRY"
    ANY = "ANY"


class FallbackBehavior(StrEnum):
    FAIL_CLOSED = "FAIL_CLOSED"
    FALLBACK_NUMBER = "FALLBACK_NUMBER"


class ApiKeyRole(StrEnum):
    TENANT = "TENANT"
    READ_ONLY = "READ_ONLY"


class ChangeKind(StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


class NumberOrder(StrEnum):
    PHONE_NUMBER = "PHONE_NUMBER"
    CREATE_TIME = "CREATE_TIME"
    UPDATE_TIME = "UPDATE_TIME"
    STATE = "STATE"
    AREA_CODE = "AREA_CODE"


def new_etag() -> str:
    """Opaque; changes on every update of a resource."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Registration:
    program: RegistrationProgram
    status: RegistrationStatus
    status_time: datetime | None
    reference: str


@dataclass(frozen=True)
class WarmupPlan:
    daily_caps: tuple[int, ...]
    step: timedelta


@dataclass
class Number:
    phone_number: str
    tenant_id: str
    country: str
    area_code: str
    exchange: str
    region: str
    time_zone: str
    display_name: str
    provider: str
    attestation: Attestation
    registrations: tuple[Registration, ...]
    inbound_enabled: bool
    inbound_required_until: datetime | None
    labels: dict[str, str]
    state: LifecycleState
    state_time: datetime
    rest_until: datetime | None
    warmup_plan: WarmupPlan | None
    warmup_start_time: datetime | None
    campaign_ids: list[str]
    create_time: datetime
    update_time: datetime
    etag: str


@dataclass(frozen=True)
class Transition:
    tenant_id: str
    phone_number: str
    from_state: LifecycleState | None  # None: the number was created in to_state
    to_state: LifecycleState
    actor: str
    reason: str
    time: datetime


@dataclass(frozen=True)
class TimeOfDay:
    hours: int
    minutes: int

    @property
    def minute_of_day(self) -> int:
        return self.hours * 60 + self.minutes

    @classmethod
    def parse(cls, text: str) -> TimeOfDay:
        """ "HH:MM" (settings)."""
        hours, _, minutes = text.partition(":")
        return cls(int(hours), int(minutes or 0))


@dataclass(frozen=True)
class CallingPolicy:
    """A campaign's effective calling policy (field names as in the contract)."""

    daily_cap_per_number: int
    hourly_cap_per_number: int
    local_presence: tuple[LocalPresenceTier, ...]
    allow_at_risk: bool
    sticky_caller_id: bool
    sticky_ttl: timedelta
    calling_window_start: TimeOfDay
    calling_window_end: TimeOfDay
    max_calls_per_prospect_per_day: int
    max_calls_per_prospect_per_week: int
    cap_reset_time_zone: str
    fallback_behavior: FallbackBehavior
    fallback_phone_number: str


@dataclass
class Campaign:
    id: str
    tenant_id: str
    name: str
    description: str
    policy: CallingPolicy
    number_count: int
    create_time: datetime
    update_time: datetime
    etag: str


@dataclass(frozen=True)
class Assignment:
    tenant_id: str
    campaign_id: str
    phone_number: str


@dataclass(frozen=True)
class BusinessProfile:
    legal_name: str = ""
    address: str = ""
    website: str = ""
    call_purpose: str = ""
    expected_monthly_volume: int = 0
    contact_email: str = ""
    contact_phone: str = ""


@dataclass
class Tenant:
    id: str
    display_name: str
    business_profile: BusinessProfile
    create_time: datetime
    update_time: datetime
    etag: str


@dataclass
class ApiKey:
    id: str
    tenant_id: str
    name: str
    role: ApiKeyRole
    prefix: str
    secret_sha256: str = field(repr=False)
    create_time: datetime
    revoke_time: datetime | None = None


# What a change-feed entry carries.
Resource = Number | Campaign | Assignment | Tenant | ApiKey


def resource_type(resource: Resource) -> str:
    """How the change feed names a resource's type (the field of WatchChangesResponse that carries it)."""
    return _RESOURCE_TYPES[type(resource)]


API_KEY = "api_key"
_RESOURCE_TYPES: dict[type, str] = {Number: "number", Campaign: "campaign", Assignment: "assignment",
                                    Tenant: "tenant", ApiKey: API_KEY}
