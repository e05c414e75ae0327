"""Words the dashboard shows for the contracts' enums: the seed's statuses and their meaning, sources, states."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import EnumDescriptor

from nhm.registry.v1 import registry_pb2 as reg
from nhm.remediation.v1 import remediation_pb2 as rem
from nhm.scoring.v1 import scoring_pb2 as sco
from nhm.type.v1 import types_pb2 as types
from nhm_sdk import short_enum_name


@dataclass(frozen=True)
class Status:
    key: str  # URL and CSS name: healthy, at-risk, flagged, blocked
    number: int  # HealthStatus value
    label: str
    # The seed's meaning of the status, word for word.
    meaning: str


STATUSES: tuple[Status, ...] = (
    Status("healthy", types.HEALTH_STATUS_HEALTHY, "Healthy", "No spam flags detected. Safe to use."),
    Status("at-risk", types.HEALTH_STATUS_AT_RISK, "At Risk",
           "Minor flags detected on one or more carriers. Monitor closely."),
    Status("flagged", types.HEALTH_STATUS_FLAGGED, "Flagged",
           "Marked as spam/scam by one or more carriers or apps. Remediate immediately."),
    Status("blocked", types.HEALTH_STATUS_BLOCKED, "Blocked",
           "Calls are being blocked by carriers. Remove from active campaigns."),
)
STATUS_BY_KEY = {s.key: s for s in STATUSES}
STATUS_BY_NUMBER = {s.number: s for s in STATUSES}
UNKNOWN_STATUS = Status("unknown", types.HEALTH_STATUS_UNSPECIFIED, "Not scored", "No health recorded yet.")


def status(number: int) -> Status:
    return STATUS_BY_NUMBER.get(number, UNKNOWN_STATUS)


# Carriers and the engines and apps that label numbers, as people name them.
SOURCE_NAMES: dict[int, str] = {
    types.REPUTATION_SOURCE_TMOBILE: "T-Mobile",
    types.REPUTATION_SOURCE_ATT: "AT&T",
    types.REPUTATION_SOURCE_VERIZON: "Verizon",
    types.REPUTATION_SOURCE_HIYA: "Hiya",
    types.REPUTATION_SOURCE_FIRST_ORION: "First Orion",
    types.REPUTATION_SOURCE_TNS: "TNS",
    types.REPUTATION_SOURCE_NOMOROBO: "Nomorobo",
    types.REPUTATION_SOURCE_ROBOKILLER: "RoboKiller",
    types.REPUTATION_SOURCE_YOUMAIL: "YouMail",
    types.REPUTATION_SOURCE_TRUECALLER: "Truecaller",
    types.REPUTATION_SOURCE_OTHER: "Other",
}
SOURCE_KEYS: dict[str, int] = {short_enum_name(types.ReputationSource.DESCRIPTOR, n).lower(): n
                               for n in SOURCE_NAMES}

CARRIER_NAMES: dict[str, str] = {"TMOBILE": "T-Mobile", "ATT": "AT&T", "VERIZON": "Verizon", "OTHER": "Other"}


def carrier_name(key: str) -> str:
    """A carrier as people name it, from "CARRIER_ATT", "ATT" or "att"."""
    short = key.upper().removeprefix("CARRIER_")
    return CARRIER_NAMES.get(short, short.replace("_", " ").title())

LABEL_NAMES: dict[int, str] = {
    types.REPUTATION_LABEL_CLEAN: "Clean",
    types.REPUTATION_LABEL_MINOR: "Potential spam",
    types.REPUTATION_LABEL_SPAM: "Spam Likely",
    types.REPUTATION_LABEL_SCAM: "Scam Likely",
    types.REPUTATION_LABEL_BLOCKED: "Blocked",
}

STATE_NAMES: dict[int, str] = {
    types.LIFECYCLE_STATE_ACTIVE: "Active",
    types.LIFECYCLE_STATE_QUARANTINED: "Quarantined",
    types.LIFECYCLE_STATE_RESTING: "Resting",
    types.LIFECYCLE_STATE_WARMING: "Warming",
    types.LIFECYCLE_STATE_RETIRED: "Retired",
}

STAGE_NAMES: dict[int, str] = {
    rem.CASE_STAGE_QUARANTINE: "Quarantine",
    rem.CASE_STAGE_RESTING: "Resting",
    rem.CASE_STAGE_WARMING: "Warming up",
    rem.CASE_STAGE_RECHECK: "Re-check",
    rem.CASE_STAGE_WATCHING: "Watching",
    rem.CASE_STAGE_CLOSED: "Closed",
}
# The order of the seed's remediation steps, for the Remediation page.
STAGE_ORDER: tuple[int, ...] = (rem.CASE_STAGE_QUARANTINE, rem.CASE_STAGE_RESTING, rem.CASE_STAGE_WARMING,
                                rem.CASE_STAGE_RECHECK, rem.CASE_STAGE_WATCHING)

TASK_KIND_NAMES: dict[int, str] = {
    rem.TASK_KIND_QUARANTINE: "Quarantine",
    rem.TASK_KIND_REGISTRATION: "Carrier registration",
    rem.TASK_KIND_DISPUTE: "Dispute",
    rem.TASK_KIND_REST: "Rest",
    rem.TASK_KIND_WARMUP: "Warm-up",
    rem.TASK_KIND_RECHECK: "Re-check",
}

TASK_STATUS_NAMES: dict[int, str] = {
    rem.TASK_STATUS_PENDING: "Pending",
    rem.TASK_STATUS_IN_PROGRESS: "In progress",
    rem.TASK_STATUS_DONE: "Done",
    rem.TASK_STATUS_SKIPPED: "Skipped",
    rem.TASK_STATUS_FAILED: "Failed",
}
OPEN_TASK_STATUSES = frozenset({rem.TASK_STATUS_PENDING, rem.TASK_STATUS_IN_PROGRESS})

# Outcomes an operator records when marking a dispute or registration done.
TASK_OUTCOMES: dict[str, int] = {
    "cleared": rem.TASK_OUTCOME_CLEARED,
    "refused": rem.TASK_OUTCOME_REFUSED,
    "needs-review": rem.TASK_OUTCOME_NEEDS_REVIEW,
}
TASK_OUTCOME_NAMES: dict[int, str] = {
    rem.TASK_OUTCOME_CLEARED: "Cleared",
    rem.TASK_OUTCOME_REFUSED: "Refused",
    rem.TASK_OUTCOME_NEEDS_REVIEW: "Needs review",
}

CASE_STATE_NAMES: dict[int, str] = {
    rem.CASE_STATE_OPEN: "Open",
    rem.CASE_STATE_RESOLVED: "Resolved",
    rem.CASE_STATE_RETIRED: "Retired",
    rem.CASE_STATE_CANCELLED: "Cancelled",
}
CASE_KIND_NAMES: dict[int, str] = {rem.CASE_KIND_REMEDIATION: "Remediation", rem.CASE_KIND_WATCH: "Watch"}

PROGRAM_NAMES: dict[int, str] = {
    types.REGISTRATION_PROGRAM_TMOBILE: "T-Mobile",
    types.REGISTRATION_PROGRAM_ATT: "AT&T",
    types.REGISTRATION_PROGRAM_VERIZON: "Verizon",
    types.REGISTRATION_PROGRAM_FREE_CALLER_REGISTRY: "Free Caller Registry",
}

ATTESTATION_NAMES: dict[int, str] = {
    types.ATTESTATION_A: "A (full)",
    types.ATTESTATION_B: "B (partial)",
    types.ATTESTATION_C: "C (gateway)",
    types.ATTESTATION_UNKNOWN: "Unknown",
}

# The risk factor that carries a number's answer rate (its value is answered / outbound over the window).
ANSWER_RATE_FACTOR = sco.RISK_FACTOR_KIND_ANSWER_RATE

# How the Numbers page can be sorted. Sorting by number uses the scoring service's order (every filter
# applies); the others use the registry's order, where status and carrier filters do not apply.
SORTS: dict[str, tuple[str, int, bool]] = {
    "number": ("Number", reg.NUMBER_ORDER_BY_PHONE_NUMBER, False),
    "number-desc": ("Number, descending", reg.NUMBER_ORDER_BY_PHONE_NUMBER, True),
    "area-code": ("Area code", reg.NUMBER_ORDER_BY_AREA_CODE, False),
    "state": ("Lifecycle state", reg.NUMBER_ORDER_BY_STATE, False),
    "newest": ("Newest first", reg.NUMBER_ORDER_BY_CREATE_TIME, True),
    "updated": ("Recently changed", reg.NUMBER_ORDER_BY_UPDATE_TIME, True),
}
HEALTH_ORDER_SORT = "number"


def name_of(names: dict[int, str], number: int, enum: EnumDescriptor | None = None) -> str:
    """A display name, falling back to the enum's short name (or "—" for unset)."""
    if number in names:
        return names[number]
    if number == 0:
        return "—"
    return short_enum_name(enum, number).replace("_", " ").title() if enum is not None else str(number)
