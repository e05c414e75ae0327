"""The audit trail: who changed what and when, kept by each service for what it owns.

A service records its changes with :meth:`AuditLog.record` inside the transaction that makes them, so an
acknowledged change always has its event and a refused or failed one has none; a retry answered from the
idempotency store records nothing. The table is append-only for the application: triggers (created by
:func:`create_table`, called from each service's migration) refuse UPDATE, DELETE and TRUNCATE on SQLite and
PostgreSQL. Nothing prunes it. :meth:`AuditLog.list` is the query behind ``nhm.audit.v1.AuditService``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    insert,
    or_,
    select,
)
from sqlalchemy.orm import Session

from nhm_platform.auth import Principal, Role
from nhm_platform.errors import FieldViolation, InvalidArgument
from nhm_platform.interceptors import current_request_id
from nhm_platform.migrations import APPEND_ONLY
from nhm_platform.pagination import decode_page_token, encode_page_token, filter_fingerprint, page_size
from nhm_platform.protoconv import as_utc

CREATED, UPDATED, DELETED = "created", "updated", "deleted"
MAX_FILTERS = 50
# Column sizes; the query refuses longer filters with the field named.
RESOURCE_TYPE_LENGTH, RESOURCE_NAME_LENGTH, ACTOR_LENGTH, ACTION_LENGTH = 32, 200, 200, 64


class ActorRole(StrEnum):
    TENANT = "TENANT"
    ADMIN = "ADMIN"
    SERVICE = "SERVICE"
    SYSTEM = "SYSTEM"


_ROLES = {Role.TENANT: ActorRole.TENANT, Role.READ_ONLY: ActorRole.TENANT, Role.ADMIN: ActorRole.ADMIN,
          Role.SERVICE: ActorRole.SERVICE}


@dataclass(frozen=True)
class Actor:
    """Who made a change: a caller's key (never its secret), or the service itself."""

    name: str
    role: ActorRole
    key_id: str = ""
    request_id: str = ""

    @classmethod
    def of(cls, principal: Principal, request_id: str = "") -> Actor:
        """The caller of the RPC being served; request_id defaults to the call's x-request-id."""
        return cls(principal.actor, _ROLES[principal.role], principal.key_id, request_id or current_request_id())

    @classmethod
    def system(cls, name: str) -> Actor:
        """The platform acting without a caller: ``system("system:remediation")`` (the service on its own: its
        scheduler, its settings) or ``system("service:scoring")`` (what another service's feed set off)."""
        return cls(name, ActorRole.SERVICE if name.startswith("service:") else ActorRole.SYSTEM)


@dataclass(frozen=True)
class FieldChange:
    """One field that changed; old and new are JSON values, None when the field had or has no value."""

    field: str
    old: Any = None
    new: Any = None


@dataclass(frozen=True)
class AuditEntry:
    """What a service records about one change."""

    tenant_id: str
    resource_type: str
    resource_name: str
    action: str
    changes: Sequence[FieldChange] = ()
    reason: str = ""


@dataclass(frozen=True)
class AuditSubject:
    """A resource as the audit trail sees it: its tenant, type and name, and the JSON view of its fields that
    two versions are compared by (see :func:`fields_of`)."""

    tenant_id: str
    resource_type: str
    resource_name: str
    fields: Mapping[str, Any]

    def entry(self, action: str, *, before: AuditSubject | None = None, reason: str = "",
              changes: Sequence[FieldChange] | None = None) -> AuditEntry:
        """The entry for an action on this resource: the given changes, or every field it had (deleted), every
        field it has (created, or no earlier version), or the fields that differ from ``before``."""
        if changes is None:
            if action == DELETED:
                changes = diff(self.fields, None)
            else:
                changes = diff(before.fields if before is not None else None, self.fields)
        return AuditEntry(self.tenant_id, self.resource_type, self.resource_name, action, tuple(changes), reason)


@dataclass(frozen=True)
class AuditEvent:
    """A stored entry with who made it and when."""

    id: int
    entry: AuditEntry
    actor: Actor
    event_time: datetime


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[FieldChange]:
    """The fields that differ between two JSON-like views of a resource, by dotted path (nested mappings are
    compared field by field, lists whole). ``before=None`` lists every field of ``after`` that is set (a
    creation), ``after=None`` every field of ``before`` that was (a deletion)."""
    old, new = _flatten(before or {}), _flatten(after or {})
    if before is None:
        new = {path: value for path, value in new.items() if not _is_default(value)}
    if after is None:
        old = {path: value for path, value in old.items() if not _is_default(value)}
    return [FieldChange(path, old.get(path), new.get(path)) for path in sorted(old.keys() | new.keys())
            if old.get(path) != new.get(path)]


