"""What remediation keeps: cases, their tasks, and what a change to a case asks for (no I/O, no protobuf).

Enum values are the proto enum names without their prefix (``CaseState.OPEN`` is ``CASE_STATE_OPEN``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from nhm_platform.audit import FieldChange

SYSTEM_OWNER = "system"
SYSTEM_ACTOR = "system:remediation"


class CaseKind(StrEnum):
    REMEDIATION = "REMEDIATION"
    WATCH = "WATCH"


class CaseState(StrEnum):
    OPEN = "OPEN"
    RESOLVED = "RESOLVED"
    RETIRED = "RETIRED"
    CANCELLED = "CANCELLED"


class CaseStage(StrEnum):
    QUARANTINE = "QUARANTINE"
    RESTING = "RESTING"
    WARMING = "WARMING"
    RECHECK = "RECHECK"
    CLOSED = "CLOSED"
    WATCHING = "WATCHING"


class TaskKind(StrEnum):
    QUARANTINE = "QUARANTINE"
    REGISTRATION = "REGISTRATION"
    DISPUTE = "DISPUTE"
    REST = "REST"
    WARMUP = "WARMUP"
    RECHECK = "RECHECK"


SYSTEM_TASKS = frozenset({TaskKind.QUARANTINE, TaskKind.REST, TaskKind.WARMUP, TaskKind.RECHECK})
OPERATOR_TASKS = frozenset({TaskKind.REGISTRATION, TaskKind.DISPUTE})


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


OPEN_TASK_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.IN_PROGRESS})


class TaskOutcome(StrEnum):
    CLEARED = "CLEARED"
    REFUSED = "REFUSED"
    NEEDS_REVIEW = "NEEDS_REVIEW"


class HealthStatus(StrEnum):
    HEALTHY = "HEALTHY"
    AT_RISK = "AT_RISK"
    FLAGGED = "FLAGGED"
    BLOCKED = "BLOCKED"


SEVERITY = {HealthStatus.HEALTHY: 0, HealthStatus.AT_RISK: 1, HealthStatus.FLAGGED: 2, HealthStatus.BLOCKED: 3}
REMEDIATE = frozenset({HealthStatus.FLAGGED, HealthStatus.BLOCKED})


class LifecycleState(StrEnum):
    ACTIVE = "ACTIVE"
    QUARANTINED = "QUARANTINED"
    RESTING = "RESTING"
    WARMING = "WARMING"
    RETIRED = "RETIRED"


# States in which a number places calls, and those that count as "resting" for the pool guard.
CALLING_STATES = frozenset({LifecycleState.ACTIVE, LifecycleState.WARMING})
OUT_OF_POOL_STATES = frozenset({LifecycleState.QUARANTINED, LifecycleState.RESTING})


class AlertKind(StrEnum):
    NUMBER_AT_RISK = "NUMBER_AT_RISK"
    NUMBER_FLAGGED = "NUMBER_FLAGGED"
    NUMBER_BLOCKED = "NUMBER_BLOCKED"
    CASE_OPENED = "CASE_OPENED"
    CASE_ESCALATED = "CASE_ESCALATED"
    CASE_RESOLVED = "CASE_RESOLVED"
    TASK_OVERDUE = "TASK_OVERDUE"
    CAMPAIGN_SHORT_OF_NUMBERS = "CAMPAIGN_SHORT_OF_NUMBERS"
    WEEKLY_DIGEST = "WEEKLY_DIGEST"


STATUS_ALERTS = {HealthStatus.AT_RISK: AlertKind.NUMBER_AT_RISK, HealthStatus.FLAGGED: AlertKind.NUMBER_FLAGGED,
                 HealthStatus.BLOCKED: AlertKind.NUMBER_BLOCKED}


class AlertChannel(StrEnum):
    WEBHOOK = "WEBHOOK"
    EMAIL = "EMAIL"


class DeliveryState(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


# Reputation sources and labels, by their proto names (ReputationSource / ReputationLabel without prefix).
SOURCE_NAMES = {
    "TMOBILE": "T-Mobile", "ATT": "AT&T", "VERIZON": "Verizon", "HIYA": "Hiya", "FIRST_ORION": "First Orion",
    "TNS": "TNS Call Guardian", "NOMOROBO": "Nomorobo", "ROBOKILLER": "RoboKiller", "YOUMAIL": "YouMail",
    "TRUECALLER": "Truecaller", "OTHER": "Other",
}
LABELLED = frozenset({"MINOR", "SPAM", "SCAM", "BLOCKED"})


@dataclass(frozen=True)
class SourceLabel:
    source: str       # ReputationSource name, e.g. "HIYA"
    label: str        # ReputationLabel name, e.g. "SPAM"
    raw_label: str    # as the source wrote it, e.g. "Spam Likely"


@dataclass(frozen=True)
class HealthView:
    """What scoring last said of a number: its status and the sources that label it now."""

    status: HealthStatus
    labels: tuple[SourceLabel, ...] = ()
    status_time: datetime | None = None
    summary: str = ""

    @property
    def labelled(self) -> bool:
        return bool(self.labels)

    @property
    def clean(self) -> bool:
        return self.status is HealthStatus.HEALTHY and not self.labels

    def describe(self) -> str:
        """e.g. "Flagged: Hiya Spam Likely, Nomorobo Nuisance"."""
        title = self.status.value.replace("_", " ").title()
        if not self.labels:
            return f"{title}: {self.summary}" if self.summary else title
        parts = [f"{SOURCE_NAMES.get(s.source, s.source)} {s.raw_label or s.label.title()}" for s in self.labels]
        return f"{title}: {', '.join(parts)}"


@dataclass(frozen=True)
class NumberView:
    """The registry's view of a number, as replicated from its feed."""

    tenant_id: str
    phone_number: str
    state: LifecycleState
    attestation: str = "UNSPECIFIED"
    provider: str = ""
    display_name: str = ""
    # RegistrationProgram name -> (RegistrationStatus name, reference)
    registrations: dict[str, tuple[str, str]] = field(default_factory=dict)
    campaign_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class BusinessProfile:
    legal_name: str = ""
    address: str = ""
    website: str = ""
    call_purpose: str = ""
    expected_monthly_volume: int = 0
    contact_email: str = ""
    contact_phone: str = ""


