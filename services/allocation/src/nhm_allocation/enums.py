"""The allocator's vocabulary. Values equal the protobuf enum numbers, so conversion at the edge is a cast."""

from __future__ import annotations

from enum import IntEnum


class State(IntEnum):
    """A number's lifecycle state (nhm.type.v1.LifecycleState)."""

    UNSPECIFIED = 0
    ACTIVE = 1
    QUARANTINED = 2
    RESTING = 3
    WARMING = 4
    RETIRED = 5


class Health(IntEnum):
    """A health status (nhm.type.v1.HealthStatus); a larger value is worse."""

    UNKNOWN = 0
    HEALTHY = 1
    AT_RISK = 2
    FLAGGED = 3
    BLOCKED = 4


class Carrier(IntEnum):
    """The prospect's carrier (nhm.type.v1.Carrier)."""

    UNSPECIFIED = 0
    TMOBILE = 1
    ATT = 2
    VERIZON = 3
    OTHER = 4


class Tier(IntEnum):
    """Local-presence tiers (nhm.type.v1.LocalPresenceTier), closest first."""

    UNSPECIFIED = 0
    AREA_CODE = 1
    REGION = 2
    COUNTRY = 3
    ANY = 4
    FALLBACK = 5


class Reason(IntEnum):
    """Why a number was passed over (nhm.allocation.v1.ExclusionReason)."""

    UNSPECIFIED = 0
    NOT_ACTIVE = 1
    QUARANTINED = 2
    RESTING = 3
    RETIRED = 4
    WARMUP_CAP = 5
    AT_RISK = 6
    FLAGGED = 7
    BLOCKED = 8
    DAILY_CAP = 9
    HOURLY_CAP = 10
    NEIGHBOR_SPOOFING = 11
    TIER_NOT_ALLOWED = 12


class Restriction(IntEnum):
    """Why a prospect may not be called now (nhm.allocation.v1.CallingRestrictionReason)."""

    UNSPECIFIED = 0
    OUTSIDE_CALLING_WINDOW = 1
    PROSPECT_DAILY_LIMIT = 2
    PROSPECT_WEEKLY_LIMIT = 3


class Gate(IntEnum):
    """A pool member's standing for one campaign, kept in the candidate indexes so that the hot path reads
    only members that can take a call: OPEN for any call; CARRIER only when the prospect's carrier is known
    and sees the number as healthy; CLOSED never (not ACTIVE/WARMING, Blocked, or flagged everywhere)."""

    OPEN = 0
    CARRIER = 1
    CLOSED = 2