def _is_default(value: Any) -> bool:
    """A protobuf default: "", 0, false or an empty list."""
    return value in ("", 0, [])


def fields_of(message: Message, omit: Collection[str] = ()) -> dict[str, Any]:
    """A message's fields as the JSON view that :func:`diff` compares (names as in the proto; enums by name,
    times in RFC 3339; scalars at their default too, so a change to false or "" shows), without the omitted
    top-level fields."""
    view = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
    return {name: value for name, value in view.items() if name not in omit}


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif value is not None:
            flat[f"{prefix}{key}"] = value
    return flat


@dataclass(frozen=True)
class AuditQuery:
    """A tenant's events with optional filters; newest first unless oldest_first."""

    tenant_id: str
    resource_types: Sequence[str] = ()
    resource_name: str = ""
    actor: str = ""
    actions: Sequence[str] = ()
    start_time: datetime | None = None
    end_time: datetime | None = None
    oldest_first: bool = False
    page_size: int = 0
    page_token: str = ""

    def checked(self) -> AuditQuery:
        violations: list[FieldViolation] = []
        for field, values, limit in (("resource_types", self.resource_types, RESOURCE_TYPE_LENGTH),
                                     ("actions", self.actions, ACTION_LENGTH)):
            if len(values) > MAX_FILTERS:
                violations.append(FieldViolation(field, f"at most {MAX_FILTERS} values"))
                continue
            violations += [FieldViolation(f"{field}[{i}]", f"1 to {limit} printable characters")
                           for i, value in enumerate(values) if not _filter_text(value, limit)]
        for field, value, limit in (("resource_name", self.resource_name, RESOURCE_NAME_LENGTH),
                                    ("actor", self.actor, ACTOR_LENGTH)):
            if value and not _filter_text(value, limit):
                violations.append(FieldViolation(field, f"at most {limit} printable characters"))
        if self.start_time and self.end_time and self.end_time <= self.start_time:
            violations.append(FieldViolation("end_time", "must be after start_time"))
        if violations:
            raise InvalidArgument.for_fields(violations)
        return self


