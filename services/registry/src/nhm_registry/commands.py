"""What callers ask for, as received and not yet validated (the edge fills these from requests).

Enum values arrive as names ("A", "RESTING"), "UNSPECIFIED" when unset, or the number as text when the
caller sent a value the contract does not define; validation turns them into domain values or violations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nhm_registry.domain import NumberOrder


@dataclass(frozen=True)
class RegistrationInput:
    program: str
    status: str
    status_time: datetime | None = None
    reference: str = ""


@dataclass(frozen=True)
class WarmupPlanInput:
    daily_caps: tuple[int, ...] = ()
    step: timedelta | None = None


@dataclass(frozen=True)
class NumberInput:
    """The mutable fields of a number, plus what only creation reads."""

    phone_number: str = ""
    display_name: str = ""
    provider: str = ""
    attestation: str = "UNSPECIFIED"
    registrations: tuple[RegistrationInput, ...] = ()
    inbound_enabled: bool = False
    inbound_required_until: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    warmup_plan: WarmupPlanInput | None = None
    # Creation only.
    start_warming: bool = False
    campaign_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class NumberFilter:
    states: tuple[str, ...] = ()
    campaign_id: str = ""
    area_code: str = ""
    region: str = ""
    attestations: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    phone_number_prefix: str = ""


@dataclass(frozen=True)
class NumberQuery:
    filter: NumberFilter
    order_by: NumberOrder
    descending: bool
    page_size: int
    page_token: str


@dataclass(frozen=True)
class TransitionInput:
    phone_number: str
    target_state: str
    reason: str = ""
    rest_until: datetime | None = None
    warmup_plan: WarmupPlanInput | None = None
    etag: str = ""


@dataclass(frozen=True)
class TimeOfDayInput:
    hours: int
    minutes: int


@dataclass(frozen=True)
class PolicyInput:
    """A calling policy as given: None means "not set" (the default applies)."""

    daily_cap_per_number: int | None = None
    hourly_cap_per_number: int | None = None
    local_presence: tuple[str, ...] | None = None
    allow_at_risk: bool | None = None
    sticky_caller_id: bool | None = None
    sticky_ttl: timedelta | None = None
    calling_window_start: TimeOfDayInput | None = None
    calling_window_end: TimeOfDayInput | None = None
    max_calls_per_prospect_per_day: int | None = None
    max_calls_per_prospect_per_week: int | None = None
    cap_reset_time_zone: str | None = None
    fallback_behavior: str | None = None
    fallback_phone_number: str | None = None


@dataclass(frozen=True)
class CampaignInput:
    id: str = ""
    name: str = ""
    description: str = ""
    policy: PolicyInput = field(default_factory=PolicyInput)


@dataclass(frozen=True)
class BusinessProfileInput:
    legal_name: str = ""
    address: str = ""
    website: str = ""
    call_purpose: str = ""
    expected_monthly_volume: int = 0
    contact_email: str = ""
    contact_phone: str = ""


@dataclass(frozen=True)
class TenantInput:
    id: str = ""
    display_name: str = ""
    business_profile: BusinessProfileInput = field(default_factory=BusinessProfileInput)


@dataclass(frozen=True)
class Update:
    """An update: the paths of the update mask (as given) and the etag the caller last saw."""

    paths: tuple[str, ...]
    etag: str = ""


@dataclass(frozen=True)
class Page:
    size: int = 0
    token: str = ""
