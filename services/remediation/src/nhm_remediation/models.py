"""The remediation service's tables (SQLAlchemy Core), on SQLite and PostgreSQL.

Owned: cases, their tasks and pool alerts; the audit trail (what happened to cases and tasks, policy and
subscription changes); the registry actions and alert deliveries the scheduler
carries out (outboxes: rows first, side effects after, so a restart loses nothing); alert subscriptions; each
tenant's policy; the case feed. Replicated from upstream feeds: numbers, campaigns, assignments, tenants and API
keys (registry), and each number's health (scoring). JSON columns are Text, encoded by the repositories.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from nhm_platform.audit import AuditLog
from nhm_platform.feed import ChangeLog
from nhm_platform.idempotency import IdempotencyStore
from nhm_platform.replica import ApiKeyReplica, CursorStore

metadata = MetaData()
idempotency = IdempotencyStore(metadata)
cursors = CursorStore(metadata)
api_keys = ApiKeyReplica(metadata)
case_feed = ChangeLog(metadata, "case_feed")
audit = AuditLog(metadata, "remediation")

ID = 40
TENANT = 64
PHONE = 16
ENUM = 24


def _time(name: str, nullable: bool = False) -> Column:
    return Column(name, DateTime(timezone=True), nullable=nullable)


# --- Cases ---------------------------------------------------------------------------------------------------

cases = Table(
    "cases",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("phone_number", String(PHONE), nullable=False),
    # The phone number while the case is open, else NULL: the unique key allows one open case per number.
    Column("open_phone_number", String(PHONE), nullable=True),
    Column("kind", String(ENUM), nullable=False),
    Column("state", String(ENUM), nullable=False),
    Column("stage", String(ENUM), nullable=False),
    Column("cycle", Integer, nullable=False),
    Column("triggers", Text, nullable=False),
    _time("stage_until", True),
    Column("recommendation", Text, nullable=False),
    _time("open_time"),
    _time("close_time", True),
    _time("update_time"),
    _time("labelled_check_time", True),
    Column("waiting", Boolean, nullable=False),
    # When the scheduler must look at the case next (NULL: nothing is due by time).
    _time("due_time", True),
    Column("version", Integer, nullable=False),
    UniqueConstraint("tenant_id", "open_phone_number", name="uq_cases_open_number"),
    Index("ix_cases_tenant_phone", "tenant_id", "phone_number"),
    Index("ix_cases_due", "due_time"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("kind", String(ENUM), nullable=False),
    Column("status", String(ENUM), nullable=False),
    Column("cycle", Integer, nullable=False),
    Column("owner", String(200), nullable=False),
    Column("program", String(ENUM), nullable=False),
    Column("source", String(ENUM), nullable=False),
    _time("due_time", True),
    Column("reference", String(500), nullable=False),
    Column("notes", Text, nullable=False),
    Column("outcome", String(ENUM), nullable=True),
    Column("prefill", Text, nullable=False),
    _time("create_time"),
    _time("update_time"),
    Column("version", Integer, nullable=False),
    # When the TASK_OVERDUE alert went out (once per task).
    _time("overdue_alert_time", True),
    Index("ix_tasks_case", "case_id"),
    Index("ix_tasks_tenant_status_due", "tenant_id", "status", "due_time"),
)

pool_alerts = Table(
    "pool_alerts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False),
    Column("campaign_id", String(ID * 2), nullable=False),
    Column("resting_share", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("message", Text, nullable=False),
    _time("create_time"),
    Index("ix_pool_alerts_case", "case_id"),
)

# Lifecycle changes asked of the registry, carried out in order per case by the scheduler.
registry_actions = Table(
    "registry_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False),
    Column("phone_number", String(PHONE), nullable=False),
    Column("task_id", String(ID), nullable=False),
    Column("method", String(ENUM), nullable=False),
    Column("target_state", String(ENUM), nullable=False),
    Column("reason", Text, nullable=False),
    Column("request_id", String(128), nullable=False),
    _time("rest_until", True),
    Column("warmup_caps", Text, nullable=False),
    Column("warmup_step_seconds", Float, nullable=True),
    # PENDING, DONE, FAILED, DROPPED
    Column("status", String(ENUM), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=False),
    _time("next_attempt_time"),
    Column("lease_owner", String(64), nullable=True),
    _time("lease_until", True),
    _time("create_time"),
    _time("done_time", True),
    Index("ix_registry_actions_pending", "status", "next_attempt_time"),
    Index("ix_registry_actions_case", "case_id", "id"),
)

policies = Table(
    "policies",
    metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    # The fields the tenant set (durations in seconds), as JSON; the rest take the defaults.
    Column("settings", Text, nullable=False),
    _time("update_time"),
)

# --- Alerts --------------------------------------------------------------------------------------------------

alert_subscriptions = Table(
    "alert_subscriptions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("channel", String(ENUM), nullable=False),
    Column("target", String(2000), nullable=False),
    Column("kinds", Text, nullable=False),
    Column("campaign_ids", Text, nullable=False),
    Column("signing_secret", String(200), nullable=False),
    _time("create_time"),
    _time("delete_time", True),
    Index("ix_alert_subscriptions_tenant", "tenant_id", "id"),
)

alerts = Table(
    "alerts",
    metadata,
    # The idempotency key receivers dedupe on.
    Column("id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("kind", String(ENUM * 2), nullable=False),
    Column("case_id", String(ID), nullable=False),
    Column("phone_number", String(PHONE), nullable=False),
    Column("campaign_ids", Text, nullable=False),
    Column("summary", Text, nullable=False),
    # The exact JSON body sent (and signed), so every retry sends the same bytes.
    Column("body", Text, nullable=False),
    _time("create_time"),
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("alert_id", String(ID), ForeignKey("alerts.id"), nullable=False),
    Column("subscription_id", String(ID), nullable=False),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("kind", String(ENUM * 2), nullable=False),
    Column("state", String(ENUM), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=False),
    _time("next_attempt_time"),
    Column("lease_owner", String(64), nullable=True),
    _time("lease_until", True),
    _time("create_time"),
    _time("deliver_time", True),
    Column("summary", Text, nullable=False),
    Index("ix_alert_deliveries_pending", "state", "next_attempt_time"),
    Index("ix_alert_deliveries_tenant", "tenant_id", "id"),
)

digest_schedule = Table(
    "digest_schedule",
    metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    _time("next_time"),
)

# --- Replicas of upstream feeds ------------------------------------------------------------------------------

numbers = Table(
    "numbers",
    metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("phone_number", String(PHONE), primary_key=True),
    Column("state", String(ENUM), nullable=False),
    Column("attestation", String(ENUM), nullable=False),
    Column("provider", String(200), nullable=False),
    Column("display_name", String(64), nullable=False),
    # {program: [status, reference]}
    Column("registrations", Text, nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("campaign_id", String(ID * 2), primary_key=True),
    Column("name", String(200), nullable=False),
)

assignments = Table(
    "assignments",
    metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("campaign_id", String(ID * 2), primary_key=True),
    Column("phone_number", String(PHONE), primary_key=True),
    Index("ix_assignments_number", "tenant_id", "phone_number"),
)

tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("display_name", String(200), nullable=False),
    # BusinessProfile fields as JSON.
    Column("profile", Text, nullable=False),
)

health = Table(
    "health",
    metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("phone_number", String(PHONE), primary_key=True),
    Column("status", String(ENUM), nullable=False),
    # [{source, label, raw_label}] of the sources labelling the number now.
    Column("labels", Text, nullable=False),
    _time("status_time", True),
    Column("summary", Text, nullable=False),
    # Scoring feed revision last applied to this row: a change seen again (another replica, a replay) is skipped.
    Column("revision", BigInteger, nullable=False),
)