def _filter_text(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit and value.isprintable()


class AuditLog:
    """A service's audit table (``audit_events`` unless named otherwise) and its writer and query."""

    def __init__(self, metadata: MetaData, service: str, name: str = "audit_events") -> None:
        self.service = service
        self.table = Table(
            name,
            metadata,
            Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
            Column("tenant_id", String(64), nullable=False),
            Column("event_time", DateTime(timezone=True), nullable=False),
            Column("actor", String(ACTOR_LENGTH), nullable=False),
            Column("actor_role", String(16), nullable=False),
            Column("actor_key_id", String(64), nullable=False),
            Column("request_id", String(128), nullable=False),
            Column("resource_type", String(RESOURCE_TYPE_LENGTH), nullable=False),
            Column("resource_name", String(RESOURCE_NAME_LENGTH), nullable=False),
            Column("action", String(ACTION_LENGTH), nullable=False),
            # JSON list of {"field", "old", "new"} (old or new left out when the field had or has no value).
            Column("changes", Text, nullable=False),
            Column("reason", Text, nullable=False),
            Index(f"ix_{name}_tenant_time", "tenant_id", "event_time", "seq"),
            Index(f"ix_{name}_tenant_resource", "tenant_id", "resource_name", "event_time", "seq"),
            info={APPEND_ONLY: True},  # the application role is granted SELECT and INSERT only (PostgreSQL)
        )

    def record(self, session: Session, actor: Actor, entries: Sequence[AuditEntry], now: datetime) -> None:
        """Write entries in the caller's transaction (the one making the changes)."""
        if entries:
            session.execute(insert(self.table), [{
                "tenant_id": e.tenant_id, "event_time": now, "actor": actor.name[:ACTOR_LENGTH],
                "actor_role": actor.role.value, "actor_key_id": actor.key_id, "request_id": actor.request_id,
                "resource_type": e.resource_type, "resource_name": e.resource_name, "action": e.action,
                "changes": _encode_changes(e.changes), "reason": e.reason} for e in entries])

    def list(self, session: Session, query: AuditQuery) -> tuple[list[AuditEvent], str]:
        query = query.checked()
        size = page_size(query.page_size)
        fingerprint = filter_fingerprint("audit", sorted(set(query.resource_types)), query.resource_name,
                                         query.actor, sorted(set(query.actions)), query.start_time, query.end_time,
                                         query.oldest_first)
        after = _page_key(decode_page_token(query.page_token, fingerprint))
        t = self.table.c
        where = [t.tenant_id == query.tenant_id]
        if query.resource_types:
            where.append(t.resource_type.in_(sorted(set(query.resource_types))))
        if query.resource_name:
            # The resource and those under it ("cases/x" and "cases/x/tasks/y"): '/' sorts just before '0'.
            name = query.resource_name.rstrip("/")
            where.append(or_(t.resource_name == name,
                             and_(t.resource_name >= name + "/", t.resource_name < name + "0")))
        if query.actor:
            where.append(or_(t.actor == query.actor, t.actor_key_id == query.actor))
        if query.actions:
            where.append(t.action.in_(sorted(set(query.actions))))
        if query.start_time:
            where.append(t.event_time >= query.start_time)
        if query.end_time:
            where.append(t.event_time < query.end_time)
        if after is not None:
            time, seq = after
            if query.oldest_first:
                where.append(or_(t.event_time > time, and_(t.event_time == time, t.seq > seq)))
            else:
                where.append(or_(t.event_time < time, and_(t.event_time == time, t.seq < seq)))
        order = (t.event_time, t.seq) if query.oldest_first else (t.event_time.desc(), t.seq.desc())
        rows = session.execute(select(self.table).where(*where).order_by(*order).limit(size + 1)).all()
        events = [_event(row) for row in rows[:size]]
        token = ""
        if len(rows) > size:
            last = events[-1]
            token = encode_page_token([last.event_time.isoformat(), last.id], fingerprint)
        return events, token


def _page_key(key: list[Any] | None) -> tuple[datetime, int] | None:
    if key is None:
        return None
    try:
        time, seq = key
        if not isinstance(seq, int) or not isinstance(time, str):
            raise TypeError
        return as_utc(datetime.fromisoformat(time)), seq
    except (ValueError, TypeError):
        raise InvalidArgument.for_field("page_token", "not a page token this service issued") from None


def _encode_changes(changes: Sequence[FieldChange]) -> str:
    items = []
    for change in changes:
        item: dict[str, Any] = {"field": change.field}
        if change.old is not None:
            item["old"] = change.old
        if change.new is not None:
            item["new"] = change.new
        items.append(item)
    return json.dumps(items, separators=(",", ":"), sort_keys=True, default=str)


def _event(row: Any) -> AuditEvent:
    changes = tuple(FieldChange(c["field"], c.get("old"), c.get("new")) for c in json.loads(row.changes))
    entry = AuditEntry(row.tenant_id, row.resource_type, row.resource_name, row.action, changes, row.reason)
    actor = Actor(row.actor, ActorRole(row.actor_role), row.actor_key_id, row.request_id)
    return AuditEvent(int(row.seq), entry, actor, as_utc(row.event_time))


# --- Schema: called from each service's migration ---------------------------------------------------------------

def create_table(log: AuditLog) -> None:
    """Create the audit table, its indexes and the triggers that make it append-only (inside a migration).

    A later change to the table belongs in a new migration, not here: this runs as part of old ones.
    """
    from alembic import op

    bind = op.get_bind()
    log.table.to_metadata(MetaData()).create(bind)
    for statement in append_only_ddl(bind.dialect.name, log.table.name):
        op.execute(statement)


def drop_table(log: AuditLog) -> None:
    from alembic import op

    for statement in drop_append_only_ddl(op.get_bind().dialect.name, log.table.name):
        op.execute(statement)
    op.drop_table(log.table.name)


def append_only_ddl(dialect: str, table: str) -> list[str]:
    """Triggers that refuse UPDATE, DELETE (and TRUNCATE on PostgreSQL) of the table's rows."""
    message = f"{table} is append-only: audit events are never changed or deleted"
    if dialect == "postgresql":
        return [
            f"CREATE FUNCTION {table}_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION '{message} (% refused)', TG_OP; END $$",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_refuse_change()",
        ]
    return [f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END" for verb in ("UPDATE", "DELETE")]


def drop_append_only_ddl(dialect: str, table: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
                f"DROP FUNCTION IF EXISTS {table}_refuse_change()"]
    return [f"DROP TRIGGER IF EXISTS {table}_no_{verb.lower()}" for verb in ("UPDATE", "DELETE")]