@dataclass(frozen=True)
class PoolAlert:
    campaign_id: str
    resting_share: float
    threshold: float
    message: str


@dataclass
class Task:
    id: str
    case_id: str
    tenant_id: str
    kind: TaskKind
    status: TaskStatus
    cycle: int
    create_time: datetime
    update_time: datetime
    owner: str = SYSTEM_OWNER
    program: str = ""
    source: str = ""
    due_time: datetime | None = None
    reference: str = ""
    notes: str = ""
    outcome: TaskOutcome | None = None
    prefill: dict[str, str] = field(default_factory=dict)
    version: int = 1
    overdue_alert_time: datetime | None = None
    # Set when a new deadline clears the overdue-alert mark (the save writes it only then).
    overdue_reset: bool = field(default=False, repr=False, compare=False)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TASK_STATUSES

    def overdue(self, now: datetime) -> bool:
        return self.is_open and self.due_time is not None and self.due_time < now

    @property
    def etag(self) -> str:
        return f"{self.id}.{self.version}"

    def describe(self) -> str:
        subject = self.program or self.source
        return f"{self.kind.value.lower()} {subject}".strip()


@dataclass
class Case:
    id: str
    tenant_id: str
    phone_number: str
    kind: CaseKind
    state: CaseState
    stage: CaseStage
    cycle: int
    open_time: datetime
    update_time: datetime
    triggers: list[str] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    pool_alerts: list[PoolAlert] = field(default_factory=list)
    stage_until: datetime | None = None
    recommendation: str = ""
    close_time: datetime | None = None
    # When the retirement rule "still labelled after max_labelled_duration" is checked (None: done).
    labelled_check_time: datetime | None = None
    # A registry action this stage waits on is queued: time alone does not move the case.
    waiting: bool = False
    version: int = 1
    # Repository bookkeeping: what was loaded, so a save writes only what changed.
    loaded: dict[str, tuple[object, ...]] = field(default_factory=dict, repr=False, compare=False)
    loaded_pool_alerts: int = field(default=0, repr=False, compare=False)

    @property
    def is_open(self) -> bool:
        return self.state is CaseState.OPEN

    @property
    def etag(self) -> str:
        return f"{self.id}.{self.version}"

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.id == task_id), None)

    def current(self, kind: TaskKind) -> Task | None:
        """The task of this kind in the current cycle (system tasks are per cycle)."""
        found = [t for t in self.tasks if t.kind is kind and t.cycle == self.cycle]
        return found[-1] if found else None

    def next_due(self) -> datetime | None:
        """When the scheduler must look at this case next."""
        if not self.is_open:
            return None
        times = []
        if self.labelled_check_time is not None:
            times.append(self.labelled_check_time)
        if not self.waiting and self.stage in (CaseStage.RESTING, CaseStage.WARMING, CaseStage.RECHECK) \
                and self.stage_until is not None:
            times.append(self.stage_until)
        return min(times) if times else None


@dataclass(frozen=True)
class RegistryAction:
    """A lifecycle change the service asks of the registry. request_id makes a repeat harmless."""

    task_id: str
    target_state: LifecycleState
    reason: str
    request_id: str
    rest_until: datetime | None = None
    warmup_caps: tuple[int, ...] = ()
    warmup_step: timedelta | None = None
    # "transition" (TransitionNumber) or "retire" (RetireNumber).
    method: str = "transition"


@dataclass(frozen=True)
class CaseEvent:
    """What happened to a case (or one of its tasks), for its audit trail."""

    event_type: str
    actor: str
    detail: str
    task_id: str = ""
    changes: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class AlertRequest:
    kind: AlertKind
    summary: str
    details: dict[str, object] = field(default_factory=dict)


@dataclass
class Effects:
    """What a change to a case asks for besides the case itself: audit events, alerts, registry actions."""

    events: list[CaseEvent] = field(default_factory=list)
    alerts: list[AlertRequest] = field(default_factory=list)
    actions: list[RegistryAction] = field(default_factory=list)
    # Registry actions still queued for the case are dropped (cancellation, retirement).
    drop_pending_actions: bool = False

    def merge(self, other: Effects) -> Effects:
        self.events += other.events
        self.alerts += other.alerts
        self.actions += other.actions
        self.drop_pending_actions = self.drop_pending_actions or other.drop_pending_actions
        return self

    def event(self, event_type: str, actor: str, detail: str, task_id: str = "",
              changes: tuple[FieldChange, ...] = ()) -> None:
        self.events.append(CaseEvent(event_type, actor, detail, task_id, changes))

    def alert(self, kind: AlertKind, summary: str, **details: object) -> None:
        self.alerts.append(AlertRequest(kind, summary, dict(details)))
